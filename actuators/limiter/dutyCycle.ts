/**
 * The SIGSTOP/SIGCONT duty cycle of the paper's OC-Limiter (§4.4), pure:
 *   run = min(period × limit / measured, period),  stop = period − run.
 * "measured" is read here as the IDS's CPU rate while it was allowed to run (CPU time used in the
 * last cycle ÷ the time it was running): that is its demand, which the duty cycle scales down.
 * Reading it as the plain CPU % of the last cycle would make the limiter oscillate (a stopped
 * IDS measures low, so the next cycle would run it fully, and so on).
 */
/** The paper's OC-Limiter: run = min(period × limit / measured, period); stop = period − run. */
export function paperRunTime(periodMs: number, limitPct: number, measuredPct: number): { runMs: number; stopMs: number } {
  const runMs = measuredPct <= 0 ? periodMs : Math.min((periodMs * limitPct) / measuredPct, periodMs);
  return { runMs, stopMs: periodMs - runMs };
}

export interface CycleMeasurement {
  /** On-CPU ns of all the IDS's threads during the last cycle. */
  usedNs: number;
  /** ns the IDS was allowed to run in the last cycle (SIGCONT → SIGSTOP, or the whole cycle). */
  runNs: number;
}

/** The IDS's CPU rate while running, % of one CPU (may exceed 100 for several threads). */
export function demandPct(m: CycleMeasurement): number {
  if (m.runNs <= 0 || m.usedNs <= 0) return 0;
  return (m.usedNs / m.runNs) * 100;
}

/** How long the IDS may run in the next cycle of `periodMs` to stay at `limitPct`. */
export function nextRunMs(periodMs: number, limitPct: number, m: CycleMeasurement): number {
  return paperRunTime(periodMs, limitPct, demandPct(m)).runMs;
}

/** Below this a stop is not worth two signals per process. */
export const MIN_STOP_MS = 1;
