/**
 * The paper's OC-Limiter: every period, SIGCONT the cage's IDS processes, let them run for
 * min(period × idsCap / demand, period) (dutyCycle.ts), then SIGSTOP them until the next period.
 * It measures the IDS itself (taskCpuTime.ts) at the cycle's own boundaries, so the measurement
 * is aligned with what it controls and does not wait for the pipeline.
 *
 * Safety: a PID is only ever stopped after the restore guardian has acknowledged it (the guardian
 * SIGCONTs it the moment this process dies, SIGKILL included). If the guardian dies, every stopped
 * PID is resumed at once and nothing is stopped again until a new guardian has them.
 * Every signal goes through signal(), which first checks that the PID still has the start time
 * the IDS had (processIdentity.ts): a PID reused by another process is never stopped or resumed.
 */
import type { Logger } from "pino";
import type { GuardianClient } from "../common/guardianClient.js";
import { nextRunMs, MIN_STOP_MS } from "./dutyCycle.js";
import { processCpuNs } from "./taskCpuTime.js";
import { PidReuseCounter, readStartTime } from "../../host/proc/processIdentity.js";

interface CageState {
  /** null: not limited (resume and leave alone). */
  capPct: number | null;
  /** pid → start time (field 22 of /proc/PID/stat). */
  pids: Map<number, number>;
  /** PIDs the current guardian has acknowledged. */
  armed: Set<number>;
  /** PIDs we hold stopped now. */
  stopped: Set<number>;
  lastNs: Map<number, number>;
  runStartedAt: number;
  stoppedAt: number | null;
  stopTimer: NodeJS.Timeout | null;
  lastRunMs: number;
  lastDemandPct: number;
}

export interface SigstopLimiterOptions {
  periodMs: number;
  logger: Logger;
  dryRun: boolean;
  /** The guardian in use, or null while there is none. */
  guardian: () => GuardianClient | null;
}

export class SigstopLimiter {
  readonly kind = "sigstop";
  private readonly cages = new Map<string, CageState>();
  private cycleTimer: NodeJS.Timeout | null = null;
  private cycleStart = 0;
  private running = false;
  signalErrors = 0;
  /** Signals not sent because the PID now names another process. */
  readonly reusedPids = new PidReuseCounter();

  constructor(private readonly options: SigstopLimiterOptions) {}

  private cage(name: string): CageState {
    let c = this.cages.get(name);
    if (c === undefined) {
      c = { capPct: null, pids: new Map(), armed: new Set(), stopped: new Set(), lastNs: new Map(), runStartedAt: performance.now(), stoppedAt: null, stopTimer: null, lastRunMs: this.options.periodMs, lastDemandPct: 0 };
      this.cages.set(name, c);
    }
    return c;
  }

  /** Sets a cage's limit (null: stop limiting it) and its IDS processes. */
  setCage(name: string, capPct: number | null, pids: Map<number, number>): void {
    const c = this.cage(name);
    if (capPct === null && c.capPct !== null) this.resumeCage(c);
    c.capPct = capPct;
    for (const [pid, start] of pids) {
      if (c.pids.get(pid) === start) continue;
      c.pids.set(pid, start);
      if (this.options.dryRun) continue;
      // A PID we see for the first time may have been left stopped by a limiter that died with
      // its guardian: resume it before anything else.
      this.signal(pid, start, "SIGCONT");
      void this.arm(c, pid, start);
    }
    for (const [pid, start] of c.pids) {
      if (pids.has(pid)) continue;
      if (c.stopped.has(pid)) this.signal(pid, start, "SIGCONT");
      c.pids.delete(pid);
      c.stopped.delete(pid);
      c.lastNs.delete(pid);
      if (c.armed.delete(pid)) void this.options.guardian()?.forget(pid).catch(() => undefined);
    }
  }

  private async arm(c: CageState, pid: number, start: number): Promise<void> {
    const g = this.options.guardian();
    if (g === null) return;
    try {
      await g.register({ op: "cont", pid, start });
      if (c.pids.get(pid) === start && this.options.guardian() === g) c.armed.add(pid);
    } catch (err) {
      this.options.logger.warn({ pid, err: (err as Error).message }, "guardian did not take the PID; it will not be stopped");
    }
  }

  /** After a new guardian started: hand it every PID again. */
  rearmAll(): void {
    for (const c of this.cages.values()) for (const [pid, start] of c.pids) void this.arm(c, pid, start);
  }

