/**
 * `cage lab cpu` records and summary: the agent's aggregates averaged per second, the kernel's
 * counters turned into the same percentages, and the figures the lab reports. Pure: every
 * input is a plain array of samples, so the arithmetic is tested without a machine.
 */
import { WARMUP_S } from "./labCpuOptions.js";
import { hostBusyTicks, parseHostCpuTicks } from "../../host/proc/hostCpu.js";
import { USER_HZ } from "../../host/proc/processTable.js";

/** Points of tolerance above a cap ("total ≤ cap + 2 points"). */
export const CAP_TOLERANCE_POINTS = 2;
/** Work-conserving: with the IDS idle, the VM should reach this share of the cage cap. */
export const WORK_CONSERVING_SHARE = 0.95;

/** One value from one `agg.window` window. */
export interface WindowSample {
  /** Wall clock at the window's end (the aggregate's timeMs). */
  timeMs: number;
  windowSeconds: number;
  value: number;
}

/** A cumulative kernel counter (ns of CPU) read at a wall-clock moment. */
export interface CounterSample {
  atMs: number;
  ns: number;
}

/**
 * Time-weighted mean of the window values falling in each second [t0 + k s, t0 + (k+1) s),
 * k = 0..seconds-1, by the window's end time. A second without windows is null.
 */
export function averagePerSecond(samples: readonly WindowSample[], t0Ms: number, seconds: number): (number | null)[] {
  const weighted = new Array<number>(seconds).fill(0);
  const weights = new Array<number>(seconds).fill(0);
  for (const s of samples) {
    const k = Math.floor((s.timeMs - t0Ms) / 1000);
    if (k < 0 || k >= seconds || !(s.windowSeconds > 0)) continue;
    weighted[k] = (weighted[k] ?? 0) + s.value * s.windowSeconds;
    weights[k] = (weights[k] ?? 0) + s.windowSeconds;
  }
  return weights.map((w, k) => (w > 0 ? (weighted[k] ?? 0) / w : null));
}

/**
 * % of one CPU between consecutive counter readings: reading k and k+1 bound second k.
 * Needs seconds+1 readings; a missing or backwards step is null (a counter that restarted).
 */
export function percentPerSecond(readings: readonly (CounterSample | null)[], seconds: number): (number | null)[] {
  const out: (number | null)[] = [];
  for (let k = 0; k < seconds; k++) {
    const a = readings[k];
    const b = readings[k + 1];
    if (a == null || b == null || b.atMs <= a.atMs || b.ns < a.ns) {
      out.push(null);
      continue;
    }
    out.push(((b.ns - a.ns) / ((b.atMs - a.atMs) * 1e6)) * 100);
  }
  return out;
}

export interface LabCpuRecord {
  t: number;
  /** The agent's figures (agg.window, averaged over the second), % of one CPU. */
  vmPct: number | null;
  idsPct: number | null;
  totalPct: number | null;
  capPct: number;
  idsCapPct: number | null;
  /** The kernel's own accounting of the same processes over the same second. */
  kernelVmPct: number | null;
  kernelIdsPct: number | null;
  /** With --compare-cpulimit: the second IDS, held by Debian's cpulimit (agent's figure, kernel's). */
  cpulimitIdsPct?: number | null;
  kernelCpulimitIdsPct?: number | null;
  /** Whether the IDS was stopped (idle) during this second. */
  idsIdle: boolean;
}

export interface RecordInputs {
  seconds: number;
  capPct: number;
  idsCapPct: number | null;
  vmPct: readonly (number | null)[];
  idsPct: readonly (number | null)[];
  kernelVmPct: readonly (number | null)[];
  kernelIdsPct: readonly (number | null)[];
  cpulimitIdsPct?: readonly (number | null)[];
  kernelCpulimitIdsPct?: readonly (number | null)[];
  idleAfterS: number | null;
}

const round2 = (v: number | null | undefined): number | null => (v == null ? null : Math.round(v * 100) / 100);

export function buildRecords(i: RecordInputs): LabCpuRecord[] {
  const records: LabCpuRecord[] = [];
  for (let t = 0; t < i.seconds; t++) {
    const vm = i.vmPct[t] ?? null;
    const ids = i.idsPct[t] ?? null;
    const r: LabCpuRecord = {
      t,
      vmPct: round2(vm),
      idsPct: round2(ids),
      totalPct: vm === null || ids === null ? null : round2(vm + ids),
      capPct: i.capPct,
      idsCapPct: i.idsCapPct,
      kernelVmPct: round2(i.kernelVmPct[t]),
      kernelIdsPct: round2(i.kernelIdsPct[t]),
      idsIdle: i.idleAfterS !== null && t >= i.idleAfterS,
    };
    if (i.cpulimitIdsPct !== undefined) {
      r.cpulimitIdsPct = round2(i.cpulimitIdsPct[t]);
      r.kernelCpulimitIdsPct = round2(i.kernelCpulimitIdsPct?.[t]);
    }
    records.push(r);
  }
  return records;
}

