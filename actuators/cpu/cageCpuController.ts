/**
 * One cage's control state for the CPU actuator, pure (the caller passes the clock and does the
 * I/O): it averages the IDS CPU of the aggregates received during a period, turns it into a
 * setting with cagePolicy, and switches to the fail-safe setting when aggregates go stale.
 */
import type { CageAggregate } from "../../protocol/cageAggregate.js";
import { cagePolicy, worthApplying, type CageCpuKnobs, type CagePolicyResult } from "./cageCpuPolicy.js";

export interface CpuTarget {
  /** % of one CPU; null = no cap (the original setting). */
  capPct: number | null;
  /** Config-scale weight; null = leave the weight alone. */
  weight: number | null;
}

export interface CageCpuStatic {
  name: string;
  capPct: number;
  weight: number | null;
  sumWeights: number;
  hostCapacityPct: number;
  knobs: CageCpuKnobs;
  minChangePct: number;
}

export type TickOutcome =
  | { kind: "apply"; target: CpuTarget; from: CpuTarget | null; reason: string; mode: "active" | "failsafe"; policy: CagePolicyResult | null }
  | { kind: "hold"; mode: "active" | "failsafe" | "waiting" };

export class CageCpuController {
  private idsCpuSeconds = 0;
  private windowSeconds = 0;
  private lastIdsPct: number | null = null;
  private lastVmPids: number[] = [];
  private applied: CpuTarget | null = null;
  private mode: "waiting" | "active" | "failsafe" = "waiting";

  constructor(readonly cage: CageCpuStatic) {}

  /** Adds an aggregate's window to the current period. */
  observe(agg: CageAggregate): void {
    if (agg.windowSeconds > 0) {
      this.idsCpuSeconds += (agg.ids.cpuPct / 100) * agg.windowSeconds;
      this.windowSeconds += agg.windowSeconds;
    }
    this.lastVmPids = agg.vm.pids;
  }

  get vmPids(): number[] {
    return this.lastVmPids;
  }

  get currentMode(): "waiting" | "active" | "failsafe" {
    return this.mode;
  }

  get appliedTarget(): CpuTarget | null {
    return this.applied;
  }

  /** The IDS CPU the last active period measured, or null. */
  get idsPct(): number | null {
    return this.lastIdsPct;
  }

  /**
   * One control period. `stale`: the staleness tracker says the cage's data stopped.
   * Returns what to apply (the caller applies it, then calls `applied`).
   */
  tick(stale: boolean): TickOutcome {
    if (stale) {
      this.idsCpuSeconds = 0;
      this.windowSeconds = 0;
      const target: CpuTarget = { capPct: this.cage.knobs.failsafeCapPct, weight: this.cage.weight };
      const entering = this.mode !== "failsafe";
      this.mode = "failsafe";
      if (!entering && sameTarget(this.applied, target)) return { kind: "hold", mode: "failsafe" };
      return { kind: "apply", target, from: this.applied, reason: `aggregates stale: fail-safe cap ${target.capPct}%`, mode: "failsafe", policy: null };
    }
    if (this.windowSeconds <= 0) return { kind: "hold", mode: this.mode };
    const idsPct = (this.idsCpuSeconds / this.windowSeconds) * 100;
    this.idsCpuSeconds = 0;
    this.windowSeconds = 0;
    this.lastIdsPct = idsPct;
    const resumed = this.mode !== "active";
    this.mode = "active";
    const policy = cagePolicy({
      capPct: this.cage.capPct,
      weight: this.cage.weight,
      sumWeights: this.cage.sumWeights,
      hostCapacityPct: this.cage.hostCapacityPct,
      idsPct,
      vmFloorPct: this.cage.knobs.vmFloorPct,
      vmCeilingPct: this.cage.knobs.vmCeilingPct,
    });
    const target: CpuTarget = { capPct: round2(policy.vmCapPct), weight: policy.vmWeight };
    const bounds = { lo: this.cage.knobs.vmFloorPct, hi: this.cage.knobs.vmCeilingPct };
    if (!resumed && !worthApplying(this.applied, target, this.cage.minChangePct, bounds)) return { kind: "hold", mode: "active" };
    return { kind: "apply", target, from: this.applied, reason: resumed && this.applied !== null ? `data resumed; ${policy.reason}` : policy.reason, mode: "active", policy };
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
