/**
 * Host side of the v2 lab: builds (or reuses) the boot images, packs the built project and a
 * scenario onto a disk, boots Debian's 6.1 kernel with systemd as PID 1 and cgroup v2 alone in
 * qemu-system-x86_64 (TCG), follows the serial console, and reads the results the guest wrote.
 * One guest at a time across this machine: each boot holds /tmp/oc-qemu.lock. QEMU (with the
 * flock holding the lock) is SIGKILLed on every exit path: success, failure, the time bound,
 * SIGINT/SIGTERM. docs/v2-lab.md explains the lab; the guest's side is lab/v2/guest/.
 */
import { execFile, spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parseLabMarker, type LabMarker } from "../xen/labScenario.js";
import { validateV2Spec, type V2ScenarioSpec } from "./labScenario.js";

const execFileP = promisify(execFile);

/** Compiled to dist/lab/v2/: three levels up is the repository root. */
export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

/** Held around each boot: TCG guests are CPU-heavy and the machine is shared. */
export const QEMU_LOCK = "/tmp/oc-qemu.lock";

export interface V2Images {
  dir: string;
  vmlinuz: string;
  initrd: string;
  root: string;
  vmDisk: string;
}

/** Runs scripts/v2-lab-images.sh: downloads and builds on the first run, reuses afterwards. */
export async function buildV2Images(): Promise<{ images: V2Images; seconds: number }> {
  const started = Date.now();
  const { stdout } = await execFileP("bash", [join(repoRoot, "scripts", "v2-lab-images.sh")], { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024, timeout: 15 * 60_000 });
  const dir = stdout.trim().split("\n").pop() ?? "";
  if (!dir.startsWith("/") || !existsSync(join(dir, ".complete"))) throw new Error(`v2-lab-images.sh printed ${JSON.stringify(stdout.trim())}, not an image directory`);
  const images: V2Images = { dir, vmlinuz: join(dir, "vmlinuz"), initrd: join(dir, "initrd.gz"), root: join(dir, "root.ext2"), vmDisk: join(dir, "vm-disk.ext2") };
  for (const p of Object.values(images) as string[]) {
    if (p.includes(",")) throw new Error(`v2 lab: path ${p} contains a comma, which QEMU's -drive syntax cannot carry`);
  }
  return { images, seconds: (Date.now() - started) / 1000 };
}

/** The project (dist/, bpf/, docs/, examples/, packaging/, package files) and the scenario as a tar: the guest's /dev/vdb. */
export async function packProject(workDir: string, spec: V2ScenarioSpec, scenarioTimeoutS: number): Promise<string> {
  validateV2Spec(spec);
  const extra = join(workDir, "extra");
  mkdirSync(extra, { recursive: true });
  writeFileSync(join(extra, "lab-scenario.json"), JSON.stringify(spec, null, 2));
  writeFileSync(join(extra, "lab-timeout"), String(Math.ceil(scenarioTimeoutS)));
  if (!existsSync(join(repoRoot, "dist", "cli", "cage.js"))) throw new Error(`v2 lab: ${repoRoot} has no built dist/cli/cage.js (npm run build)`);
  const tarPath = join(workDir, "project.tar");
  // `cage install` in the guest copies from here: what it needs is what it checks for.
  await execFileP("tar", ["-cf", tarPath, "--exclude=dist/test", "--exclude=dist/bench", "-C", repoRoot, "dist", "bpf", "docs", "examples", "packaging", "package.json", "package-lock.json", "-C", extra, "lab-scenario.json", "lab-timeout"]);
  return tarPath;
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
  const drive = (file: string, readonly: boolean): string[] => ["-drive", `file=${file},format=raw,if=virtio${readonly ? ",readonly=on" : ""}`];
  return [
    "-accel", "tcg,thread=multi",
    "-cpu", process.env.V2_LAB_CPU ?? "max",
    "-machine", "pc",
    "-smp", "2",
    "-m", "3072",
    "-display", "none",
    "-serial", "stdio",
    "-monitor", "none",
    "-no-reboot",
    "-net", "none",
    "-kernel", images.vmlinuz,
    "-initrd", images.initrd,
    "-append", kernelCommandLine(),
    // The guest's device order: vda root, vdb project, vdc results, vdd the VM's disk.
    ...drive(images.root, true),
    ...drive(projectTar, true),
    ...drive(resultsImage, false),
    ...drive(images.vmDisk, true),
  ];
}

export interface BootResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Seconds spent waiting for QEMU_LOCK before QEMU started. */
  lockWaitSeconds: number;
  /** Seconds from QEMU's start to its exit. */
  wallSeconds: number;
  markers: LabMarker[];
}

