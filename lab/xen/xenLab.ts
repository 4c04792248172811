/**
 * Host side of the Xen lab: builds (or reuses) the boot images, packs the built project and a
 * scenario onto a disk, boots Xen 4.17 + dom0 in qemu-system-x86_64 (TCG), follows the console,
 * and reads the results dom0 wrote onto the results disk (lab/common/guestBoot.ts does the boot;
 * QEMU is always killed at the end). docs/xen-lab.md explains the lab; dom0's side is lab/xen/dom0/.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { buildGuestImages, guestQemuArgs, packScenario, repoRoot, runGuestScenario, type GuestRunResult, type LabMarker } from "../common/guestBoot.js";
import { type LabScenarioSpec, validateScenarioSpec } from "./labScenario.js";

export type XenScheduler = "credit" | "credit2";

const LAB = "xen lab";

export interface LabImages {
  dir: string;
  xen: string;
  vmlinuz: string;
  dom0Initrd: string;
  dom0Root: string;
  domuDisk: string;
}

/** Runs scripts/xen-lab-images.sh: downloads and builds on the first run, reuses afterwards. */
export function buildLabImages(): Promise<{ images: LabImages; seconds: number }> {
  return buildGuestImages(LAB, "xen-lab-images.sh", { xen: "xen", vmlinuz: "vmlinuz", dom0Initrd: "dom0-initrd.gz", dom0Root: "dom0-root.ext2", domuDisk: "domu-disk.ext2" });
}

/**
 * Packs what dom0 needs from the project (dist/, bpf/, the config schema, package.json) and the
 * scenario into a tar file, used as a raw read-only disk (dom0 runs `tar -xf /dev/vdb`).
 */
export async function packProject(workDir: string, spec: LabScenarioSpec, scenarioTimeoutS: number, projectRoot = repoRoot): Promise<string> {
  validateScenarioSpec(spec);
  // Another built tree (e.g. a branch not merged yet) gets this tree's lab code laid over it:
  // later tar entries win when dom0 unpacks.
  const overlay = projectRoot === repoRoot ? [] : ["-C", repoRoot, "dist/lab/xen", "dist/lab/common"];
  if (!existsSync(join(projectRoot, "dist", "cli", "cage.js"))) throw new Error(`xen lab: ${projectRoot} has no built dist/cli/cage.js (npm run build there)`);
  return packScenario(workDir, spec, scenarioTimeoutS, ["-C", projectRoot, "dist", "bpf", "docs/config.schema.json", "package.json", ...overlay]);
}

/** What one boot is made of: the images, Xen's scheduler, this run's project tar and results image. */
export interface BootDisks {
  images: LabImages;
  scheduler: XenScheduler;
  projectTar: string;
  resultsImage: string;
}

/** The Xen command line: smap/smep off or dom0 faults at once under TCG (docs/xen-lab.md). */
export function xenCommandLine(scheduler: XenScheduler): string {
  return [
    "console=com1",
    "com1=115200,8n1",
    `sched=${scheduler}`,
    // dom0 may grow to 1536 MB: the balloon scenario gives it what the domU gives up.
    `dom0_mem=1024M,max:${process.env.XEN_LAB_DOM0_MAX ?? "1536M"}`,
    "dom0_max_vcpus=2",
    "noreboot",
    "smap=0",
    "smep=0",
    // Eager FPU switching. On this (AMD-flavoured) CPU Xen defaults to lazy switching, which relies
    // on CR0.TS raising #NM at a vCPU's first FPU/SSE use; under QEMU 7.2's TCG, dom0 user processes
    // then crashed within seconds of a busy domU running (20 fatal signals in 180 s, 0 with this).
    "spec-ctrl=eager-fpu",
    ...(process.env.XEN_LAB_XEN_ARGS ?? "").split(" ").filter(Boolean),
  ].join(" ");
}

export function qemuArgs(o: BootDisks): string[] {
  return guestQemuArgs({
    accel: `tcg,thread=${process.env.XEN_LAB_TCG_THREAD ?? "multi"}`,
    // fsgsbase hidden: dom0 does not need it (dom0's crashes are lazy FPU switching's, which
    // xenCommandLine turns off, not fsgsbase's); XEN_LAB_CPU overrides for experiments.
    cpu: process.env.XEN_LAB_CPU ?? "max,fsgsbase=off",
    kernel: o.images.xen,
    append: xenCommandLine(o.scheduler),
    // Xen's multiboot modules: dom0's kernel with its command line, then its initramfs.
    initrd: `${o.images.vmlinuz} console=hvc0 earlyprintk=xen rdinit=/init,${o.images.dom0Initrd}`,
    // Disk order is dom0's device order: vda root, vdb project, vdc results, vdd the domU's disk.
    drives: [
      { file: o.images.dom0Root, readonly: true },
      { file: o.projectTar, readonly: true },
      { file: o.resultsImage, readonly: false },
      { file: o.images.domuDisk, readonly: true },
    ],
  });
}

export interface LabRunOptions {
  spec: LabScenarioSpec;
  /** Where the console log and the results go; a fresh temp dir when absent. */
  outDir?: string;
  timeoutMs?: number;
  onMarker?: (m: LabMarker) => void;
  /** The built project to carry into dom0; default this tree. */
  projectRoot?: string;
}

/** Builds/reuses images, boots the lab with one scenario, returns what dom0 produced. */
export function runLabScenario<T = unknown>(o: LabRunOptions): Promise<GuestRunResult<T>> {
  const pack = (work: string, scenarioTimeoutS: number): Promise<string> => packProject(work, o.spec, scenarioTimeoutS, o.projectRoot);
  const args = (images: LabImages, projectTar: string, resultsImage: string): string[] => qemuArgs({ images, scheduler: o.spec.scheduler, projectTar, resultsImage });
  return runGuestScenario<T, LabImages>({ lab: LAB, images: buildLabImages, outDir: o.outDir, timeoutMs: o.timeoutMs ?? 240_000, scenarioMarginMs: 60_000, pack, qemuArgs: args, onMarker: o.onMarker });
}
