// The live xentrace collector loop, without process concerns (arguments, signals, sockets).
//
// It runs Debian's `xentrace` (4.17 needs an output file: `/proc/self/fd/1`, a pipe to us), feeds what it
// writes into XentraceParser and DomainRunTimeAccounting, and every window publishes the per-domain
// and per-vCPU run time of that window on raw.xen. If xentrace dies it is started again with backoff,
// as a new session (new parser and accounting: a new run has a new TSC base and discards old buffers).
// Nothing in here throws out of the loop: failures are logged, counted and reported on `status`.

import { execFile, spawn, type ChildProcess } from "node:child_process";
import { closeSync, constants as fsConstants, openSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Logger } from "pino";
import { RestartSchedule, type BackoffOptions } from "../../runtime/restartBackoff.js";
import { encodeJson, type CollectorStatus } from "../../protocol/cageAggregate.js";
import { Encoding, Topic, type EncodingId } from "../../protocol/wireFormat.js";
import { encodeXenDomainCpu } from "../../protocol/xenDomainCpu.js";
import { DomainRunTimeAccounting } from "./domainRunTime.js";
import { DEFAULT_MAX_CR3_ENTRIES, DEFAULT_XENTRACE_ARGS, WindowDiffer, toXenDomainCpu, xentraceArgv } from "./liveWindow.js";
import { cpuHzFromXlInfo } from "./summarizeCommand.js";
import { XentraceParser } from "./traceRecords.js";
import { domainNamesFromXlList } from "../../host/xen/xlList.js";

export const COLLECTOR_NAME = "xentrace";

export interface Publisher {
  publish(topic: string, encoding: EncodingId, payload: Buffer): Promise<void>;
}

export interface LiveTraceOptions {
  publisher: Publisher;
  log: Logger;
  /** TSC rate in Hz; when absent it is read from `xl info` (cpu_mhz). */
  cpuHz?: number;
  /** Window length in ms. Default 1000. */
  windowMs?: number;
  /** xentrace binary. Default "xentrace" (from PATH). */
  xentracePath?: string;
  /** Options before the output file. Default `-D -e 0x0002f000 -S 32` (scheduler class). */
  xentraceArgs?: readonly string[];
  /**
   * Output file argument. Default "/proc/self/fd/1" (our pipe), not "/dev/stdout": that symlink is
   * made by udev/systemd, and where it is missing (a minimal dom0 with devtmpfs alone) xentrace's
   * O_CREAT silently made a regular file /dev/stdout and we read nothing.
   */
  outputPath?: string;
  /** xl binary, for `xl info` and `xl list`. Default "xl". */
  xlPath?: string;
  /** Look domain names up with `xl list`. Default true. */
  domainNames?: boolean;
  /** How often names are refreshed. Default 10 000 ms. */
  namesRefreshMs?: number;
  /** How often a status message is published. Default 5000 ms. */
  statusMs?: number;
  /** Restart policy for xentrace (and for retrying `xl info`). Default 500 ms doubling to 30 s. */
  backoff?: BackoffOptions;
  /** After SIGTERM, how long xentrace gets for its last pass before SIGKILL. Default 3000 ms. */
  stopGraceMs?: number;
  /** Parser reorder bound (records); lower = less delay when a pCPU is silent. Default 32768. */
  maxBufferedRecords?: number;
  /** Timeout for each `xl` run. Default 10 000 ms. */
  xlTimeoutMs?: number;
  /** mkfifo binary (coreutils), used to give xentrace a real pipe. Default "mkfifo". */
  mkfifoPath?: string;
}

