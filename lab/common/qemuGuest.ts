/**
 * Starts the project's small QEMU test guest (scripts/build-qemu-guest.sh: Debian kernel with
 * virtio_balloon, busybox initramfs, TCG, no network) with a QMP socket and, by default, a
 * virtio-balloon device, and reads the guest's own memory as it reports it on the serial console.
 * Used by the balloon actuator's tests and by `cage lab memory`.
 *
 *   const guest = await QemuGuest.start({ memoryMiB: 512 });
 *   try { ... guest.qmpSocket (for the actuator), guest.observerQmpSocket (for watching) ...; await guest.waitForMemInfo((m) => m.memTotalBytes < x, 10_000); }
 *   finally { await guest.stop(); }
 *
 * QEMU never outlives its starter: stop() kills it (SIGTERM, then SIGKILL), a process `exit` hook
 * SIGKILLs any guest still running, and where util-linux `setpriv` exists QEMU is started with
 * `--pdeathsig KILL`, so it dies even when the starter is SIGKILLed.
 */
import { spawn, execFile, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readSync, closeSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export interface QemuGuestOptions {
  /** Guest RAM (QEMU -m), MiB. Default 512. */
  memoryMiB?: number;
  /** Attach a virtio-balloon-pci device (id balloon0). Default true; false tests "no balloon device". */
  balloon?: boolean;
  /** How long to wait for the guest's /init to report, ms. Default 120000 (TCG on a busy 2-core host). */
  bootTimeoutMs?: number;
  /** QEMU binary. Default qemu-system-x86_64 from PATH. */
  qemuBinary?: string;
  /** Directory for the QMP socket and serial log. Default: a new temp dir, removed by stop(). */
  dir?: string;
  /** More QEMU arguments, after the ones above (a NIC, `-name guest=X,debug-threads=on`). */
  extraArgs?: readonly string[];
}

/** One report of the guest's /proc/meminfo (the guest prints one every 0.5 s). */
export interface GuestMemInfo {
  /** The guest's own sequence number of the report. */
  seq: number;
  memTotalBytes: number;
  memFreeBytes: number;
  memAvailableBytes: number;
  /** Host wall clock (Date.now()) when the helper read the line. */
  seenAtMs: number;
}

const READY = "OCGUEST-READY";
const MEM = "OCGUEST-MEM";
const ERROR = "OCGUEST-ERROR";

/** dist/lab/common/qemuGuest.js and lab/common/qemuGuest.ts both sit two levels below the repo root... */
function repoRoot(): string {
  const candidates = ["../../../", "../../"].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  return candidates.find((p) => existsSync(join(p, "scripts", "build-qemu-guest.sh"))) ?? (candidates[0] as string);
}

export interface QemuGuestImage {
  dir: string;
  vmlinuz: string;
  initrd: string;
}

/** Builds the guest (or finds it in .cache) with scripts/build-qemu-guest.sh. */
export function buildQemuGuest(): Promise<QemuGuestImage> {
  const script = join(repoRoot(), "scripts", "build-qemu-guest.sh");
  return new Promise((resolve, reject) => {
    execFile("bash", [script], { maxBuffer: 1 << 20, timeout: 600_000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${script} failed: ${err.message}${stderr ? `\n${stderr.trim()}` : ""}`));
        return;
      }
      const dir = stdout.trim().split("\n").pop() ?? "";
      const image = { dir, vmlinuz: join(dir, "vmlinuz"), initrd: join(dir, "initrd.gz") };
      if (!existsSync(image.vmlinuz) || !existsSync(image.initrd)) {
        reject(new Error(`${script} printed ${JSON.stringify(dir)}, which has no vmlinuz and initrd.gz`));
        return;
      }
      resolve(image);
    });
  });
}

/**
 * The guest's initramfs with a CPU burner: a second archive appended (the kernel unpacks both,
 * the later file wins) whose /init starts `while :; do :; done` in the background and then runs the
 * guest's own /init, kept as /init-guest. Under TCG the burning vCPU keeps one host thread busy:
 * the load of `cage lab cpu --vm libvirt`. Written to DIR/initrd-burner.gz; returns its path.
 */
export function cpuBurnerInitrd(image: QemuGuestImage, dir: string): string {
  const root = join(dir, "burner-root");
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const out = join(dir, "initrd-burner.gz");
  try {
    execFileSync("bash", ["-c", 'set -o pipefail; zcat "$1" | (cd "$2" && cpio -i --quiet init) && mv "$2/init" "$2/init-guest"', "_", image.initrd, root], { stdio: ["ignore", "ignore", "pipe"] });
    // /dev first: busybox sh opens /dev/null as a background job's stdin, and without it the job never starts.
    writeFileSync(join(root, "init"), "#!/bin/sh\nmount -t devtmpfs dev /dev\n( while :; do :; done ) &\nexec /init-guest\n", { mode: 0o755 });
    execFileSync("bash", ["-c", 'set -o pipefail; cp "$1" "$3" && cd "$2" && find . | cpio -o -H newc --quiet -R 0:0 | gzip >> "$3"', "_", image.initrd, root, out], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? "";
    throw new Error(`cpuBurnerInitrd: cannot build ${out} from ${image.initrd}: ${(err as Error).message}${stderr ? `: ${stderr}` : ""}`, { cause: err });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return out;
}

/** Parses one serial-console line of the guest's memory report; null for any other line. */
export function parseGuestMemLine(line: string, seenAtMs: number): GuestMemInfo | null {
  const m = /^OCGUEST-MEM (\d+) (\d+) (\d+) (\d+)\s*$/.exec(line);
  if (!m) return null;
  return {
    seq: Number(m[1]),
    memTotalBytes: Number(m[2]) * 1024,
    memFreeBytes: Number(m[3]) * 1024,
    memAvailableBytes: Number(m[4]) * 1024,
    seenAtMs,
  };
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A guest must not outlive the process that started it, even when a test forgets stop().
  process.on("exit", () => {
    for (const child of running) child.kill("SIGKILL");
  });
}

function hasSetpriv(): boolean {
  return ["/usr/bin/setpriv", "/bin/setpriv"].some((p) => existsSync(p));
}

/**
 * Reads the guest's serial console as QEMU (or libvirt's `<serial type='file'>`) writes it to a
 * file: the ready line, /init's errors, and the latest memory report.
 */
export class GuestConsole {
  /** Latest memory report seen on the console, null before the first. */
  private lastMem: GuestMemInfo | null = null;
  private readOffset = 0;
  private partialLine = "";
  private readyLine: string | null = null;
  private readonly guestErrors: string[] = [];

  constructor(readonly serialLog: string) {}

  /** Whether /init has printed its ready line and a first memory report. */
  get ready(): boolean {
    return this.readyLine !== null && this.lastMem !== null;
  }

  /** What /init reported as errors (a module that did not load). */
  get errors(): readonly string[] {
    return this.guestErrors;
  }

  /** Reads new console output. */
  poll(): void {
    let size: number;
    try {
      size = statSync(this.serialLog).size;
    } catch {
      return; // QEMU has not created it yet
    }
    if (size < this.readOffset) {
      // Truncated: libvirt starts a restarted domain's console file afresh.
      this.readOffset = 0;
      this.partialLine = "";
    }
    if (size === this.readOffset) return;
    const fd = openSync(this.serialLog, "r");
    try {
      const buf = Buffer.alloc(size - this.readOffset);
      const n = readSync(fd, buf, 0, buf.length, this.readOffset);
      this.readOffset += n;
      const text = this.partialLine + buf.subarray(0, n).toString("latin1");
      const lines = text.split(/\r?\n/);
      this.partialLine = lines.pop() ?? "";
      const now = Date.now();
      for (const line of lines) {
        if (line.startsWith(MEM)) this.lastMem = parseGuestMemLine(line, now) ?? this.lastMem;
        else if (line.startsWith(READY)) this.readyLine = line;
        else if (line.startsWith(ERROR)) this.guestErrors.push(line.slice(ERROR.length).trim());
      }
    } finally {
      closeSync(fd);
    }
  }

  /** The guest's latest memory report (read now from the console). */
  memInfo(): GuestMemInfo | null {
    this.poll();
    return this.lastMem;
  }

  /**
   * Waits until the guest's /init is ready; `alive` says why waiting is pointless (QEMU exited)
   * and its message is thrown.
   */
  async waitUntilReady(timeoutMs: number, alive: () => string | null = () => null): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const dead = alive();
      if (dead !== null) throw new Error(dead);
      this.poll();
      if (this.guestErrors.length > 0) throw new Error(`guest /init reported: ${this.guestErrors.join("; ")}`);
      if (this.ready) return;
      await sleep(100);
    }
    throw new Error(`the guest did not report ${READY} within ${timeoutMs} ms (serial log ${this.serialLog})`);
  }
}

export class QemuGuest {
  private readonly console: GuestConsole;
  private exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly exitedPromise: Promise<void>;
  private stderr = "";

  private constructor(
    private readonly child: ChildProcess,
    readonly qmpSocket: string,
    readonly observerQmpSocket: string,
    readonly serialLog: string,
    readonly memoryBytes: number,
    readonly balloon: boolean,
    private readonly ownedDir: string | null,
  ) {
    this.console = new GuestConsole(serialLog);
    running.add(child);
    this.exitedPromise = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.exited = { code, signal };
        running.delete(child);
        resolve();
      });
    });
    child.stderr?.on("data", (b: Buffer) => {
      if (this.stderr.length < 8192) this.stderr += b.toString("utf8");
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Builds the guest if needed, starts QEMU, and waits until the guest's /init has loaded the virtio modules. */
  static async start(options: QemuGuestOptions = {}): Promise<QemuGuest> {
    const memoryMiB = options.memoryMiB ?? 512;
    if (!Number.isInteger(memoryMiB) || memoryMiB < 64 || memoryMiB > 16384) throw new RangeError(`QemuGuest: memoryMiB must be an integer from 64 to 16384, got ${memoryMiB}`);
    const bootTimeoutMs = options.bootTimeoutMs ?? 120_000;
    const balloon = options.balloon ?? true;
    const image = await buildQemuGuest();
    const ownedDir = options.dir === undefined ? mkdtempSync(join(tmpdir(), "ocage-guest-")) : null;
    const dir = options.dir ?? (ownedDir as string);
    const qmpSocket = join(dir, "qmp.sock");
    const observerQmpSocket = join(dir, "qmp-observer.sock");
    const serialLog = join(dir, "serial.log");
    rmSync(qmpSocket, { force: true });
    rmSync(observerQmpSocket, { force: true });
    rmSync(serialLog, { force: true });
    const qemuArgs = [
      "-accel", "tcg", "-cpu", "max", "-m", String(memoryMiB), "-smp", "1",
      "-nodefaults", "-display", "none", "-no-reboot", "-nic", "none",
      "-serial", `file:${serialLog}`, "-monitor", "none",
      "-qmp", `unix:${qmpSocket},server=on,wait=off`,
      // A QMP socket serves one client at a time: a second one lets a test or lab watch query-balloon
      // while the actuator holds the first.
      "-qmp", `unix:${observerQmpSocket},server=on,wait=off`,
      "-kernel", image.vmlinuz, "-initrd", image.initrd,
      // panic=-1: a guest whose /init dies reboots at once, and -no-reboot turns that into QEMU exiting.
      "-append", "console=ttyS0 rdinit=/init quiet panic=-1",
      ...(balloon ? ["-device", "virtio-balloon-pci,id=balloon0"] : []),
      ...(options.extraArgs ?? []),
    ];
    const qemu = options.qemuBinary ?? "qemu-system-x86_64";
    const [cmd, args] = hasSetpriv() ? ["setpriv", ["--pdeathsig", "KILL", "--", qemu, ...qemuArgs]] : [qemu, qemuArgs];
    installExitHook();
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
    const guest = new QemuGuest(child, qmpSocket, observerQmpSocket, serialLog, memoryMiB * 1024 * 1024, balloon, ownedDir);
    try {
      await guest.waitUntilReady(bootTimeoutMs, spawnError);
    } catch (err) {
      await guest.stop();
      throw err;
    }
    return guest;
  }

  private async waitUntilReady(timeoutMs: number, spawnError: Promise<Error>): Promise<void> {
    const spawn: { failed: Error | null } = { failed: null };
    void spawnError.then((e) => (spawn.failed = new Error(`QemuGuest: cannot start QEMU: ${e.message}`)));
    const alive = (): string | null => {
      if (spawn.failed !== null) return spawn.failed.message;
      if (this.exited) return `QemuGuest: QEMU exited during boot (code ${this.exited.code}, signal ${this.exited.signal}): ${this.stderr.trim()}`;
      return null;
    };
    try {
      await this.console.waitUntilReady(timeoutMs, alive);
    } catch (err) {
      const message = (err as Error).message;
      throw new Error(message.startsWith("QemuGuest:") ? message : `QemuGuest: ${message}`, { cause: err });
    }
    const deadline = Date.now() + 5000;
    while (!(existsSync(this.qmpSocket) && existsSync(this.observerQmpSocket))) {
      if (Date.now() > deadline) throw new Error(`QemuGuest: QEMU's QMP sockets ${this.qmpSocket}, ${this.observerQmpSocket} did not appear`);
      await sleep(100);
    }
  }

  /** The guest's latest memory report (read now from the console). */
  memInfo(): GuestMemInfo | null {
    return this.console.memInfo();
  }

  /** Waits for a memory report newer than `afterSeq` (default: the latest now) that satisfies `accept`. */
  async waitForMemInfo(accept: (m: GuestMemInfo) => boolean, timeoutMs: number): Promise<GuestMemInfo> {
    const deadline = Date.now() + timeoutMs;
    const startSeq = this.memInfo()?.seq ?? -1;
    for (;;) {
      const m = this.memInfo();
      if (m !== null && m.seq > startSeq && accept(m)) return m;
      if (this.exited) throw new Error(`QemuGuest: QEMU exited (code ${this.exited.code}, signal ${this.exited.signal})`);
      if (Date.now() >= deadline) {
        throw new Error(`QemuGuest: no memory report matched within ${timeoutMs} ms (last: ${m ? `MemTotal ${m.memTotalBytes} B, MemFree ${m.memFreeBytes} B` : "none"})`);
      }
      await sleep(100);
    }
  }

  get isRunning(): boolean {
    return this.exited === null;
  }

  /** Kills QEMU abruptly (SIGKILL) without cleaning up: for tests of a VM that goes away. */
  async kill(): Promise<void> {
    if (this.exited === null) this.child.kill("SIGKILL");
    await this.exitedPromise;
  }

  /** Stops QEMU (SIGTERM, SIGKILL after 3 s) and removes the temp dir it created. Idempotent. */
  async stop(): Promise<void> {
    if (this.exited === null) {
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 3000);
      await this.exitedPromise;
      clearTimeout(timer);
    }
    if (this.ownedDir !== null) rmSync(this.ownedDir, { recursive: true, force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
