/**
 * Records and summary of `cage lab memory` (Balloon Performer, Figures 4 and 5). Pure.
 *
 * One record per second: the IDS's memory as the lab measured it (`idsBytes`), and what the VM
 * gave up (`movedBytes` = base − the VM's actual memory). Whether the two agree is judged only
 * on **settled** samples. The control loop (sample, aggregate, decide, apply, guest inflates)
 * needs a few seconds to follow a jump of the IDS's memory, so a sample is settled when
 *  1. no jump happened during the settle window before it: no change from one second to the
 *     next larger than the tolerance, and
 *  2. the IDS's memory is within half the tolerance of what it was 1 and 2 s earlier.
 * (2) is the loop's reaction time: the agent samples /proc and the page cache once a second and
 * the actuator runs every 0.5 s, so what changed in the last 2 s may not have been acted on yet;
 * and the actuator leaves differences below its hysteresis (2 MiB by default, half the smallest
 * tolerance) alone, which takes the other half. Slow drift (the kernel reclaiming a few MiB of
 * cold page cache now and then) is no jump: the loop has to follow it, and a sample it trails by
 * more than the tolerance counts against it.
 */
import type { PlotSpec } from "../common/svgPlot.js";

const MiB = 1024 * 1024;

export interface MemoryRecord {
  /** Seconds since the experiment started. */
  t: number;
  /** The IDS's memory: VmRSS of its processes + page cache charged to its memory cgroup. */
  idsBytes: number;
  /** base − vmActualBytes: memory taken from the VM; null while the VM's memory is unknown. */
  movedBytes: number | null;
  /** The balloon target the actuator last reported; null before its first report. */
  vmTargetBytes: number | null;
  /** The VM's actual memory (QEMU: `query-balloon` actual via the actuator; cgroup: the limit read from the kernel). */
  vmActualBytes: number | null;
}

/** One balloon move: the actuator set a new target at timeMs. */
export interface BalloonMove {
  timeMs: number;
  targetBytes: number;
}

/** The VM's memory as the actuator reported it (act.state), finer than the records. */
export interface BalloonStateSample {
  timeMs: number;
  targetBytes: number | null;
  actualBytes: number | null;
}

/** |moved − expected| allowed: 1 % of the IDS's memory or 4 MiB, whichever is larger. */
export function toleranceBytes(idsBytes: number): number {
  return Math.max(0.01 * idsBytes, 4 * MiB);
}

/** What should be moved: all of the IDS's memory, but never more than base − floor. */
export function expectedMovedBytes(idsBytes: number, baseBytes: number, floorBytes: number): number {
  return Math.min(Math.max(idsBytes, 0), baseBytes - floorBytes);
}

/** Seconds the agent needs to see and act on a change (1 s sampling + 0.5 s actuator period, on whole seconds). */
export const REACTION_S = 2;

/**
 * Settled samples: t ≥ max(settleS, REACTION_S); no second-to-second change of idsBytes in
 * (t − settleS, t] exceeded the tolerance (of the larger of the two values); and idsBytes is within
 * half the tolerance of its values 1..REACTION_S seconds before.
 */
export function settledFlags(records: readonly MemoryRecord[], settleS: number): boolean[] {
  return records.map((r, i) => {
    if (r.t < Math.max(settleS, REACTION_S)) return false;
    const half = toleranceBytes(r.idsBytes) / 2;
    for (let j = i - 1; j >= 0 && records[j]!.t >= r.t - REACTION_S; j--) {
      if (Math.abs(records[j]!.idsBytes - r.idsBytes) > half) return false;
    }
    for (let j = i; j >= 1 && records[j]!.t > r.t - settleS; j--) {
      const cur = records[j]!.idsBytes;
      const prev = records[j - 1]!.idsBytes;
      if (Math.abs(cur - prev) > toleranceBytes(Math.max(cur, prev))) return false;
    }
    return true;
  });
}

export interface MoveTiming {
  moves: number;
  /**
   * Moves after which the VM caught up: an act.state showed the actual within 1 MiB of the target
   * then in force (this move's, or a later one's when the actuator stepped on before the guest
   * got there: a balloon that never catches up is never counted as reached).
   */
  reached: number;
  /** Not caught up, and made more than limitS before the end of the run: a failure. */
  unreached: number;
  /** Made less than limitS before the end and not caught up yet: not judged. */
  pendingAtEnd: number;
  /** Seconds from the move to the catch-up; resolution ≈ the actuator's state period (0.5 s). */
  maxReachS: number | null;
  medianReachS: number | null;
  /** Reached moves that took longer than the limit. */
  slowerThanLimit: number;
  limitS: number;
  withinLimit: boolean;
}

const REACHED_WITHIN = 1 * MiB;

export function moveTiming(moves: readonly BalloonMove[], states: readonly BalloonStateSample[], limitS: number, endMs: number): MoveTiming {
  const sorted = [...moves].sort((a, b) => a.timeMs - b.timeMs);
  const caughtUp = states
    .filter((s) => s.actualBytes !== null && s.targetBytes !== null && Math.abs(s.actualBytes - s.targetBytes) <= REACHED_WITHIN)
    .map((s) => s.timeMs)
    .sort((a, b) => a - b);
  const reachS: number[] = [];
  let unreached = 0;
  let pending = 0;
  for (const m of sorted) {
    const hit = caughtUp.find((t) => t >= m.timeMs);
    if (hit !== undefined) reachS.push((hit - m.timeMs) / 1000);
    else if (endMs - m.timeMs < limitS * 1000) pending++;
    else unreached++;
  }
  const ordered = [...reachS].sort((a, b) => a - b);
  const slower = reachS.filter((s) => s > limitS).length;
  return {
    moves: sorted.length,
    reached: reachS.length,
    unreached,
    pendingAtEnd: pending,
    maxReachS: ordered.length > 0 ? ordered[ordered.length - 1]! : null,
    medianReachS: ordered.length > 0 ? ordered[Math.floor((ordered.length - 1) / 2)]! : null,
    slowerThanLimit: slower,
    limitS,
    withinLimit: slower === 0 && unreached === 0,
  };
}