  /** The guardian is gone: resume everything now and stop nothing until re-armed. */
  guardianLost(): void {
    for (const c of this.cages.values()) {
      this.resumeCage(c);
      c.armed.clear();
    }
  }

  stoppedPids(name: string): number {
    return this.cages.get(name)?.stopped.size ?? 0;
  }

  lastRun(name: string): { runMs: number; demandPct: number } | null {
    const c = this.cages.get(name);
    return c === undefined ? null : { runMs: c.lastRunMs, demandPct: c.lastDemandPct };
  }

  start(): void {
    this.running = true;
    this.cycleStart = performance.now();
    this.cycle();
  }

  private cycle(): void {
    if (!this.running) return;
    const now = performance.now();
    for (const c of this.cages.values()) this.cycleCage(c, now);
    // Next boundary on the absolute grid, so lateness does not accumulate.
    this.cycleStart += this.options.periodMs;
    if (this.cycleStart < now) this.cycleStart = now + this.options.periodMs;
    this.cycleTimer = setTimeout(() => this.cycle(), Math.max(0, this.cycleStart - performance.now()));
  }

  private cycleCage(c: CageState, now: number): void {
    if (c.stopTimer !== null) {
      clearTimeout(c.stopTimer);
      c.stopTimer = null;
    }
    const runNs = ((c.stoppedAt ?? now) - c.runStartedAt) * 1e6;
    this.resumeCage(c);
    c.runStartedAt = performance.now();
    c.stoppedAt = null;
    let usedNs = 0;
    for (const [pid, start] of c.pids) {
      // A PID that exited and was reused by another process must never be stopped.
      if (readStartTime(pid) !== start) {
        c.pids.delete(pid);
        c.lastNs.delete(pid);
        if (c.armed.delete(pid)) void this.options.guardian()?.forget(pid).catch(() => undefined);
        continue;
      }
      const ns = processCpuNs(pid);
      if (ns === null) continue;
      const last = c.lastNs.get(pid);
      if (last !== undefined && ns >= last) usedNs += ns - last;
      c.lastNs.set(pid, ns);
    }
    if (c.capPct === null || c.pids.size === 0) {
      c.lastRunMs = this.options.periodMs;
      return;
    }
    const runMs = nextRunMs(this.options.periodMs, c.capPct, { usedNs, runNs });
    c.lastRunMs = runMs;
    c.lastDemandPct = runNs > 0 ? (usedNs / runNs) * 100 : 0;
    if (this.options.dryRun || this.options.periodMs - runMs < MIN_STOP_MS) return;
    c.stopTimer = setTimeout(() => this.stopCage(c), runMs);
  }

  private stopCage(c: CageState): void {
    c.stopTimer = null;
    if (!this.running || c.capPct === null) return;
    c.stoppedAt = performance.now();
    for (const [pid, start] of c.pids) {
      if (!c.armed.has(pid)) continue; // never stop a PID the guardian does not know
      if (this.signal(pid, start, "SIGSTOP")) c.stopped.add(pid);
    }
  }

  private resumeCage(c: CageState): void {
    for (const pid of c.stopped) {
      const start = c.pids.get(pid);
      if (start !== undefined) this.signal(pid, start, "SIGCONT");
    }
    c.stopped.clear();
  }

  /** Sends sig if the PID still names the process that started at `start`; true when sent. */
  private signal(pid: number, start: number, sig: "SIGSTOP" | "SIGCONT"): boolean {
    const now = readStartTime(pid);
    if (now !== start) {
      // Gone (null) is not reuse: nothing to signal and nothing to report.
      if (now !== null && this.reusedPids.note()) {
        this.options.logger.warn({ pid, sig, startTime: start, nowStartTime: now, skipped: this.reusedPids.skipped }, "PID reused by another process: signal not sent");
      }
      return false;
    }
    try {
      process.kill(pid, sig);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") {
        this.signalErrors++;
        this.options.logger.warn({ pid, sig, err: (err as Error).message }, "cannot signal an IDS process");
      }
      return false;
    }
  }

  /** Resumes every process and stops cycling. */
  stop(): void {
    this.running = false;
    if (this.cycleTimer !== null) clearTimeout(this.cycleTimer);
    for (const c of this.cages.values()) {
      if (c.stopTimer !== null) clearTimeout(c.stopTimer);
      c.stopTimer = null;
      this.resumeCage(c);
    }
  }
}
