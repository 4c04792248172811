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
import { cagePolicy, worthApplying, type CageCpuKnobs, type CagePolicyResult } from "./cageCpuPolicy.js";


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
  | { kind: "hold"; mode: "active" | "failsafe" | "waiting" };

export class CageCpuController {
  private idsCpuSeconds = 0;
  private totalCpuSeconds = 0;
  private windowSeconds = 0;
  /** Points taken off the VM's cap for the cage's measured overrun (≥ 0). */
  private correctionPct = 0;
  private lastIdsPct: number | null = null;
  /** The IDS CPU of the active periods within idsHoldMs, oldest first. */
  private idsRecent: { atMs: number; pct: number }[] = [];
  /** The last aggregate's VM role; its (PID, start time) pairs are built when asked for, not per window. */
  private lastVm: CageAggregate["vm"] | null = null;
  private lastVmProcesses: ProcessIdentity[] | null = [];
  private applied: CpuTarget | null = null;
  private mode: "waiting" | "active" | "failsafe" = "waiting";

  constructor(readonly cage: CageCpuStatic) {
    if (!Number.isFinite(cage.periodMs) || cage.periodMs <= 0) throw new RangeError(`cage ${cage.name}: periodMs must be a positive number, got ${cage.periodMs}`);
  }

  /** Adds an aggregate's window to the current period. */
  observe(agg: CageAggregate): void {
    if (agg.windowSeconds > 0) {
      this.idsCpuSeconds += (agg.ids.cpuPct / 100) * agg.windowSeconds;
      this.totalCpuSeconds += (agg.totalPct / 100) * agg.windowSeconds;
      this.windowSeconds += agg.windowSeconds;
    }
    this.lastVm = agg.vm;
    this.lastVmProcesses = null;
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
      this.idsRecent = [];
      this.idsCpuSeconds = 0;
      this.totalCpuSeconds = 0;
      this.windowSeconds = 0;
      this.correctionPct = 0;
      const target: CpuTarget = { capPct: this.cage.knobs.failsafeCapPct, weight: this.cage.weight };
      const entering = this.mode !== "failsafe";
      this.mode = "failsafe";
      if (!entering && sameTarget(this.applied, target)) return { kind: "hold", mode: "failsafe" };
      return { kind: "apply", target, from: this.applied, reason: `aggregates stale: fail-safe cap ${target.capPct}%`, mode: "failsafe", policy: null };
    }
    if (this.windowSeconds <= 0) return { kind: "hold", mode: this.mode };
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
    const policy = cagePolicy({
      capPct: this.cage.capPct,
      weight: this.cage.weight,
      sumWeights: this.cage.sumWeights,
      hostCapacityPct: this.cage.hostCapacityPct,
      idsPct: heldIdsPct,
      vmFloorPct: this.cage.knobs.vmFloorPct,
      vmCeilingPct: this.cage.knobs.vmCeilingPct,
    });
    const correctedCap = Math.min(this.cage.knobs.vmCeilingPct, Math.max(this.cage.knobs.vmFloorPct, policy.vmCapPct - this.correctionPct));
    const target: CpuTarget = { capPct: round2(correctedCap), weight: policy.vmWeight };
    const held = heldIdsPct > idsPct ? `; the IDS's peak of the last ${this.cage.idsHoldMs} ms (now ${round2(idsPct)}%)` : "";
    const overrun = this.correctionPct > 0 ? `; ${round2(this.correctionPct)}% off for the cage's measured overrun (total ${round2(totalPct)}%)` : "";
    const reason = `${policy.reason}${held}${overrun}`;
    const bounds = { lo: this.cage.knobs.vmFloorPct, hi: this.cage.knobs.vmCeilingPct };
    if (!resumed && !worthApplying(this.applied, target, this.cage.minChangePct, bounds)) return { kind: "hold", mode: "active" };
    return { kind: "apply", target, from: this.applied, reason: resumed && this.applied !== null ? `data resumed; ${reason}` : reason, mode: "active", policy };
  }

  /** The highest IDS CPU of this period and those within idsHoldMs before it. */
  private holdIds(nowMs: number, idsPct: number): number {
    // Older than the hold, or from the future (the wall clock stepped back): dropped.
    this.idsRecent = this.idsRecent.filter((r) => r.atMs > nowMs - this.cage.idsHoldMs && r.atMs <= nowMs);
    this.idsRecent.push({ atMs: nowMs, pct: idsPct });
    return Math.max(...this.idsRecent.map((r) => r.pct));
  }

  /** Records what the back end now has. */
  markApplied(target: CpuTarget): void {
    this.applied = target;
  }
}

function sameTarget(a: CpuTarget | null, b: CpuTarget): boolean {
  return a !== null && a.capPct === b.capPct && a.weight === b.weight;
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}