export interface MemoryAgreement {
  samples: number;
  settleS: number;
  settledSamples: number;
  /** Settled samples where |moved − min(ids, base − floor)| ≤ max(1 % of ids, 4 MiB). */
  matchingSamples: number;
  /** matchingSamples / settledSamples (0 when nothing settled). */
  matchFraction: number;
  /** Settled samples where the floor bound the move (ids > base − floor). */
  floorBoundSamples: number;
  /** Settled samples whose expected move is larger than the tolerance: a balloon that never moved would miss them. */
  settledSamplesNeedingMove: number;
  /** Largest |moved − expected| over the settled samples, bytes. */
  maxSettledErrorBytes: number | null;
  /** For comparison, all samples from t = settleS on, settled or not: how many match. */
  matchFractionAllSamples: number;
  /** The must-show: at least 95 % of settled samples match, and some of them needed the balloon to move. */
  passes: boolean;
}

export function agreement(records: readonly MemoryRecord[], baseBytes: number, floorBytes: number, settleS: number): MemoryAgreement {
  const settled = settledFlags(records, settleS);
  let settledSamples = 0;
  let matching = 0;
  let floorBound = 0;
  let needingMove = 0;
  let maxError: number | null = null;
  let considered = 0;
  let matchingAll = 0;
  records.forEach((r, i) => {
    if (r.t >= settleS) {
      considered++;
      if (r.movedBytes !== null && Math.abs(r.movedBytes - expectedMovedBytes(r.idsBytes, baseBytes, floorBytes)) <= toleranceBytes(r.idsBytes)) matchingAll++;
    }
    if (!settled[i]) return;
    settledSamples++;
    if (r.idsBytes > baseBytes - floorBytes) floorBound++;
    const expected = expectedMovedBytes(r.idsBytes, baseBytes, floorBytes);
    if (expected > toleranceBytes(r.idsBytes)) needingMove++;
    if (r.movedBytes === null) return;
    const error = Math.abs(r.movedBytes - expected);
    maxError = Math.max(maxError ?? 0, error);
    if (error <= toleranceBytes(r.idsBytes)) matching++;
  });
  const matchFraction = settledSamples === 0 ? 0 : matching / settledSamples;
  return {
    samples: records.length,
    settleS,
    settledSamples,
    matchingSamples: matching,
    matchFraction,
    floorBoundSamples: floorBound,
    settledSamplesNeedingMove: needingMove,
    maxSettledErrorBytes: maxError,
    matchFractionAllSamples: considered === 0 ? 0 : matchingAll / considered,
    passes: needingMove > 0 && matchFraction >= 0.95,
  };
}

export interface FloorCheck {
  floorBytes: number;
  /** Largest IDS memory seen, and whether it went past base − floor (so the floor was tested). */
  idsPeakBytes: number;
  idsExceededBaseMinusFloor: boolean;
  /** Smallest target / actual seen in the records and the finer actuator states. */
  minVmTargetBytes: number | null;
  minVmActualBytes: number | null;
  crossed: boolean;
}

export function floorCheck(records: readonly MemoryRecord[], states: readonly BalloonStateSample[], baseBytes: number, floorBytes: number): FloorCheck {
  const targets = [...records.map((r) => r.vmTargetBytes), ...states.map((s) => s.targetBytes)].filter((v): v is number => v !== null);
  const actuals = [...records.map((r) => r.vmActualBytes), ...states.map((s) => s.actualBytes)].filter((v): v is number => v !== null);
  const minTarget = targets.length > 0 ? Math.min(...targets) : null;
  const minActual = actuals.length > 0 ? Math.min(...actuals) : null;
  const idsPeak = Math.max(0, ...records.map((r) => r.idsBytes));
  return {
    floorBytes,
    idsPeakBytes: idsPeak,
    idsExceededBaseMinusFloor: idsPeak > baseBytes - floorBytes,
    minVmTargetBytes: minTarget,
    minVmActualBytes: minActual,
    crossed: (minTarget !== null && minTarget < floorBytes) || (minActual !== null && minActual < floorBytes),
  };
}

const fmtMiB = (b: number): number => Math.round((b / MiB) * 10) / 10;

/** The paper-like figure: the IDS's memory and what the VM gave up, in MiB over time. */
export function memoryPlotSpec(title: string, records: readonly MemoryRecord[], baseBytes: number, floorBytes: number): PlotSpec {
  return {
    title,
    xLabel: "time (s)",
    yLabel: "MiB",
    x: records.map((r) => r.t),
    series: [
      { label: "IDS memory", values: records.map((r) => fmtMiB(r.idsBytes)), color: "#d62728" },
      { label: "moved to host", values: records.map((r) => (r.movedBytes === null ? null : fmtMiB(r.movedBytes))), color: "#1f77b4" },
      { label: "base − floor", values: records.map(() => fmtMiB(baseBytes - floorBytes)), color: "#7f7f7f", dashed: true },
    ],
  };
}
