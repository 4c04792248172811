/**
 * Runs the CPU program (dist/bpf/cpuTime, the libbpf one, or bpf/cpuTime.bt under bpftrace; see
 * cpuProgram.ts), turns its output into CpuBatch windows, and keeps it running: restarts with
 * backoff if it dies. No ZeroMQ here: `cage measure` uses this in-process.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { setPriority } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CpuBatch } from "../../protocol/rawBatches.js";
import { LineSplitter, parseBpftraceLine } from "./bpftraceJsonLines.js";
import { CpuWindowBuilder } from "./cpuWindows.js";
import { RestartSchedule, type BackoffOptions } from "../../runtime/restartBackoff.js";
import { attachTimeoutFromEnv } from "../../runtime/bpftraceAttachTimeout.js";
import { pageOutFileMappings } from "./bpftracePageOut.js";
import { CPU_PROGRAM_SETTINGS, type CpuProgramSetting } from "../../config/cageConfig.js";
import { programCommand, programPlan, type CpuProgram } from "./cpuProgram.js";

export { WINDOW_TICK_MS } from "./cpuProgram.js";

export interface CpuTimeSourceEvent {
  level: "info" | "warn" | "error";
  message: string;
  /** Set when the source's state changed with this event; a collector publishes it as its status. */
  state?: CpuTimeSourceState;
}

export type CpuTimeSourceState = "starting" | "running" | "restarting" | "stopped";

export interface CpuTimeSourceOptions {
  /** Window length, ms (10..60000). */
  intervalMs: number;
  onBatch: (b: CpuBatch) => void;
  onEvent?: (e: CpuTimeSourceEvent) => void;
  /** Default "auto": the libbpf program if it is built and attaches, else bpftrace. */
  program?: CpuProgramSetting;
  /** The libbpf program's loader. Default: dist/bpf/cpuTime of this build. */
  loaderPath?: string;
  /** Default "bpftrace" (looked up in PATH). */
  bpftracePath?: string;
  /** Most threads recorded per window and map set (BPFTRACE_MAP_KEYS_MAX for bpftrace). Default 16384. */
  mapKeysMax?: number;
  /** Default: bpf/cpuTime.bt of this checkout. */
  scriptPath?: string;
  /** How long bpftrace may take to compile and attach. Default: attachTimeoutFromEnv() (30 s). */
  attachTimeoutMs?: number;
  /** Aborting it during start-up kills the attaching bpftrace and makes the start fail at once. */
  signal?: AbortSignal;
}

export interface CpuTimeSource {
  stop(): Promise<void>;
  readonly restarts: number;
  readonly counters: Record<string, number>;
  /** Pid of the running program (bpftrace or the libbpf loader), undefined while it is down. For tests and diagnostics. */
  readonly bpftracePid: number | undefined;
  /** The program chosen at start (restarts run the same one). */
  readonly program: CpuProgram;
  readonly state: CpuTimeSourceState;
}

export const DEFAULT_MAP_KEYS_MAX = 16384;
/** A run of 30 s counts as healthy: the next failure starts the backoff from the beginning. */
const RESTART_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, healthyAfterMs: 30_000 };
const ATTACH_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 3_000;
const TRACEFS = "/sys/kernel/tracing";
const BPFTRACE_NICE = -10;
/** `relative` in this module's directory or the nearest one above it that has it (sources and dist/ alike), or null. */
function findAbove(relative: string): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, relative);
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return null;
}

/** Finds bpf/cpuTime.bt above this module (works from the sources and from dist/). */
export function defaultScriptPath(): string {
  const found = findAbove(join("bpf", "cpuTime.bt"));
  if (found === null) throw new Error("cpu collector: bpf/cpuTime.bt not found above " + dirname(fileURLToPath(import.meta.url)));
  return found;
}

