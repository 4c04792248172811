/**
 * Host side of the v2 lab: builds (or reuses) the boot images, packs the built project and a
 * scenario onto a disk, boots Debian's 6.1 kernel with systemd as PID 1 and cgroup v2 alone in
 * qemu-system-x86_64 (TCG), follows the serial console, and reads the results the guest wrote
 * (lab/common/guestBoot.ts does the boot). One guest at a time across this machine: each boot
 * holds /tmp/oc-qemu.lock, and QEMU with the flock holding it is SIGKILLed on every exit path.
 * docs/v2-lab.md explains the lab; the guest's side is lab/v2/guest/.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { buildGuestImages, guestQemuArgs, packScenario, QEMU_LOCK, repoRoot, runGuestScenario, type GuestRunResult, type LabMarker } from "../common/guestBoot.js";
import { validateV2Spec, type V2ScenarioSpec } from "./labScenario.js";

const LAB = "v2 lab";

export interface V2Images {
  dir: string;
  vmlinuz: string;
  initrd: string;
  root: string;
  vmDisk: string;
}

/** Runs scripts/v2-lab-images.sh: downloads and builds on the first run, reuses afterwards. */
export function buildV2Images(): Promise<{ images: V2Images; seconds: number }> {
  return buildGuestImages(LAB, "v2-lab-images.sh", { vmlinuz: "vmlinuz", initrd: "initrd.gz", root: "root.ext2", vmDisk: "vm-disk.ext2" });
}

/** The project (dist/, bpf/, docs/, examples/, packaging/, package files) and the scenario as a tar: the guest's /dev/vdb. */
export async function packProject(workDir: string, spec: V2ScenarioSpec, scenarioTimeoutS: number): Promise<string> {
  validateV2Spec(spec);
  if (!existsSync(join(repoRoot, "dist", "cli", "cage.js"))) throw new Error(`v2 lab: ${repoRoot} has no built dist/cli/cage.js (npm run build)`);
  // `cage install` in the guest copies from here: what it needs is what it checks for.
  return packScenario(workDir, spec, scenarioTimeoutS, ["--exclude=dist/test", "--exclude=dist/bench", "-C", repoRoot, "dist", "bpf", "docs", "examples", "packaging", "package.json", "package-lock.json"]);
}

/**
 * The kernel's command line: the serial console, cgroup v1 switched off entirely so systemd
 * mounts the unified hierarchy alone, and no first-boot prompts.
 */
export function kernelCommandLine(): string {
  return [
    "console=ttyS0,115200",
    "rdinit=/init",
    "cgroup_no_v1=all",
    "systemd.unified_cgroup_hierarchy=1",
    "systemd.show_status=1",
    "systemd.firstboot=off",
    "panic=-1",
    ...(process.env.V2_LAB_KERNEL_ARGS ?? "").split(" ").filter(Boolean),
  ].join(" ");
}

export function qemuArgs(images: V2Images, projectTar: string, resultsImage: string): string[] {
  return guestQemuArgs({
    accel: "tcg,thread=multi",
    cpu: process.env.V2_LAB_CPU ?? "max",
    kernel: images.vmlinuz,
    initrd: images.initrd,
    append: kernelCommandLine(),
    // The guest's device order: vda root, vdb project, vdc results, vdd the VM's disk.
    drives: [
      { file: images.root, readonly: true },
      { file: projectTar, readonly: true },
      { file: resultsImage, readonly: false },
      { file: images.vmDisk, readonly: true },
    ],
  });
}

export interface V2RunOptions {
  spec: V2ScenarioSpec;
  outDir?: string;
  /** Bound on the boot, from QEMU's start. */
  timeoutMs?: number;
  /** Bound on waiting for another engineer's guest to finish. */
  lockTimeoutMs?: number;
  onMarker?: (m: LabMarker) => void;
}

/** Builds/reuses images, boots the guest with one scenario under the QEMU lock, returns what the guest produced. */
export function runV2Scenario<T = unknown>(o: V2RunOptions): Promise<GuestRunResult<T>> {
  const pack = (work: string, scenarioTimeoutS: number): Promise<string> => packProject(work, o.spec, scenarioTimeoutS);
  const lock = { path: QEMU_LOCK, timeoutMs: o.lockTimeoutMs ?? 3_600_000 };
  return runGuestScenario<T, V2Images>({ lab: LAB, images: buildV2Images, outDir: o.outDir, timeoutMs: o.timeoutMs ?? 600_000, scenarioMarginMs: 90_000, pack, qemuArgs, lock, onMarker: o.onMarker });
}
