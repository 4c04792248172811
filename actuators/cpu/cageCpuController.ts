/**
 * One cage's control state for the CPU actuator, pure (the caller passes the clock and does the
 * I/O): it averages the IDS CPU of the aggregates received during a period, turns it into a
 * setting with cagePolicy, and switches to the fail-safe setting when aggregates go stale.
 *
 * The paper's open-loop rule (VM cap = cap − ids) lets the cage run over its cap in practice:
 * the VM's cap follows the IDS one period late, and every write of a CFS quota refills the
 * group's runtime, so a VM whose quota is rewritten each period gets more than its quota (the
 * lab measured 36.3% used under a 34.6% mean cap). So the controller also integrates the cage's
 * measured overrun (total − cap) and takes it off the VM's cap; when the cage is under its cap
 * the correction drains to zero, so the VM still gets the whole cage when the IDS idles.
 * The two parts run at different speeds: cap − ids follows the newest data in full at every
 * action (feedforward), while the integral adds the overrun in proportion to the measured time
 * it covers, so acting on every window instead of every period does not raise its gain.
 *
 * With `idsHoldMs` the VM's cap leaves room for the IDS's highest CPU over that span, not just the
 * last period's: an IDS that pauses for a second (a scan ending, a new one starting) then does not
 * hand the whole cage to the VM, which Xen's credit1 would go on using for seconds after the cap
 * came back down (it banks credit). The VM still gets the whole cage once the IDS has idled that long.
 */
import { processesOf, type CageAggregate } from "../../protocol/cageAggregate.js";
import type { ProcessIdentity } from "../../host/proc/processIdentity.js";
import type { CpuTarget } from "../common/cpuBackend.js";
import { cageShares, policyReason, worthApplying, type CageCpuKnobs, type CagePolicyInput, type CagePolicyResult } from "./cageCpuPolicy.js";


/** Integral gain on the overrun, per periodMs of measured time (0: the paper's open-loop rule). */
export const DEFAULT_OVERRUN_GAIN = 0.3;

export interface CageCpuStatic {
  name: string;
  /** Integral gain on the measured overrun; default DEFAULT_OVERRUN_GAIN. */
  overrunGain?: number;
  /** The control period, ms: the span of measured time the gain applies to in full. */
  periodMs: number;
  capPct: number;
  weight: number | null;
  sumWeights: number;
  hostCapacityPct: number;
  knobs: CageCpuKnobs;
  minChangePct: number;
  /** The VM's cap uses the IDS's peak over this span, ms; 0 = the last period's IDS CPU (the paper's rule). */
  idsHoldMs: number;
}

export type TickOutcome =
  | { kind: "apply"; target: CpuTarget; from: CpuTarget | null; reason: string; mode: "active" | "failsafe"; policy: CagePolicyResult | null }
  | { readonly kind: "hold"; readonly mode: "active" | "failsafe" | "waiting" };

// Most periods of most cages hold: one outcome per mode, not one per cage per period.
const HOLD = {
  active: Object.freeze({ kind: "hold", mode: "active" }),
  failsafe: Object.freeze({ kind: "hold", mode: "failsafe" }),
  waiting: Object.freeze({ kind: "hold", mode: "waiting" }),
} as const;

export class CageCpuController {
  private idsCpuSeconds = 0;
  private totalCpuSeconds = 0;
  private windowSeconds = 0;
  /** Points taken off the VM's cap for the cage's measured overrun (≥ 0). */
  private correctionPct = 0;
  private lastIdsPct: number | null = null;
  /** The IDS CPU of the active periods within idsHoldMs, oldest first. */
  private readonly idsRecent: { atMs: number; pct: number }[] = [];
  /**
   * The VM role of the last aggregate whose VM processes differed from the one before; its (PID,
   * start time) pairs are built when asked for, not per window, and stay the same array while
   * the VM's processes do.
   */
  private lastVm: Pick<CageAggregate["vm"], "pids" | "startTimes"> | null = null;
  private lastVmProcesses: ProcessIdentity[] | null = [];
  /** The policy's input: only idsPct changes from one period to the next. */
  private readonly policyInput: CagePolicyInput;
  private readonly bounds: { lo: number; hi: number };
  private applied: CpuTarget | null = null;
  private mode: "waiting" | "active" | "failsafe" = "waiting";

  constructor(readonly cage: CageCpuStatic) {
    if (!Number.isFinite(cage.periodMs) || cage.periodMs <= 0) throw new RangeError(`cage ${cage.name}: periodMs must be a positive number, got ${cage.periodMs}`);
    this.policyInput = {
      capPct: cage.capPct,
      weight: cage.weight,
      sumWeights: cage.sumWeights,
      hostCapacityPct: cage.hostCapacityPct,
      idsPct: 0,
      vmFloorPct: cage.knobs.vmFloorPct,
      vmCeilingPct: cage.knobs.vmCeilingPct,
    };
    this.bounds = { lo: cage.knobs.vmFloorPct, hi: cage.knobs.vmCeilingPct };
  }

  /** Adds an aggregate's window to the current period. */
  observe(agg: CageAggregate): void {
    if (agg.windowSeconds > 0) {
      this.idsCpuSeconds += (agg.ids.cpuPct / 100) * agg.windowSeconds;
      this.totalCpuSeconds += (agg.totalPct / 100) * agg.windowSeconds;
      this.windowSeconds += agg.windowSeconds;
    }
    if (this.lastVm === null || !sameProcesses(this.lastVm, agg.vm)) {
      this.lastVm = agg.vm;
      this.lastVmProcesses = null;
    }
  }

