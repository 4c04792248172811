/**
 * Host side of the QEMU-guest labs (the Xen lab, lab/xen/, and the v2 lab, lab/v2/): builds or
 * reuses a lab's boot images with its image script, packs the built project and a scenario into a
 * tar (the guest's /dev/vdb), boots qemu-system-x86_64 (TCG) with a kernel, an initrd and virtio
 * disks, follows the serial console for `LAB: ` progress markers, and reads the results the guest
 * wrote as a tar onto its results disk (/dev/vdc). QEMU (and a `flock` holding the QEMU lock, when
 * the lab takes it) is SIGKILLed as a process group on every exit path: success, failure, the time
 * bound, SIGINT/SIGTERM of this process.
 */
import { execFile, spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

/** Compiled to dist/lab/common/: three levels up is the repository root. */
export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

/** Held around a boot by a lab that takes it (the v2 lab): TCG guests are CPU-heavy and the machine is shared. */
export const QEMU_LOCK = "/tmp/oc-qemu.lock";

/** A `LAB: NAME REST` console line from the guest's scripts, with when the host saw it. */
export interface LabMarker {
  name: string;
  rest: string;
  /** Seconds since QEMU was started, on the host's clock. */
  atS: number;
}

export function parseLabMarker(line: string, atS: number): LabMarker | null {
  // Xen prefixes dom0's console lines with "(d0) " when it relays them; tolerate any prefix.
  const i = line.indexOf("LAB: ");
  if (i < 0) return null;
  const body = line.slice(i + 5).trim();
  const sp = body.indexOf(" ");
  const name = sp < 0 ? body : body.slice(0, sp);
  if (!/^[a-z0-9-]+$/.test(name)) return null;
  return { name, rest: sp < 0 ? "" : body.slice(sp + 1), atS };
}

/** The first time the host saw marker `name`, or null. */
export function markerTime(markers: readonly LabMarker[], name: string): number | null {
  return markers.find((m) => m.name === name)?.atS ?? null;
}

/**
 * Runs a lab's image script (scripts/LAB-images.sh: downloads and builds on the first run, reuses
 * afterwards), which prints the image directory last; `files` names each image inside it.
 */
export async function buildGuestImages<K extends string>(lab: string, script: string, files: Record<K, string>): Promise<{ images: { dir: string } & Record<K, string>; seconds: number }> {
  const started = Date.now();
  const { stdout } = await execFileP("bash", [join(repoRoot, "scripts", script)], { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024, timeout: 15 * 60_000 });
  const dir = stdout.trim().split("\n").pop() ?? "";
  if (!dir.startsWith("/") || !existsSync(join(dir, ".complete"))) throw new Error(`${script} printed ${JSON.stringify(stdout.trim())}, not an image directory`);
  const paths = Object.fromEntries(Object.entries<string>(files).map(([k, f]) => [k, join(dir, f)])) as Record<K, string>;
  for (const p of [dir, ...Object.values<string>(paths)]) {
    // QEMU's -drive options (and Xen's multiboot module list) are comma-separated.
    if (p.includes(",")) throw new Error(`${lab}: path ${p} contains a comma, which QEMU's option syntax cannot carry`);
  }
  return { images: { dir, ...paths }, seconds: (Date.now() - started) / 1000 };
}

/**
 * Writes the scenario (lab-scenario.json) and the guest's bound on it (lab-timeout) and packs them
 * after `tarArgs` (what to take from the project, with its -C) into WORK/project.tar.
 */
export async function packScenario(workDir: string, spec: unknown, scenarioTimeoutS: number, tarArgs: readonly string[]): Promise<string> {
  const extra = join(workDir, "extra");
  mkdirSync(extra, { recursive: true });
  writeFileSync(join(extra, "lab-scenario.json"), JSON.stringify(spec, null, 2));
  writeFileSync(join(extra, "lab-timeout"), String(Math.ceil(scenarioTimeoutS)));
  const tarPath = join(workDir, "project.tar");
  await execFileP("tar", ["-cf", tarPath, ...tarArgs, "-C", extra, "lab-scenario.json", "lab-timeout"]);
  return tarPath;
}

export interface GuestMachine {
  /** QEMU's -accel value, e.g. tcg,thread=multi. */
  accel: string;
  cpu: string;
  kernel: string;
  initrd: string;
  append: string;
  /** virtio disks, in the guest's device order (vda, vdb, ...). */
  drives: readonly { file: string; readonly: boolean }[];
}

/** The labs' machine: pc, 2 vCPUs, 3 GiB, serial console on stdio, no display, network or reboot. */
export function guestQemuArgs(m: GuestMachine): string[] {
  return [
    "-accel", m.accel,
    "-cpu", m.cpu,
    "-machine", "pc",
    "-smp", "2",
    "-m", "3072",
    "-display", "none",
    "-serial", "stdio",
    "-monitor", "none",
    "-no-reboot",
    "-net", "none",
    "-kernel", m.kernel,
    "-append", m.append,
    "-initrd", m.initrd,
    ...m.drives.flatMap((d) => ["-drive", `file=${d.file},format=raw,if=virtio${d.readonly ? ",readonly=on" : ""}`]),
  ];
}

export interface GuestBootOptions {
  /** Names the lab in errors ("xen lab", "v2 lab"). */
  lab: string;
  qemuArgs: readonly string[];
  /** Hard bound on the QEMU run, from its start (after the lock). */
  timeoutMs: number;
  /** When set, QEMU runs under `flock LOCK`; waiting for it is bounded by lockTimeoutMs. */
  lock?: { path: string; timeoutMs: number };
  consoleLogPath: string;
  /** Called with each LAB: marker as it appears (progress output). */
  onMarker?: (m: LabMarker) => void;
}

export interface GuestBootResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Seconds spent waiting for the lock before QEMU started (0 without a lock). */
  lockWaitSeconds: number;
  /** Seconds from QEMU's start to its exit. */
  wallSeconds: number;
  markers: LabMarker[];
}