export interface BootOptions {
  images: V2Images;
  projectTar: string;
  resultsImage: string;
  /** Hard bound on the QEMU run, from its start (after the lock). */
  timeoutMs: number;
  /** Bound on waiting for the lock. */
  lockTimeoutMs: number;
  consoleLogPath: string;
  onMarker?: (m: LabMarker) => void;
}

const QEMU_STARTED = "V2LAB-QEMU-START";

/** Boots the guest once under the QEMU lock and follows it until QEMU exits or a bound passes. Never leaves QEMU running. */
export async function bootV2(o: BootOptions): Promise<BootResult> {
  const called = Date.now();
  let qemuStarted = 0;
  const consoleLog = createWriteStream(o.consoleLogPath);
  // flock holds the lock for the shell it runs, which execs QEMU once the lock is ours; the whole
  // group (flock, QEMU) is killed at the end.
  const script = `echo ${QEMU_STARTED}; exec qemu-system-x86_64 "$@"`;
  const child = spawn("flock", [QEMU_LOCK, "sh", "-c", script, "sh", ...qemuArgs(o.images, o.projectTar, o.resultsImage)], { stdio: ["ignore", "pipe", "pipe"], detached: true });
  const markers: LabMarker[] = [];
  let timedOut = false;
  let interrupted = false;
  let pending = "";
  const killGroup = (): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      /* the group is gone */
    }
  };
  let bootTimer: NodeJS.Timeout | undefined;
  const lockTimer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, o.lockTimeoutMs);
  const onData = (chunk: Buffer): void => {
    consoleLog.write(chunk);
    pending += chunk.toString("utf8");
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl).replace(/\r$/, "");
      pending = pending.slice(nl + 1);
      if (qemuStarted === 0 && line === QEMU_STARTED) {
        qemuStarted = Date.now();
        clearTimeout(lockTimer);
        bootTimer = setTimeout(() => {
          timedOut = true;
          killGroup();
        }, o.timeoutMs);
        continue;
      }
      const m = parseLabMarker(line, qemuStarted === 0 ? 0 : (Date.now() - qemuStarted) / 1000);
      if (m) {
        markers.push(m);
        o.onMarker?.(m);
      }
    }
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", (c: Buffer) => consoleLog.write(c));
  const onSignal = (): void => {
    interrupted = true;
    killGroup();
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const [exitCode, signal] = await new Promise<[number | null, string | null]>((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code, sig) => resolve([code, sig]));
    });
    if (interrupted) throw new Error("v2 lab: interrupted by a signal; QEMU was killed");
    const end = Date.now();
    return {
      exitCode,
      signal,
      timedOut,
      lockWaitSeconds: ((qemuStarted || end) - called) / 1000,
      wallSeconds: qemuStarted === 0 ? 0 : (end - qemuStarted) / 1000,
      markers,
    };
  } finally {
    clearTimeout(lockTimer);
    clearTimeout(bootTimer);
    killGroup();
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    await new Promise<void>((resolve) => consoleLog.end(resolve));
  }
}

export interface V2RunResult<T = unknown> {
  boot: BootResult;
  imagesSeconds: number;
  /** Everything the guest put under /run/results. */
  resultsDir: string;
  /** results.json written by the scenario, or null when it did not finish. */
  results: T | null;
  consoleLogPath: string;
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

/** Builds/reuses images, boots the guest with one scenario, returns what the guest produced. */
export async function runV2Scenario<T = unknown>(o: V2RunOptions): Promise<V2RunResult<T>> {
  const { images, seconds } = await buildV2Images();
  const outDir = o.outDir ?? mkdtempSync(join(tmpdir(), "v2-lab-"));
  mkdirSync(outDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "v2-lab-work-"));
  try {
    const timeoutMs = o.timeoutMs ?? 600_000;
    // The guest kills the scenario well before the host kills QEMU, so results still come out.
    const scenarioTimeoutS = Math.max(30, (timeoutMs - 90_000) / 1000);
    const projectTar = await packProject(work, o.spec, scenarioTimeoutS);
    const resultsImage = join(work, "results.img");
    await execFileP("truncate", ["-s", "64M", resultsImage]);
    const consoleLogPath = join(outDir, "console.log");
    const boot = await bootV2({ images, projectTar, resultsImage, timeoutMs, lockTimeoutMs: o.lockTimeoutMs ?? 3_600_000, consoleLogPath, onMarker: o.onMarker });
    const resultsDir = join(outDir, "results");
    rmSync(resultsDir, { recursive: true, force: true });
    mkdirSync(resultsDir, { recursive: true });
    try {
      await execFileP("tar", ["-xf", resultsImage, "-C", resultsDir]);
    } catch {
      // A guest that died before writing anything leaves zeros: no results; the console says why.
    }
    const resultsFile = join(resultsDir, "results.json");
    const results = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, "utf8")) as T) : null;
    return { boot, imagesSeconds: seconds, resultsDir, results, consoleLogPath };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
