/**
 * Runs bpf/pageCache.bt under bpftrace, turns its output into PageCacheBatch callbacks, and
 * keeps it running: a bpftrace that dies or stops sending heartbeats is restarted with backoff.
 * A restart starts from empty kernel maps, so cumulative figures begin again from zero
 * (counters.starts tells a consumer it happened).
 */
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import type { PageCacheBatch } from "../../protocol/rawBatches.js";
import { DEFAULT_BACKOFF, RestartSchedule, type BackoffOptions } from "../../runtime/restartBackoff.js";
import { attachTimeoutFromEnv } from "../../runtime/bpftraceAttachTimeout.js";
import { PageCacheOutputParser } from "./pageCacheOutput.js";
import { pageCacheInvocation, validatePageCacheOptions, type PageCacheCollectorOptions } from "./pageCacheOptions.js";

const DEFAULT_ATTACH_TIMEOUT_MS = 60_000;

export interface PageCacheSourceEvent {
  level: "info" | "warn" | "error";
  message: string;
  /** Set when bpftrace's state changed with this event; the collector publishes it as its status. */
  state?: "running" | "restarting";
}

export interface PageCacheSourceOptions extends PageCacheCollectorOptions {
  onBatch: (b: PageCacheBatch) => void;
  onEvent?: (e: PageCacheSourceEvent) => void;
  /** Restart delays; defaults to 0.5 s doubling to 30 s. */
  restartBackoff?: BackoffOptions;
  /** A running bpftrace with no heartbeat for this long is killed and restarted. Default max(10 intervals, 10 s). */
  stallTimeoutMs?: number;
  /** How long bpftrace may take to compile and attach (large maps take seconds). Default 60 s. */
  attachTimeoutMs?: number;
  bpftracePath?: string;
  scriptPath?: string;
  /** Aborting it while bpftrace attaches kills that bpftrace and fails the start at once. */
  signal?: AbortSignal;
}

export interface PageCacheSource {
  /** Stops bpftrace (SIGINT, then SIGKILL after 3 s) and resolves once it has exited. */
  stop(): Promise<void>;
  /** Cumulative over all bpftrace runs, updated in place. Kernel figures are the latest run's. */
  counters: PageCacheSourceCounters;
  /** PID of the running bpftrace, if one is running. */
  bpftracePid(): number | undefined;
}

const TRACEPOINT_DIRS = ["/sys/kernel/tracing/events/filemap", "/sys/kernel/debug/tracing/events/filemap"];
const KILL_AFTER_MS = 3000;

/** Resolves once bpftrace has attached and started; rejects if the first start fails. */
export async function startPageCacheSource(opts: PageCacheSourceOptions): Promise<PageCacheSource> {
  validatePageCacheOptions(opts);
  if (typeof opts.onBatch !== "function") throw new Error("page cache collector: onBatch must be a function");
  if (!TRACEPOINT_DIRS.some((d) => existsSync(d))) {
    throw new Error(`page cache collector: tracepoints filemap:* not found under ${TRACEPOINT_DIRS.join(" or ")} (is tracefs mounted? scripts/ensure-host.sh mounts it)`);
  }
  if (!existsSync(`${opts.cgroupV2Path}/cgroup.procs`)) {
    throw new Error(`page cache collector: ${opts.cgroupV2Path} is not a cgroup directory (no cgroup.procs)`);
  }
  const invocation = pageCacheInvocation(opts, systemPageSize(), opts.scriptPath, opts.bpftracePath);
  const runner = new BpftraceRunner(opts, invocation);
  await runner.start();
  return {
    stop: () => runner.stop(),
    counters: runner.counters,
    bpftracePid: () => runner.childPid(),
  };
}

function systemPageSize(): number {
  try {
    return Number(execFileSync("getconf", ["PAGESIZE"], { encoding: "utf8" }).trim());
  } catch {
    return 4096;
  }
}

/** A type alias (not an interface) so it is assignable to Record<string, number>. */
export type PageCacheSourceCounters = {
  starts: number;
  restarts: number;
  exits: number;
  stalls: number;
  batches: number;
  invalidLines: number;
  lostEvents: number;
  helperErrors: number;
  onBatchErrors: number;
  untrackedInserts: number;
  untrackedBytes: number;
  staleOwners: number;
  ownedFolios: number;
};