/** Printed by the shell that then execs QEMU: the boot's clock starts here, after any lock wait. */
const QEMU_STARTED = "GUEST-BOOT-QEMU-START";

/** Boots the guest once and follows it until QEMU exits or a bound passes. Never leaves QEMU running. */
export async function bootGuest(o: GuestBootOptions): Promise<GuestBootResult> {
  const called = Date.now();
  let qemuStarted = 0;
  const consoleLog = createWriteStream(o.consoleLogPath);
  const script = `echo ${QEMU_STARTED}; exec qemu-system-x86_64 "$@"`;
  const shell = ["sh", "-c", script, "sh", ...o.qemuArgs];
  const [cmd, ...args] = o.lock ? ["flock", o.lock.path, ...shell] : shell;
  // Its own process group: the whole of it (flock, the shell, QEMU) is killed at the end.
  const child = spawn(cmd as string, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
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
  const overrun = (): void => {
    timedOut = true;
    killGroup();
  };
  let bootTimer: NodeJS.Timeout | undefined;
  const startTimer = setTimeout(overrun, o.lock?.timeoutMs ?? o.timeoutMs);
  const onData = (chunk: Buffer): void => {
    consoleLog.write(chunk);
    pending += chunk.toString("utf8");
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl).replace(/\r$/, "");
      pending = pending.slice(nl + 1);
      if (qemuStarted === 0 && line === QEMU_STARTED) {
        qemuStarted = Date.now();
        clearTimeout(startTimer);
        bootTimer = setTimeout(overrun, o.timeoutMs);
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
    if (interrupted) throw new Error(`${o.lab}: interrupted by a signal; QEMU was killed`);
    const end = Date.now();
    return {
      exitCode,
      signal,
      timedOut,
      lockWaitSeconds: o.lock ? ((qemuStarted || end) - called) / 1000 : 0,
      wallSeconds: qemuStarted === 0 ? 0 : (end - qemuStarted) / 1000,
      markers,
    };
  } finally {
    clearTimeout(startTimer);
    clearTimeout(bootTimer);
    killGroup();
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    await new Promise<void>((resolve) => consoleLog.end(resolve));
  }
}

export interface GuestRunOptions<I> {
  /** Names the lab in errors and temp dirs ("xen lab", "v2 lab"). */
  lab: string;
  /** Builds or reuses the lab's images (buildGuestImages with its script). */
  images: () => Promise<{ images: I; seconds: number }>;
  /** Where the console log and the results go; a fresh temp dir when absent. */
  outDir?: string;
  /** Bound on the boot, from QEMU's start. */
  timeoutMs: number;
  /** The guest kills its scenario this much sooner than the host kills QEMU, so results still come out. */
  scenarioMarginMs: number;
  /** Packs the project and the scenario into WORK (the guest's /dev/vdb); returns the tar's path. */
  pack: (workDir: string, scenarioTimeoutS: number) => Promise<string>;
  /** QEMU's arguments for the images, the project tar and the results image. */
  qemuArgs: (images: I, projectTar: string, resultsImage: string) => string[];
  lock?: GuestBootOptions["lock"];
  onMarker?: (m: LabMarker) => void;
}

export interface GuestRunResult<T = unknown> {
  boot: GuestBootResult;
  /** Seconds the image script took (a second or two when nothing changed). */
  imagesSeconds: number;
  /** Everything the guest put under /run/results. */
  resultsDir: string;
  /** results.json written by the scenario, or null when it did not finish. */
  results: T | null;
  consoleLogPath: string;
}

/** Builds/reuses the images, boots the guest with one scenario and returns what it produced; its work files are removed on every exit path. */
export async function runGuestScenario<T, I>(o: GuestRunOptions<I>): Promise<GuestRunResult<T>> {
  const { images, seconds } = await o.images();
  const prefix = o.lab.replace(/\W+/g, "-");
  const outDir = o.outDir ?? mkdtempSync(join(tmpdir(), `${prefix}-`));
  mkdirSync(outDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), `${prefix}-work-`));
  try {
    const scenarioTimeoutS = Math.max(30, (o.timeoutMs - o.scenarioMarginMs) / 1000);
    const projectTar = await o.pack(work, scenarioTimeoutS);
    const resultsImage = join(work, "results.img");
    await execFileP("truncate", ["-s", "64M", resultsImage]);
    const consoleLogPath = join(outDir, "console.log");
    const boot = await bootGuest({ lab: o.lab, qemuArgs: o.qemuArgs(images, projectTar, resultsImage), timeoutMs: o.timeoutMs, lock: o.lock, consoleLogPath, onMarker: o.onMarker });
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

/** A marker as a progress line on stderr, for the by-hand run commands. */
export function printMarker(m: LabMarker): void {
  process.stderr.write(`[${m.atS.toFixed(1)}s] ${m.name} ${m.rest}\n`);
}

/**
 * Prints a by-hand run's JSON summary on stdout: timings, the times of the markers named in
 * `markerTimes` (summary key → marker name), where the console log and results are, the results.
 * Returns the command's exit code: 0 when the guest's results say ok.
 */
export function reportRun(r: GuestRunResult, markerTimes: Record<string, string>): number {
  const summary = {
    imagesSeconds: r.imagesSeconds,
    lockWaitSeconds: r.boot.lockWaitSeconds,
    qemuSeconds: r.boot.wallSeconds,
    exitCode: r.boot.exitCode,
    timedOut: r.boot.timedOut,
    ...Object.fromEntries(Object.entries(markerTimes).map(([key, name]) => [key, markerTime(r.boot.markers, name)])),
    resultsDir: r.resultsDir,
    consoleLog: r.consoleLogPath,
    results: r.results,
  };
  process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
  return r.results !== null && (r.results as { ok?: boolean }).ok === true ? 0 : 1;
}

/** Runs a by-hand command's main and exits with its code; an error is one line on stderr and exit 1. */
export function exitWith(program: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${program}: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
