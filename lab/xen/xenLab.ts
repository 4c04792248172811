/**
 * Host side of the Xen lab: builds (or reuses) the boot images, packs the built project and a
 * scenario onto a disk, boots Xen 4.17 + dom0 in qemu-system-x86_64 (TCG), follows the console,
 * and reads the results dom0 wrote onto the results disk. QEMU is always killed at the end: on
 * success, failure, overrun of the time bound, and SIGINT/SIGTERM of this process.
 * docs/xen-lab.md explains the lab; dom0's side is lab/xen/dom0/.
 */
import { execFile, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parseLabMarker, type LabMarker, type LabScenarioSpec, validateScenarioSpec } from "./labScenario.js";

const execFileP = promisify(execFile);

/** Compiled to dist/lab/xen/: three levels up is the repository root. */
export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

export type XenScheduler = "credit" | "credit2";

export interface LabImages {
  dir: string;
  xen: string;
  vmlinuz: string;
  dom0Initrd: string;
  dom0Root: string;
  domuDisk: string;
}

/** Runs scripts/xen-lab-images.sh: downloads and builds on the first run, reuses afterwards. */
export async function buildLabImages(): Promise<{ images: LabImages; seconds: number }> {
  const started = Date.now();
  const { stdout } = await execFileP("bash", [join(repoRoot, "scripts", "xen-lab-images.sh")], {
    cwd: repoRoot,
    maxBuffer: 16 * 1024 * 1024,
    timeout: 15 * 60_000,
  });
  const dir = stdout.trim().split("\n").pop() ?? "";
  if (!dir.startsWith("/") || !existsSync(join(dir, ".complete"))) {
    throw new Error(`xen-lab-images.sh printed ${JSON.stringify(stdout.trim())}, not an image directory`);
  }
  const images: LabImages = {
    dir,
    xen: join(dir, "xen"),
    vmlinuz: join(dir, "vmlinuz"),
    dom0Initrd: join(dir, "dom0-initrd.gz"),
    dom0Root: join(dir, "dom0-root.ext2"),
    domuDisk: join(dir, "domu-disk.ext2"),
  };
  for (const p of Object.values(images) as string[]) {
    // QEMU's multiboot module list and -drive options are comma-separated.
    if (p.includes(",")) throw new Error(`xen lab: path ${p} contains a comma, which QEMU's option syntax cannot carry`);
  }
  return { images, seconds: (Date.now() - started) / 1000 };
}

/**
 * Packs what dom0 needs from the project (dist/, bpf/, the config schema, package.json) and the
 * scenario into a tar file, used as a raw read-only disk (dom0 runs `tar -xf /dev/vdb`).
 */
export async function packProject(workDir: string, spec: LabScenarioSpec, scenarioTimeoutS: number, projectRoot = repoRoot): Promise<string> {
  validateScenarioSpec(spec);
  const extra = join(workDir, "extra");
  mkdirSync(extra, { recursive: true });
  writeFileSync(join(extra, "lab-scenario.json"), JSON.stringify(spec, null, 2));
  writeFileSync(join(extra, "lab-timeout"), String(Math.ceil(scenarioTimeoutS)));
  const tarPath = join(workDir, "project.tar");
  // Another built tree (e.g. a branch not merged yet) gets this tree's lab code laid over it:
  // later tar entries win when dom0 unpacks.
  const overlay = projectRoot === repoRoot ? [] : ["-C", repoRoot, "dist/lab/xen"];
  if (!existsSync(join(projectRoot, "dist", "cli", "cage.js"))) throw new Error(`xen lab: ${projectRoot} has no built dist/cli/cage.js (npm run build there)`);
  await execFileP("tar", ["-cf", tarPath, "-C", projectRoot, "dist", "bpf", "docs/config.schema.json", "package.json", ...overlay, "-C", extra, "lab-scenario.json", "lab-timeout"]);
  return tarPath;
}

export interface BootOptions {
  images: LabImages;
  scheduler: XenScheduler;
  projectTar: string;
  resultsImage: string;
  /** Hard bound on the QEMU run; QEMU is killed when it passes. */
  timeoutMs: number;
  consoleLogPath: string;
  /** Called with each LAB: marker as it appears (progress output). */
  onMarker?: (m: LabMarker) => void;
}

export interface BootResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  interrupted: boolean;
  wallSeconds: number;
  markers: LabMarker[];
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