class BpftraceRunner {
  readonly counters: PageCacheSourceCounters = {
    starts: 0,
    restarts: 0,
    exits: 0,
    stalls: 0,
    batches: 0,
    invalidLines: 0,
    lostEvents: 0,
    helperErrors: 0,
    onBatchErrors: 0,
    untrackedInserts: 0,
    untrackedBytes: 0,
    staleOwners: 0,
    ownedFolios: 0,
  };
  private readonly finished = { batches: 0, invalidLines: 0, lostEvents: 0, helperErrors: 0 };
  private readonly restarts: RestartSchedule;
  private readonly stallTimeoutMs: number;
  private child: ChildProcessWithoutNullStreams | null = null;
  private childExited: Promise<void> = Promise.resolve();
  private stopping = false;
  private watchdog: NodeJS.Timeout | null = null;
  private lastHeartbeatAt = 0;

  constructor(
    private readonly opts: PageCacheSourceOptions,
    private readonly invocation: { command: string; args: string[]; env: Record<string, string> },
  ) {
    this.restarts = new RestartSchedule(opts.restartBackoff ?? DEFAULT_BACKOFF);
    this.stallTimeoutMs = opts.stallTimeoutMs ?? Math.max(10 * opts.intervalMs, 10_000);
  }

  childPid(): number | undefined {
    return this.child?.pid;
  }

  /** First start: failures reject instead of restarting, so a bad option surfaces at once. */
  async start(): Promise<void> {
    // bpftrace runs in its own process group: it must not outlive us when we exit without stop().
    process.on("exit", this.killOnExit);
    try {
      await this.runOnce();
    } catch (err) {
      process.off("exit", this.killOnExit);
      throw err;
    }
    this.watchdog = setInterval(() => this.checkHeartbeat(), Math.min(this.opts.intervalMs, 1000));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.restarts.cancel();
    if (this.watchdog) clearInterval(this.watchdog);
    const child = this.child;
    if (child) {
      const killTimer = setTimeout(() => child.kill("SIGKILL"), KILL_AFTER_MS);
      child.kill("SIGINT");
      await this.childExited;
      clearTimeout(killTimer);
    }
    process.off("exit", this.killOnExit);
  }

  private readonly killOnExit = (): void => {
    this.child?.kill("SIGKILL");
  };

  private emit(level: PageCacheSourceEvent["level"], message: string, state?: PageCacheSourceEvent["state"]): void {
    try {
      this.opts.onEvent?.(state === undefined ? { level, message } : { level, message, state });
    } catch {
      // A failing log callback must not stop collection.
    }
  }