  /** The VM's processes (PID, start time) in the last aggregate. */
  get vmProcesses(): ProcessIdentity[] {
    this.lastVmProcesses ??= this.lastVm === null ? [] : processesOf(this.lastVm);
    return this.lastVmProcesses;
  }

  get currentMode(): "waiting" | "active" | "failsafe" {
    return this.mode;
  }

  get appliedTarget(): CpuTarget | null {
    return this.applied;
  }

  /** The overrun correction in force, points of one CPU. */
  get overrunCorrectionPct(): number {
    return this.correctionPct;
  }

  /** Whether windows arrived since the last active tick (a tick now would act on them). */
  get hasNewWindows(): boolean {
    return this.windowSeconds > 0;
  }

  /** The IDS CPU the last active period measured, or null. */
  get idsPct(): number | null {
    return this.lastIdsPct;
  }

  /**
   * One control period at `nowMs`. `stale`: the staleness tracker says the cage's data stopped.
   * Returns what to apply (the caller applies it, then calls markApplied).
   */
  tick(stale: boolean, nowMs: number): TickOutcome {
    if (stale) {
      this.idsRecent.length = 0;
      this.idsCpuSeconds = 0;
      this.totalCpuSeconds = 0;
      this.windowSeconds = 0;
      this.correctionPct = 0;
      const target: CpuTarget = { capPct: this.cage.knobs.failsafeCapPct, weight: this.cage.weight };
      const entering = this.mode !== "failsafe";
      this.mode = "failsafe";
      if (!entering && sameTarget(this.applied, target)) return HOLD.failsafe;
      return { kind: "apply", target, from: this.applied, reason: `aggregates stale: fail-safe cap ${target.capPct}%`, mode: "failsafe", policy: null };
    }
    if (this.windowSeconds <= 0) return HOLD[this.mode];
    const idsPct = (this.idsCpuSeconds / this.windowSeconds) * 100;
    const totalPct = (this.totalCpuSeconds / this.windowSeconds) * 100;
    // The integral's step is the overrun times the measured time it covers, in periods.
    const periods = (this.windowSeconds * 1000) / this.cage.periodMs;
    this.idsCpuSeconds = 0;
    this.totalCpuSeconds = 0;
    this.windowSeconds = 0;
    const gain = this.cage.overrunGain ?? DEFAULT_OVERRUN_GAIN;
    // Anti-windup: never more than the room between the cap share and the floor.
    const maxCorrection = Math.max(0, this.cage.capPct - this.cage.knobs.vmFloorPct);
    this.correctionPct = Math.min(maxCorrection, Math.max(0, this.correctionPct + gain * periods * (totalPct - this.cage.capPct)));
    this.lastIdsPct = idsPct;
    const heldIdsPct = this.holdIds(nowMs, idsPct);
    const resumed = this.mode !== "active";
    this.mode = "active";
    this.policyInput.idsPct = heldIdsPct;
    const policy = cageShares(this.policyInput);
    const correctedCap = Math.min(this.cage.knobs.vmCeilingPct, Math.max(this.cage.knobs.vmFloorPct, policy.vmCapPct - this.correctionPct));
    const target: CpuTarget = { capPct: round2(correctedCap), weight: policy.vmWeight };
    if (!resumed && !worthApplying(this.applied, target, this.cage.minChangePct, this.bounds)) return HOLD.active;
    // The reason in words only for a setting that is applied.
    const held = heldIdsPct > idsPct ? `; the IDS's peak of the last ${this.cage.idsHoldMs} ms (now ${round2(idsPct)}%)` : "";
    const overrun = this.correctionPct > 0 ? `; ${round2(this.correctionPct)}% off for the cage's measured overrun (total ${round2(totalPct)}%)` : "";
    const policyWords = policyReason(this.policyInput, policy);
    const reason = `${policyWords}${held}${overrun}`;
    return { kind: "apply", target, from: this.applied, reason: resumed && this.applied !== null ? `data resumed; ${reason}` : reason, mode: "active", policy: { ...policy, reason: policyWords } };
  }

  /** The highest IDS CPU of this period and those within idsHoldMs before it. */
  private holdIds(nowMs: number, idsPct: number): number {
    // No hold (the paper's rule): this period's alone, nothing kept.
    if (this.cage.idsHoldMs <= 0) return idsPct;
    // Older than the hold, or from the future (the wall clock stepped back): dropped, in place.
    const recent = this.idsRecent;
    let kept = 0;
    let max = idsPct;
    for (const r of recent) {
      if (r.atMs > nowMs - this.cage.idsHoldMs && r.atMs <= nowMs) {
        recent[kept++] = r;
        if (r.pct > max) max = r.pct;
      }
    }
    recent.length = kept;
    recent.push({ atMs: nowMs, pct: idsPct });
    return max;
  }

  /** Records what the back end now has. */
  markApplied(target: CpuTarget): void {
    this.applied = target;
  }
}

/** Whether two roles list the same (PID, start time) pairs in the same order. */
function sameProcesses(a: Pick<CageAggregate["vm"], "pids" | "startTimes">, b: Pick<CageAggregate["vm"], "pids" | "startTimes">): boolean {
  if (a.pids.length !== b.pids.length) return false;
  for (let i = 0; i < a.pids.length; i++) if (a.pids[i] !== b.pids[i] || a.startTimes[i] !== b.startTimes[i]) return false;
  return true;
}

function sameTarget(a: CpuTarget | null, b: CpuTarget): boolean {
  return a !== null && a.capPct === b.capPct && a.weight === b.weight;
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}