export function qemuArgs(o: Pick<BootOptions, "images" | "scheduler" | "projectTar" | "resultsImage">): string[] {
  const drive = (file: string, readonly: boolean): string[] => ["-drive", `file=${file},format=raw,if=virtio${readonly ? ",readonly=on" : ""}`];
  return [
    "-accel", `tcg,thread=${process.env.XEN_LAB_TCG_THREAD ?? "multi"}`,
    // fsgsbase hidden: dom0 does not need it (dom0's crashes are lazy FPU switching's, which
    // xenCommandLine turns off, not fsgsbase's); XEN_LAB_CPU overrides for experiments.
    "-cpu", process.env.XEN_LAB_CPU ?? "max,fsgsbase=off",
    "-machine", "pc",
    "-smp", "2",
    "-m", "3072",
    "-display", "none",
    "-serial", "stdio",
    "-monitor", "none",
    "-no-reboot",
    "-net", "none",
    "-kernel", o.images.xen,
    "-append", xenCommandLine(o.scheduler),
    "-initrd", `${o.images.vmlinuz} console=hvc0 earlyprintk=xen rdinit=/init,${o.images.dom0Initrd}`,
    // Disk order is dom0's device order: vda root, vdb project, vdc results, vdd the domU's disk.
    ...drive(o.images.dom0Root, true),
    ...drive(o.projectTar, true),
    ...drive(o.resultsImage, false),
    ...drive(o.images.domuDisk, true),
  ];
}

/** Boots the lab once and follows it until QEMU exits or the bound passes. Never leaves QEMU running. */
export async function bootLab(o: BootOptions): Promise<BootResult> {
  const started = Date.now();
  const consoleLog = createWriteStream(o.consoleLogPath);
  const child = spawn("qemu-system-x86_64", qemuArgs(o), { stdio: ["ignore", "pipe", "pipe"] });
  const markers: LabMarker[] = [];
  let timedOut = false;
  let interrupted = false;
  let pending = "";
  const onData = (chunk: Buffer): void => {
    consoleLog.write(chunk);
    pending += chunk.toString("utf8");
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl).replace(/\r$/, "");
      pending = pending.slice(nl + 1);
      const m = parseLabMarker(line, (Date.now() - started) / 1000);
      if (m) {
        markers.push(m);
        o.onMarker?.(m);
      }
    }
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", (c: Buffer) => consoleLog.write(c));
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  const onSignal = (): void => {
    interrupted = true;
    kill();
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, o.timeoutMs);
  try {
    const [exitCode, signal] = await new Promise<[number | null, string | null]>((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code, sig) => resolve([code, sig]));
    });
    if (interrupted) throw new Error("xen lab: interrupted by a signal; QEMU was killed");
    return { exitCode, signal, timedOut, interrupted, wallSeconds: (Date.now() - started) / 1000, markers };
  } finally {
    clearTimeout(timer);
    kill();
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    await new Promise<void>((resolve) => consoleLog.end(resolve));
  }
}

export interface LabRunResult<T = unknown> {
  boot: BootResult;
  imagesSeconds: number;
  /** Everything dom0 put under /run/results. */
  resultsDir: string;
  /** results.json written by the scenario, or null when it did not finish. */
  results: T | null;
  consoleLogPath: string;
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
export async function runLabScenario<T = unknown>(o: LabRunOptions): Promise<LabRunResult<T>> {
  const { images, seconds } = await buildLabImages();
  const outDir = o.outDir ?? mkdtempSync(join(tmpdir(), "xen-lab-"));
  mkdirSync(outDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "xen-lab-work-"));
  try {
    const timeoutMs = o.timeoutMs ?? 240_000;
    // dom0 kills the scenario well before the host kills QEMU, so results still come out.
    const scenarioTimeoutS = Math.max(30, (timeoutMs - 60_000) / 1000);
    const projectTar = await packProject(work, o.spec, scenarioTimeoutS, o.projectRoot);
    const resultsImage = join(work, "results.img");
    await execFileP("truncate", ["-s", "64M", resultsImage]);
    const consoleLogPath = join(outDir, "console.log");
    const boot = await bootLab({ images, scheduler: o.spec.scheduler, projectTar, resultsImage, timeoutMs, consoleLogPath, onMarker: o.onMarker });
    const resultsDir = join(outDir, "results");
    rmSync(resultsDir, { recursive: true, force: true });
    mkdirSync(resultsDir, { recursive: true });
    try {
      await execFileP("tar", ["-xf", resultsImage, "-C", resultsDir]);
    } catch {
      // A run that died before dom0 wrote anything leaves zeros: no results, the console says why.
    }
    const resultsFile = join(resultsDir, "results.json");
    const results = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, "utf8")) as T) : null;
    return { boot, imagesSeconds: seconds, resultsDir, results, consoleLogPath };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