export interface LiveTraceCounters {
  /** Trace records decoded (all sessions). */
  records: number;
  /** Records the hypervisor reported lost. */
  lost: number;
  /** Corruption events in the stream. */
  corrupt: number;
  /** Records with unknown event IDs (skipped). */
  unknown: number;
  /** Times xentrace was started again after it exited. */
  restarts: number;
  /** raw.xen messages published. */
  windows: number;
  /** Windows with no new trace time (nothing published). */
  emptyWindows: number;
  /** Bytes read from xentrace. */
  bytes: number;
  /** Records that arrived older than one already accounted. */
  lateRecords: number;
  /** Failed `xl info` / `xl list` runs. */
  xlErrors: number;
  /** Unexpected exceptions caught inside the loop. */
  internalErrors: number;
}

interface Session {
  readonly id: number;
  readonly parser: XentraceParser;
  readonly accounting: DomainRunTimeAccounting;
  readonly differ: WindowDiffer;
  readonly child: ChildProcess;
  readonly startedAt: number;
  readonly closed: Promise<void>;
  reportedLost: number;
  reportedCorrupt: number;
  ended: boolean;
  /** The "no trace bytes yet" warning was given. */
  warnedSilent: boolean;
}

/** A running xentrace that has written nothing for this long is worth a warning. */
const SILENT_WARN_MS = 15_000;

type TotalsKey = "records" | "lost" | "corrupt" | "unknown" | "bytes" | "lateRecords";

export class LiveXentrace {
  readonly counters: LiveTraceCounters = {
    records: 0,
    lost: 0,
    corrupt: 0,
    unknown: 0,
    restarts: 0,
    windows: 0,
    emptyWindows: 0,
    bytes: 0,
    lateRecords: 0,
    xlErrors: 0,
    internalErrors: 0,
  };
  /** Totals of sessions that have ended (the current one is added from its parser's stats). */
  private readonly finished: Record<TotalsKey, number> = { records: 0, lost: 0, corrupt: 0, unknown: 0, bytes: 0, lateRecords: 0 };
  private readonly windowMs: number;
  private readonly restartSchedule: RestartSchedule;
  /** Running `xl` commands, aborted on stop. */
  private readonly running = new Set<AbortController>();
  private readonly timers: NodeJS.Timeout[] = [];
  private names: ReadonlyMap<number, string> = new Map();
  private cpuHz: number | undefined;
  private session: Session | undefined;
  private sessions = 0;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private lastStderr = "";
  private xlListFailing = false;

  constructor(private readonly options: LiveTraceOptions) {
    this.windowMs = options.windowMs ?? 1000;
    this.cpuHz = options.cpuHz;
    this.restartSchedule = new RestartSchedule(options.backoff);
  }

  /** Starts the loop in the background; returns at once. */
  start(): void {
    if (this.loop !== undefined) return;
    this.publishStatus("started");
    const { statusMs = 5000, namesRefreshMs = 10_000, domainNames = true } = this.options;
    this.timers.push(
      setInterval(() => this.guard(() => this.publishWindow(false)), this.windowMs),
      setInterval(() => this.publishStatus("running"), statusMs),
    );
    if (domainNames) {
      void this.refreshNames();
      this.timers.push(setInterval(() => void this.refreshNames(), namesRefreshMs));
    }
    this.loop = this.run();
  }

  /** Stops xentrace (SIGTERM, SIGKILL after the grace period), waits for it and publishes its last window. */
  async stop(): Promise<void> {
    if (this.stopping) return this.loop;
    this.stopping = true;
    this.restartSchedule.cancel();
    for (const t of this.timers.splice(0)) clearInterval(t);
    for (const a of this.running) a.abort();
    this.wake?.();
    const s = this.session;
    if (s !== undefined && !s.ended) {
      s.child.kill("SIGTERM");
      const kill = setTimeout(() => s.child.kill("SIGKILL"), this.options.stopGraceMs ?? 3000);
      await s.closed;
      clearTimeout(kill);
    }
    await this.loop;
    this.publishStatus("stopped");
  }

  /** The running xentrace's PID, if any (for tests and logs). */
  get xentracePid(): number | undefined {
    return this.session?.ended === false ? this.session.child.pid : undefined;
  }

  // ---- the loop ----