/** Finds dist/bpf/cpuTime (built by scripts/build.sh) above this module; where it would be when it is not built. */
export function defaultLoaderPath(): string {
  // Where scripts/build.sh puts it: dist/collectors/cpu/ -> dist/bpf/.
  return findAbove(join("bpf", "cpuTime")) ?? join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bpf", "cpuTime");
}

function validate(opts: CpuTimeSourceOptions): void {
  if (!Number.isInteger(opts.intervalMs) || opts.intervalMs < 10 || opts.intervalMs > 60_000) {
    throw new Error(`cpu collector: intervalMs must be an integer from 10 to 60000, got ${String(opts.intervalMs)}`);
  }
  if (opts.mapKeysMax !== undefined && (!Number.isInteger(opts.mapKeysMax) || opts.mapKeysMax < 16 || opts.mapKeysMax > 4_194_304)) {
    throw new Error(`cpu collector: mapKeysMax must be an integer from 16 to 4194304, got ${String(opts.mapKeysMax)}`);
  }
  if (typeof opts.onBatch !== "function") throw new Error("cpu collector: onBatch must be a function");
  if (opts.program !== undefined && !CPU_PROGRAM_SETTINGS.includes(opts.program)) {
    throw new Error(`cpu collector: program must be auto, libbpf or bpftrace, got ${JSON.stringify(opts.program)}`);
  }
  if (opts.attachTimeoutMs !== undefined && (!Number.isInteger(opts.attachTimeoutMs) || opts.attachTimeoutMs < 1000 || opts.attachTimeoutMs > 3_600_000)) {
    throw new Error(`cpu collector: attachTimeoutMs must be an integer from 1000 to 3600000, got ${String(opts.attachTimeoutMs)}`);
  }
}

/** Starts the CPU program and resolves once its probes are attached (first window marker). */
export async function startCpuTimeSource(opts: CpuTimeSourceOptions): Promise<CpuTimeSource> {
  validate(opts);
  const source = new ProgramCpuSource(opts);
  await source.start();
  return source;
}

interface Run {
  child: ChildProcess;
  startedAt: number;
  exited: Promise<void>;
  stderrTail: string;
  attached: boolean;
}

class ProgramCpuSource implements CpuTimeSource {
  private readonly bpftracePath: string;
  private readonly loaderPath: string;
  program: CpuProgram = "bpftrace";
  private readonly mapKeysMax: number;
  private readonly scriptPath: string;
  private readonly attachTimeoutMs: number;
  private readonly emit: (e: CpuTimeSourceEvent) => void;
  private run: Run | null = null;
  private readonly restartSchedule = new RestartSchedule(RESTART_BACKOFF);
  private stopping = false;
  /** The first start succeeded: from now on a dying bpftrace is restarted. */
  private started = false;
  private stopped: Promise<void> | null = null;
  private readonly killOnExit = (): void => {
    this.run?.child.kill("SIGKILL");
  };
  restarts = 0;
  state: CpuTimeSourceState = "starting";
  readonly counters: Record<string, number> = {
    batches: 0, restarts: 0, parseErrors: 0, invalidUtf8: 0, overlongLines: 0, lostEvents: 0, mapFull: 0,
    repeatedMarkers: 0, skippedWindows: 0, unknownLines: 0, badEntries: 0, callbackErrors: 0, lateWindows: 0,
  };

  constructor(private readonly opts: CpuTimeSourceOptions) {
    this.bpftracePath = opts.bpftracePath ?? "bpftrace";
    this.mapKeysMax = opts.mapKeysMax ?? DEFAULT_MAP_KEYS_MAX;
    this.scriptPath = opts.scriptPath ?? defaultScriptPath();
    this.loaderPath = opts.loaderPath ?? defaultLoaderPath();
    this.attachTimeoutMs = opts.attachTimeoutMs ?? attachTimeoutFromEnv("cpu collector", ATTACH_TIMEOUT_MS);
    const onEvent = opts.onEvent;
    this.emit = (e) => {
      try {
        onEvent?.(e);
      } catch {
        this.counters.callbackErrors!++;
      }
    };
  }