const mean = (xs: readonly number[]): number | null => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length);
const fraction = (xs: readonly number[], pass: (x: number) => boolean): number | null =>
  xs.length === 0 ? null : xs.filter(pass).length / xs.length;
const present = (xs: readonly (number | null | undefined)[]): number[] => xs.filter((x): x is number => x != null);

export interface PhaseStats {
  /** Seconds [fromS, toS) of the run. */
  fromS: number;
  toS: number;
  /** Windows with the agent's figures in that span. */
  windows: number;
  /** Of those, the fraction with total ≤ cap + 2 points. */
  fractionTotalWithinCap: number | null;
  /** ... with total > cap + 2 (the actuators-off property: the cage exceeds its cap). */
  fractionTotalOverCap: number | null;
  /** ... with IDS ≤ idsCap + 2 (null without an idsCap). */
  fractionIdsWithinIdsCap: number | null;
  meanVmPct: number | null;
  meanIdsPct: number | null;
  meanTotalPct: number | null;
  maxTotalPct: number | null;
}

export function phaseStats(records: readonly LabCpuRecord[], fromS: number, toS: number): PhaseStats {
  const span = records.filter((r) => r.t >= fromS && r.t < toS);
  const withTotal = span.filter((r) => r.totalPct !== null);
  const totals = withTotal.map((r) => r.totalPct as number);
  const cap = records[0]?.capPct ?? 0;
  const idsCap = records[0]?.idsCapPct ?? null;
  const ids = present(span.map((r) => r.idsPct));
  return {
    fromS,
    toS,
    windows: withTotal.length,
    fractionTotalWithinCap: fraction(totals, (v) => v <= cap + CAP_TOLERANCE_POINTS),
    fractionTotalOverCap: fraction(totals, (v) => v > cap + CAP_TOLERANCE_POINTS),
    fractionIdsWithinIdsCap: idsCap === null ? null : fraction(ids, (v) => v <= idsCap + CAP_TOLERANCE_POINTS),
    meanVmPct: round2(mean(present(span.map((r) => r.vmPct)))),
    meanIdsPct: round2(mean(ids)),
    meanTotalPct: round2(mean(totals)),
    maxTotalPct: totals.length === 0 ? null : Math.max(...totals),
  };
}

export interface CrossCheck {
  /** Seconds where both the agent and the kernel have a figure. */
  windows: number;
  /** CPU seconds over the same wall-clock spans, between the kernel's readings (cpuSecondsOverSpans). */
  agentCpuSeconds: number;
  kernelCpuSeconds: number;
  /** (agent − kernel) / kernel over those spans; null when the kernel saw nothing. */
  relativeDifference: number | null;
  /** Mean |agent − kernel| per second, points of one CPU. */
  meanAbsDifferencePoints: number | null;
  maxAbsDifferencePoints: number | null;
}

/**
 * CPU seconds each side counted over the same wall-clock spans: every step between consecutive
 * kernel readings `fromIndex`..`toIndex` that both exist and go forward (a counter that restarted
 * or a missed reading leaves its step out of both sides). The kernel's is the counter's rise; the
 * agent's is the part of each window (value % × windowSeconds, ending at timeMs) inside a step,
 * taken pro rata. Per-second rates cannot be summed instead: a reading taken late stretches its
 * step past a second, and its rate counted as one second leaves out the rest.
 */
export function cpuSecondsOverSpans(
  windows: readonly WindowSample[],
  readings: readonly (CounterSample | null)[],
  fromIndex: number,
  toIndex: number,
): { agentCpuSeconds: number; kernelCpuSeconds: number } {
  const steps: { fromMs: number; toMs: number }[] = [];
  let kernelNs = 0;
  for (let k = Math.max(0, fromIndex); k < Math.min(toIndex, readings.length - 1); k++) {
    const a = readings[k];
    const b = readings[k + 1];
    if (a == null || b == null || b.atMs <= a.atMs || b.ns < a.ns) continue;
    kernelNs += b.ns - a.ns;
    steps.push({ fromMs: a.atMs, toMs: b.atMs });
  }
  let agentSeconds = 0;
  for (const w of windows) {
    if (!(w.windowSeconds > 0)) continue;
    const startMs = w.timeMs - w.windowSeconds * 1000;
    for (const s of steps) {
      const overlapMs = Math.min(w.timeMs, s.toMs) - Math.max(startMs, s.fromMs);
      if (overlapMs > 0) agentSeconds += (w.value / 100) * (overlapMs / 1000);
    }
  }
  return { agentCpuSeconds: agentSeconds, kernelCpuSeconds: kernelNs / 1e9 };
}