  private runOnce(): Promise<void> {
    const startedAt = Date.now();
    const parser = new PageCacheOutputParser();
    const child = spawn(this.invocation.command, this.invocation.args, {
      env: { ...process.env, ...this.invocation.env },
      stdio: ["ignore", "pipe", "pipe"],
      // Own process group: a Ctrl-C aimed at the collector must not kill bpftrace behind our back.
      detached: true,
    }) as unknown as ChildProcessWithoutNullStreams;
    this.child = child;
    this.counters.starts++;
    let stderrTail = "";
    let attached = false;
    let resolveStart!: () => void;
    let rejectStart!: (err: Error) => void;
    const started = new Promise<void>((res, rej) => {
      resolveStart = res;
      rejectStart = rej;
    });
    const attachTimeoutMs = this.opts.attachTimeoutMs ?? attachTimeoutFromEnv("page cache collector", DEFAULT_ATTACH_TIMEOUT_MS);
    const attachTimer = setTimeout(() => {
      if (attached) return;
      rejectStart(new Error(`page cache collector: bpftrace did not attach within ${attachTimeoutMs} ms`));
      child.kill("SIGKILL");
    }, attachTimeoutMs);
    const abortAttach = (): void => {
      if (attached) return;
      clearTimeout(attachTimer);
      rejectStart(new Error("page cache collector: start-up aborted while bpftrace was attaching"));
      child.kill("SIGKILL");
    };
    if (this.opts.signal?.aborted === true) abortAttach();
    else this.opts.signal?.addEventListener("abort", abortAttach, { once: true });

    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-4000);
    });
    const lines = createInterface({ input: child.stdout, crlfDelay: Infinity });
    lines.on("line", (line) => {
      const batch = parser.feed(line);
      if (!attached && parser.startedAtNs !== null) {
        attached = true;
        this.lastHeartbeatAt = Date.now();
        clearTimeout(attachTimer);
        resolveStart();
      }
      if (batch) {
        this.lastHeartbeatAt = Date.now();
        try {
          this.opts.onBatch(batch);
        } catch (err) {
          this.counters.onBatchErrors++;
          this.emit("error", `page cache collector: onBatch threw: ${(err as Error).message}`);
        }
      }
      this.refreshCounters(parser);
    });

    this.childExited = new Promise<void>((resolve) => {
      child.on("error", (err) => {
        // spawn failure (ENOENT): 'close' still follows.
        stderrTail += `\n${err.message}`;
      });
      child.on("close", (code, signal) => {
        clearTimeout(attachTimer);
        this.opts.signal?.removeEventListener("abort", abortAttach);
        this.counters.exits++;
        this.finished.batches += parser.counters.batches;
        this.finished.invalidLines += parser.counters.invalidLines;
        this.finished.lostEvents += parser.counters.lostEvents;
        this.finished.helperErrors += parser.counters.helperErrors;
        if (this.child === child) this.child = null;
        const why = `bpftrace exited (${signal ?? `code ${String(code)}`})${describeStderr(stderrTail)}`;
        if (!attached) rejectStart(new Error(`page cache collector: ${why}`));
        resolve();
        if (this.stopping || !attached) return;
        this.scheduleRestart(Date.now() - startedAt, (delay) => `page cache collector: ${why}; restarting in ${delay} ms`, "warn");
      });
    });
    return started;
  }

  private scheduleRestart(ranForMs: number, why: (delayMs: number) => string, level: "warn" | "error"): void {
    const delay = this.restarts.schedule(ranForMs, () => {
      if (this.stopping) return;
      this.counters.restarts++;
      this.runOnce().then(
        () => this.emit("info", "page cache collector: bpftrace restarted and attached", "running"),
        // A failed restart never ends the loop: try again later.
        (err: Error) => this.scheduleRestart(0, (d) => `${err.message}; retrying in ${d} ms`, "error"),
      );
    });
    if (delay !== null) this.emit(level, why(delay), "restarting");
  }

  private checkHeartbeat(): void {
    const child = this.child;
    if (!child || this.stopping || this.lastHeartbeatAt === 0) return;
    if (Date.now() - this.lastHeartbeatAt > this.stallTimeoutMs) {
      this.counters.stalls++;
      this.lastHeartbeatAt = Date.now();
      this.emit("warn", `page cache collector: no heartbeat from bpftrace for ${this.stallTimeoutMs} ms; killing it`);
      child.kill("SIGKILL");
    }
  }

  private refreshCounters(parser: PageCacheOutputParser): void {
    const c = this.counters;
    c.batches = this.finished.batches + parser.counters.batches;
    c.invalidLines = this.finished.invalidLines + parser.counters.invalidLines;
    c.lostEvents = this.finished.lostEvents + parser.counters.lostEvents;
    c.helperErrors = this.finished.helperErrors + parser.counters.helperErrors;
    c.untrackedInserts = parser.kernel.untrackedInserts;
    c.untrackedBytes = parser.kernel.untrackedBytes;
    c.staleOwners = parser.kernel.staleOwners;
    c.ownedFolios = parser.kernel.ownedFolios;
  }
}

/** bpftrace's stderr minus the harmless RLIMIT_MEMLOCK notice this host always prints. */
function describeStderr(stderr: string): string {
  const text = stderr
    .split("\n")
    .map((l) => l.replace(/ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK[^]*?fix the problem/, "").trim())
    .filter((l) => l !== "")
    .join(" | ");
  return text === "" ? "" : `: ${text.slice(-1000)}`;
}