  get bpftracePid(): number | undefined {
    return this.run?.child.pid;
  }

  /** The program's name in messages. */
  private get name(): string {
    return this.program === "libbpf" ? "the libbpf CPU program" : "bpftrace";
  }

  /** First start: a failure here is the caller's to handle, with a clear message. */
  async start(): Promise<void> {
    process.on("exit", this.killOnExit);
    const setting = this.opts.program ?? "auto";
    const plan = programPlan(setting, existsSync(this.loaderPath), this.loaderPath);
    try {
      for (let i = 0; ; i++) {
        this.program = plan.tries[i]!;
        try {
          await this.firstLaunch();
          break;
        } catch (err) {
          if (i + 1 >= plan.tries.length || this.opts.signal?.aborted === true) throw err;
          this.emit({ level: "info", message: `using bpftrace (auto): ${(err as Error).message.replace(/^cpu collector: /, "")}` });
        }
      }
    } catch (err) {
      process.off("exit", this.killOnExit);
      this.state = "stopped";
      throw err;
    }
    if (setting === "auto" && this.program === "libbpf") this.emit({ level: "info", message: `using the libbpf program ${this.loaderPath} (auto)` });
    if (plan.skipped !== null) this.emit({ level: "info", message: `using bpftrace (auto): ${plan.skipped}` });
    this.started = true;
    this.state = "running";
    if (this.run === null && !this.stopping) this.scheduleRestart(`${this.name} exited right after attaching`, 0);
  }

  private async firstLaunch(): Promise<void> {
    // BTF tracepoints do not go through tracefs: only bpftrace needs it.
    if (this.program === "libbpf") return this.launch();
    if (!tracepointsVisible()) await this.mountTracefs();
    try {
      await this.launch();
    } catch (err) {
      // A tracefs that vanished or was never mounted is the one failure we can fix ourselves.
      if (tracepointsVisible()) throw err;
      await this.mountTracefs();
      await this.launch();
    }
  }

  private async mountTracefs(): Promise<void> {
    try {
      await new Promise<void>((resolve, reject) => {
        execFile("mount", ["-t", "tracefs", "nodev", TRACEFS], { timeout: 10_000 }, (err, _out, stderr) => {
          if (err) reject(new Error(stderr.trim() || err.message));
          else resolve();
        });
      });
    } catch (err) {
      throw new Error(`cpu collector: tracepoints are not visible (${TRACEFS}/events/sched missing) and mounting tracefs at ${TRACEFS} failed: ${(err as Error).message}; run scripts/ensure-host.sh as root`, { cause: err });
    }
    this.emit({ level: "info", message: `mounted tracefs at ${TRACEFS} (it was not mounted)` });
  }

  /** Once attached, bpftrace's compiler pages are dead weight in its RSS: let the kernel take them back. */
  private pageOut(child: ChildProcess): void {
    if (child.pid === undefined) return;
    pageOutFileMappings(child.pid).then(
      (r) => {
        const failed = r.failedMappings === 0 ? "" : `; ${r.failedMappings} mappings refused (first: ${r.firstFailure})`;
        this.emit({ level: "info", message: `bpftrace attached: its read-only file mappings paged out (${(r.advisedBytes / 1048576).toFixed(1)} MiB advised${failed})` });
      },
      (err: Error) => this.emit({ level: "info", message: `could not page out bpftrace's file mappings (its RSS stays higher): ${err.message}` }),
    );
  }