/**
 * The agent against the kernel: CPU seconds over the same spans (cpuSecondsOverSpans), and the
 * per-second figures' disagreement over the seconds both sides have.
 */
export function crossCheck(agent: readonly (number | null)[], kernel: readonly (number | null)[], cpu: { agentCpuSeconds: number; kernelCpuSeconds: number }): CrossCheck {
  const diffs: number[] = [];
  for (let t = 0; t < Math.min(agent.length, kernel.length); t++) {
    const x = agent[t];
    const y = kernel[t];
    if (x == null || y == null) continue;
    diffs.push(Math.abs(x - y));
  }
  const a = cpu.agentCpuSeconds;
  const k = cpu.kernelCpuSeconds;
  return {
    windows: diffs.length,
    agentCpuSeconds: Math.round(a * 1000) / 1000,
    kernelCpuSeconds: Math.round(k * 1000) / 1000,
    relativeDifference: k > 0 ? Math.round(((a - k) / k) * 10000) / 10000 : null,
    meanAbsDifferencePoints: round2(mean(diffs)),
    maxAbsDifferencePoints: diffs.length === 0 ? null : round2(Math.max(...diffs)),
  };
}

export interface LimiterPrecision {
  windows: number;
  /** Fraction of windows with IDS ≤ idsCap + 2 points. */
  fractionWithinIdsCap: number | null;
  meanIdsPct: number | null;
  /** Mean |IDS − idsCap|: how tightly the limiter holds the IDS at its cap, points. */
  meanAbsDeviationPoints: number | null;
  maxIdsPct: number | null;
}

export function limiterPrecision(ids: readonly (number | null)[], idsCapPct: number, fromS: number, toS: number): LimiterPrecision {
  const xs = present(ids.slice(fromS, toS));
  return {
    windows: xs.length,
    fractionWithinIdsCap: fraction(xs, (v) => v <= idsCapPct + CAP_TOLERANCE_POINTS),
    meanIdsPct: round2(mean(xs)),
    meanAbsDeviationPoints: round2(mean(xs.map((v) => Math.abs(v - idsCapPct)))),
    maxIdsPct: xs.length === 0 ? null : round2(Math.max(...xs)),
  };
}

export interface WorkConserving {
  idleFromS: number;
  /** Idle windows measured: from idleFromS + the warm-up to the end. */
  windows: number;
  meanVmPct: number | null;
  meanIdsPct: number | null;
  /** meanVmPct / capPct. */
  vmShareOfCap: number | null;
  /** Whether the VM reached WORK_CONSERVING_SHARE of the cap on average. */
  reaches95PctOfCap: boolean | null;
}

export function workConserving(records: readonly LabCpuRecord[], idleFromS: number): WorkConserving {
  const span = records.filter((r) => r.t >= idleFromS + WARMUP_S);
  const vm = present(span.map((r) => r.vmPct));
  const cap = records[0]?.capPct ?? 0;
  const m = mean(vm);
  return {
    idleFromS,
    windows: vm.length,
    meanVmPct: round2(m),
    meanIdsPct: round2(mean(present(span.map((r) => r.idsPct)))),
    vmShareOfCap: m === null || cap <= 0 ? null : Math.round((m / cap) * 10000) / 10000,
    reaches95PctOfCap: m === null ? null : m >= WORK_CONSERVING_SHARE * cap,
  };
}

/** The last value reported within each second (an actuator's setting), or null. */
export function lastPerSecond(samples: readonly { timeMs: number; value: number }[], t0Ms: number, seconds: number): (number | null)[] {
  const out = new Array<number | null>(seconds).fill(null);
  const at = new Array<number>(seconds).fill(-Infinity);
  for (const s of samples) {
    const k = Math.floor((s.timeMs - t0Ms) / 1000);
    if (k < 0 || k >= seconds || s.timeMs < (at[k] ?? -Infinity)) continue;
    at[k] = s.timeMs;
    out[k] = s.value;
  }
  return out;
}

/**
 * Busy CPU time of the whole host, ns (all CPUs), from /proc/stat. Steal counts as busy here: on
 * a host that is itself a VM, a CPU the hypervisor took was not free for the lab's cages.
 */
export function parseProcStatBusyNs(text: string): number {
  const t = parseHostCpuTicks(text);
  return ((hostBusyTicks(t) + t.steal) * 1e9) / USER_HZ;
}