  private async run(): Promise<void> {
    const { log } = this.options;
    while (!this.stopping) {
      try {
        if (this.cpuHz === undefined) {
          this.cpuHz = await this.readCpuHz();
          log.info({ cpuHz: this.cpuHz }, "TSC rate from xl info");
        }
        const { ranMs, how } = await this.runSession();
        if (this.stopping) break;
        this.counters.restarts++;
        const restart = this.restartAfter(ranMs);
        const message = `xentrace ${how} after ${ranMs} ms${this.lastStderr !== "" ? ` (last stderr: ${this.lastStderr})` : ""}; restarting in ${restart.delay} ms`;
        log.warn({ ranMs, delay: restart.delay, restarts: this.counters.restarts }, message);
        this.publishStatus("restarting", message);
        await restart.due;
      } catch (err) {
        if (this.stopping) break;
        this.counters.internalErrors++;
        const retry = this.restartAfter(0);
        const message = `${(err as Error).message}; retrying in ${retry.delay} ms`;
        log.error({ err }, message);
        this.publishStatus("error", message);
        await retry.due;
      }
    }
  }

  /**
   * A real pipe for xentrace's stdout. Node's "pipe" stdio is a socketpair, and xentrace 4.17 opens
   * its output file by name: open("/proc/self/fd/1") on a socket fails with ENXIO. So we make a FIFO in a
   * private directory, open both ends (read end non-blocking, first, so the write open does not
   * block), unlink it, and hand the write end to xentrace as its stdout.
   */
  private async openTracePipe(): Promise<{ readFd: number; writeFd: number }> {
    const dir = await mkdtemp(join(tmpdir(), "offloadcage-xentrace-"));
    const fifo = join(dir, "trace.fifo");
    try {
      await new Promise<void>((resolve, reject) => {
        execFile(this.options.mkfifoPath ?? "mkfifo", ["-m", "600", fifo], { timeout: 10_000 }, (err) => (err === null ? resolve() : reject(new Error(err.message))));
      });
      const readFd = openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
      try {
        return { readFd, writeFd: openSync(fifo, fsConstants.O_WRONLY) };
      } catch (err) {
        closeSync(readFd);
        throw err;
      }
    } catch (err) {
      throw new Error(`cannot make a pipe for xentrace's output: ${(err as Error).message.split("\n")[0]}`, { cause: err });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Runs xentrace once; resolves when it has exited and its output has been accounted. */
  private async runSession(): Promise<{ ranMs: number; how: string }> {
    const { log, xentracePath = "xentrace", xentraceArgs = DEFAULT_XENTRACE_ARGS, outputPath = "/proc/self/fd/1" } = this.options;
    const argv = xentraceArgv(xentraceArgs, outputPath);
    const { readFd, writeFd } = await this.openTracePipe();
    if (this.stopping) {
      closeSync(readFd);
      closeSync(writeFd);
      return { ranMs: 0, how: "not started (stopping)" };
    }
    const accounting = new DomainRunTimeAccounting();
    const parser = new XentraceParser({
      onRecord: (r) => accounting.record(r),
      onCpuEnd: (cpu, lastTsc) => accounting.endCpu(cpu, lastTsc),
      maxBufferedRecords: this.options.maxBufferedRecords ?? 32768,
    });
    const startedAt = Date.now();
    this.lastStderr = "";
    let child: ChildProcess;
    try {
      child = spawn(xentracePath, argv, { stdio: ["ignore", writeFd, "pipe"] });
    } catch (err) {
      closeSync(readFd);
      throw err;
    } finally {
      closeSync(writeFd); // only xentrace holds the write end now: its exit is our EOF
    }
    const trace = new Socket({ fd: readFd, readable: true, writable: false });
    return new Promise((resolve) => {
      let resolveClosed!: () => void;
      const closed = new Promise<void>((r) => (resolveClosed = r));
      const session: Session = {
        id: ++this.sessions,
        parser,
        accounting,
        differ: new WindowDiffer(),
        child,
        startedAt,
        closed,
        reportedLost: 0,
        reportedCorrupt: 0,
        ended: false,
        warnedSilent: false,
      };
      this.session = session;
      log.info({ pid: child.pid, command: [xentracePath, ...argv].join(" "), session: session.id }, "xentrace started");

      trace.on("data", (chunk: Buffer) => this.guard(() => parser.write(chunk)));
      trace.on("error", (err) => log.warn({ err: err.message }, "reading xentrace output failed"));
      if (child.stderr !== null) {
        createInterface({ input: child.stderr }).on("line", (line) => {
          if (line.trim() === "") return;
          this.lastStderr = line.slice(0, 300);
          log.info({ xentrace: line }, "xentrace stderr");
        });
      }
      let how = "exited";
      let exited = false;
      let traceClosed = false;
      let drainTimer: NodeJS.Timeout | undefined;
      const maybeFinish = (): void => {
        if (!exited || !traceClosed || session.ended) return;
        clearTimeout(drainTimer);
        this.guard(() => this.endSession(session));
        resolveClosed();
        resolve({ ranMs: Date.now() - startedAt, how });
      };
      const onExit = (): void => {
        if (exited) return;
        exited = true;
        // Normally EOF follows at once; a descendant still holding the pipe must not stall us.
        drainTimer = setTimeout(() => trace.destroy(), 2000);
        maybeFinish();
      };
      trace.once("close", () => {
        traceClosed = true;
        maybeFinish();
      });
      child.once("error", (err) => {
        how = `failed (${err.message})`;
        this.lastStderr = this.lastStderr || err.message;
        if (child.pid === undefined) onExit(); // never started: no "exit" follows
      });
      child.once("exit", (code, signal) => {
        if (!how.startsWith("failed")) how = signal !== null ? `killed by ${signal}` : `exited with code ${code}`;
        onExit();
      });
    });
  }

  private endSession(s: Session): void {
    if (s.ended) return;
    s.ended = true;
    try {
      s.parser.end();
    } catch (err) {
      this.counters.internalErrors++;
      this.options.log.error({ err }, "finishing the trace failed");
    }
    this.publishWindowOf(s, true);
    const st = s.parser.stats;
    this.finished.records += st.records;
    this.finished.lost += st.lostRecords;
    this.finished.corrupt += st.corrupt;
    this.finished.unknown += st.unknown;
    this.finished.bytes += st.bytes;
    this.finished.lateRecords += st.lateRecords;
    if (this.session === s) this.session = undefined;
    this.updateCounters();
  }

  // ---- windows ----

  private publishWindow(final: boolean): void {
    const s = this.session;
    if (s === undefined || s.ended) return;
    this.publishWindowOf(s, final);
  }

  private publishWindowOf(s: Session, final: boolean): void {
    const cpuHz = this.cpuHz;
    if (cpuHz === undefined) return;
    const snapshot = s.accounting.snapshot();
    const stats = s.parser.stats;
    if (!Number.isFinite(snapshot.atTsc)) {
      this.counters.emptyWindows++;
      // Xen writes scheduler records many times a second: silence means the output goes elsewhere.
      if (stats.bytes === 0 && !s.warnedSilent && Date.now() - s.startedAt > SILENT_WARN_MS) {
        s.warnedSilent = true;
        const outputPath = this.options.outputPath ?? "/proc/self/fd/1";
        this.options.log.warn({ session: s.id, outputPath }, `xentrace has written no trace data in ${SILENT_WARN_MS / 1000} s: is tracing on, and does ${outputPath} reach the collector's pipe?`);
      }
      return;
    }
    const window = s.differ.next(snapshot, stats.firstTsc);
    if (window.spanCycles === 0 && window.domains.length === 0 && !final) {
      this.counters.emptyWindows++;
      return;
    }
    const payload = toXenDomainCpu(window, {
      cpuHz,
      timeMs: Date.now(),
      session: s.id,
      final,
      lostRecords: stats.lostRecords - s.reportedLost,
      corrupt: stats.corrupt - s.reportedCorrupt,
      names: this.names,
      maxCr3Entries: DEFAULT_MAX_CR3_ENTRIES,
    });
    s.reportedLost = stats.lostRecords;
    s.reportedCorrupt = stats.corrupt;
    this.counters.windows++;
    void this.options.publisher.publish(Topic.rawXen, Encoding.json, encodeXenDomainCpu(payload));
  }

  // ---- status ----

  private updateCounters(): void {
    const st = this.session?.parser.stats;
    const c = this.counters;
    c.records = this.finished.records + (st?.records ?? 0);
    c.lost = this.finished.lost + (st?.lostRecords ?? 0);
    c.corrupt = this.finished.corrupt + (st?.corrupt ?? 0);
    c.unknown = this.finished.unknown + (st?.unknown ?? 0);
    c.bytes = this.finished.bytes + (st?.bytes ?? 0);
    c.lateRecords = this.finished.lateRecords + (st?.lateRecords ?? 0);
  }

  private publishStatus(state: string, message?: string): void {
    try {
      this.updateCounters();
      const status: CollectorStatus = {
        v: 1,
        collector: COLLECTOR_NAME,
        state,
        ...(message !== undefined ? { message } : {}),
        counters: { ...this.counters },
        timeMs: Date.now(),
      };
      void this.options.publisher.publish(Topic.status, Encoding.json, encodeJson(status));
    } catch (err) {
      this.counters.internalErrors++;
      this.options.log.error({ err }, "publishing status failed");
    }
  }

  // ---- xl ----

  private xl(args: string[]): Promise<string> {
    const { xlPath = "xl", xlTimeoutMs = 10_000 } = this.options;
    if (this.stopping) return Promise.reject(new Error("stopping"));
    const abort = new AbortController();
    this.running.add(abort);
    return new Promise((resolve, reject) => {
      execFile(xlPath, args, { timeout: xlTimeoutMs, signal: abort.signal, maxBuffer: 4 << 20 }, (err, stdout) => {
        this.running.delete(abort);
        if (err !== null) reject(new Error(`${xlPath} ${args.join(" ")}: ${err.message.split("\n")[0]}`));
        else resolve(stdout);
      });
    });
  }

  private async readCpuHz(): Promise<number> {
    try {
      return cpuHzFromXlInfo(await this.xl(["info"]));
    } catch (err) {
      this.counters.xlErrors++;
      throw new Error(`cannot get the TSC rate (pass --cpu-hz): ${(err as Error).message}`, { cause: err });
    }
  }

  private async refreshNames(): Promise<void> {
    try {
      this.names = domainNamesFromXlList(await this.xl(["list"]));
      if (this.xlListFailing) this.options.log.info("xl list works again; domain names restored");
      this.xlListFailing = false;
    } catch (err) {
      if (this.stopping) return;
      this.counters.xlErrors++;
      // Names are optional: say so once, then keep the last names quietly.
      if (!this.xlListFailing) this.options.log.warn({ err: (err as Error).message }, "xl list failed; windows carry no domain names until it works");
      this.xlListFailing = true;
    }
  }

  // ---- helpers ----

  /** The next run, scheduled by the backoff; `due` also resolves at once when stop() wakes the loop. */
  private restartAfter(ranMs: number): { delay: number; due: Promise<void> } {
    let delay = 0;
    const due = new Promise<void>((resolve) => {
      const wake = (): void => {
        this.wake = undefined;
        resolve();
      };
      if (this.stopping) return wake();
      this.wake = wake;
      delay = this.restartSchedule.schedule(ranMs, wake) ?? 0;
    });
    return { delay, due };
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.counters.internalErrors++;
      this.options.log.error({ err }, "unexpected error in the xentrace collector");
    }
  }
}