  /** Spawns the program and waits for its first window marker (proof that all probes are attached). */
  private launch(): Promise<void> {
    const name = this.name;
    const cmd = programCommand(this.program, { bpftrace: this.bpftracePath, script: this.scriptPath, loader: this.loaderPath }, this.opts.intervalMs, this.mapKeysMax);
    const child = spawn(cmd.command, cmd.args, {
      // The loader exits when its stdin pipe closes: even a SIGKILLed agent leaves nothing attached.
      stdio: [this.program === "libbpf" ? "pipe" : "ignore", "pipe", "pipe"],
      env: { ...process.env, ...cmd.env },
    });
    child.stdin?.on("error", () => {}); // EPIPE once the loader is gone; its exit is handled below
    if (child.pid !== undefined) {
      try {
        // The program's user space reads and clears the maps; starved by a CPU-bound load it
        // would read a window's map set after probes start reusing it.
        setPriority(child.pid, BPFTRACE_NICE);
      } catch (err) {
        this.emit({ level: "info", message: `could not raise ${name}'s priority (nice ${BPFTRACE_NICE}): ${(err as Error).message}` });
      }
    }
    const builder = new CpuWindowBuilder({ intervalMs: this.opts.intervalMs, mapKeysMax: this.mapKeysMax });
    const splitter = new LineSplitter();
    let resolveExit!: () => void;
    const run: Run = {
      child, startedAt: Date.now(), stderrTail: "", attached: false,
      exited: new Promise<void>((r) => { resolveExit = r; }),
    };
    this.run = run;

    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err: Error | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(attachTimer);
        this.opts.signal?.removeEventListener("abort", abortAttach);
        if (err) reject(err);
        else resolve();
      };
      const attachTimer = setTimeout(() => {
        settle(new Error(`cpu collector: ${name} did not attach its probes within ${this.attachTimeoutMs / 1000} s${stderrSummary(run.stderrTail)}`));
        child.kill("SIGKILL");
      }, this.attachTimeoutMs);
      const abortAttach = (): void => {
        settle(new Error(`cpu collector: start-up aborted while ${name} was attaching`));
        child.kill("SIGKILL");
      };
      if (this.opts.signal?.aborted === true) abortAttach();
      else this.opts.signal?.addEventListener("abort", abortAttach, { once: true });

      const handleLine = (raw: Buffer): void => {
        const r = parseBpftraceLine(raw);
        if (r.kind === "blank") return;
        if (r.invalidUtf8) this.counters.invalidUtf8!++;
        if (r.kind === "invalid") {
          this.counters.parseErrors!++;
          return;
        }
        const before = { ...builder.counters };
        const batch = builder.accept(r.line);
        for (const k of ["lostEvents", "mapFull", "repeatedMarkers", "skippedWindows", "unknownLines", "badEntries"] as const) {
          this.counters[k]! += builder.counters[k] - before[k];
        }
        if (r.line.type === "lost_events") this.emit({ level: "warn", message: `bpftrace lost ${r.line.events} events (perf ring buffer full)` });
        if (builder.counters.mapFull > before.mapFull) this.emit({ level: "warn", message: `a CPU map reached BPFTRACE_MAP_KEYS_MAX=${this.mapKeysMax}: some threads were not counted` });
        if (r.line.type === "printf" && !run.attached && r.line.text.startsWith("cpu_window ")) {
          run.attached = true;
          settle(null);
          if (this.program === "bpftrace") this.pageOut(child);
        }
        if (batch) {
          this.counters.batches!++;
          // The probes write this window's map set again from windowEnd + 2 intervals (bpf/cpuTime.bt
          // keeps 3 sets); a marker that reaches us later means the set may have been read mixed.
          // process.hrtime and bpftrace's nsecs are both CLOCK_MONOTONIC.
          const lateNs = process.hrtime.bigint() - (batch.windowEndNs + 2n * BigInt(this.opts.intervalMs) * 1_000_000n);
          if (r.line.type === "printf" && r.line.text.startsWith("cpu_window ") && lateNs > 0n) {
            this.counters.lateWindows!++;
            this.emit({ level: "warn", message: `window ending at ${batch.windowEndNs} ns arrived ${Number(lateNs / 1_000_000n)} ms too late: ${name}'s user space is starved, figures may be off` });
          }
          try {
            this.opts.onBatch(batch);
          } catch (err) {
            this.counters.callbackErrors!++;
            this.emit({ level: "error", message: `onBatch threw: ${(err as Error).message}` });
          }
        }
      };

      child.stdout!.on("data", (chunk: Buffer) => {
        const overlongBefore = splitter.overlongLines;
        for (const line of splitter.push(chunk)) handleLine(line);
        this.counters.overlongLines! += splitter.overlongLines - overlongBefore;
      });
      child.stderr!.on("data", (chunk: Buffer) => {
        run.stderrTail = (run.stderrTail + chunk.toString("utf8")).slice(-4000);
      });
      child.on("error", (err: NodeJS.ErrnoException) => {
        const msg = err.code !== "ENOENT"
          ? `cpu collector: cannot run ${cmd.command}: ${err.message}`
          : this.program === "libbpf"
            ? `cpu collector: the libbpf CPU program is not built: ${cmd.command} is missing (scripts/build.sh builds it when clang-14, bpftool and libbpf-dev are installed: scripts/ensure-host.sh)`
            : `cpu collector: bpftrace not found at "${this.bpftracePath}" (install the Debian package bpftrace, or run scripts/ensure-host.sh)`;
        settle(new Error(msg)); // "close" follows and does the rest
      });
      child.on("close", (code, signal) => {
        const last = splitter.flush();
        if (last) handleLine(last);
        const why = `${name} exited (${signal ? `signal ${signal}` : `code ${code}`})${stderrSummary(run.stderrTail)}`;
        settle(new Error(`cpu collector: ${why}`));
        this.onExit(run, why, resolveExit);
      });
    });
  }

  /** The only place that schedules a restart, so there is never more than one pending. */
  private onExit(run: Run, why: string, resolveExit: () => void): void {
    if (this.run === run) this.run = null;
    resolveExit();
    if (this.stopping || !this.started) return; // first-start failures are reported by start()
    this.scheduleRestart(why, Date.now() - run.startedAt);
  }

  private scheduleRestart(why: string, ranForMs: number): void {
    const delay = this.restartSchedule.schedule(ranForMs, () => {
      if (this.stopping) return;
      this.restarts++;
      this.counters.restarts = this.restarts;
      this.launch().then(
        () => {
          this.state = "running";
          this.emit({ level: "info", message: `${this.name} restarted (restart #${this.restarts}), windows resume`, state: "running" });
        },
        () => {
          // Nothing to do: the failed run's "close" handler (onExit) schedules the next try.
        },
      );
    });
    if (delay === null) return;
    this.state = "restarting";
    this.emit({ level: "warn", message: `${why}; restarting it in ${delay} ms`, state: "restarting" });
  }

  stop(): Promise<void> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    this.restartSchedule.cancel();
    const run = this.run;
    if (run) {
      // SIGINT lets bpftrace run END (the loader does the same), which prints the last partial window.
      run.child.kill("SIGINT");
      const timer = setTimeout(() => run.child.kill("SIGKILL"), STOP_GRACE_MS);
      await run.exited;
      clearTimeout(timer);
    }
    process.off("exit", this.killOnExit);
    this.state = "stopped";
  }
}

function tracepointsVisible(): boolean {
  return existsSync(`${TRACEFS}/events/sched/sched_switch`) || existsSync("/sys/kernel/debug/tracing/events/sched/sched_switch");
}

/** The useful part of bpftrace's stderr: without the RLIMIT_MEMLOCK noise it prints every run. */
function stderrSummary(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.replace(/ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK[^\n]*?(ulimit -l \d+" to fix the problem)?/, "").trim()).filter((l) => l !== "");
  return lines.length === 0 ? "" : `: ${lines.slice(-5).join(" | ")}`;
}
