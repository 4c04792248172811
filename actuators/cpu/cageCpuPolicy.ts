/**
 * The resource-cage arithmetic (OffloadCage paper §4.3 and §4.4), pure. Units are % of one CPU
 * unless named otherwise.
 *
 * The paper (one CPU, Xen credit scheduler) computes the credit handed to the offloading VM as
 *   cap:    credit = total × (RC.cap − RC.ids) / 100
 *   weight: credit = total × (weight / Σweight − RC.ids / 100)
 * and gives the VM the smaller of the two. On that machine "total" is one CPU, and RC.ids/100 is
 * the IDS's fraction of it. We generalise to a host of H % (H = CPUs × 100): the IDS's fraction is
 * ids / H, so the weight share is H × (weight/Σweight) − ids, which is the paper's formula when H = 100.
 */
import { DEFAULT_VM_FLOOR_FRACTION } from "../../config/defaults.js";

/** The paper's credit from the cage cap: total × (cap − ids) / 100. */
export function paperCapCredit(totalCredit: number, rcCap: number, rcIds: number): number {
  return (totalCredit * (rcCap - rcIds)) / 100;
}

/** The paper's credit from the weights: total × (weight/Σweight − ids/100). */
export function paperWeightCredit(totalCredit: number, weight: number, sumWeight: number, rcIds: number): number {
  return totalCredit * (weight / sumWeight - rcIds / 100);
}

export interface CagePolicyInput {
  /** The cage cap (VM + IDS). */
  capPct: number;
  /** The cage's weight (config scale, 100 = default), or null: weights not managed. */
  weight: number | null;
  /** Σ of every cage's weight (a cage without one counts 100). */
  sumWeights: number;
  /** The host's CPU capacity that weights share (CPUs × 100). */
  hostCapacityPct: number;
  /** The IDS's CPU over the last period. */
  idsPct: number;
  /** The VM's cap never goes below this (never starved). */
  vmFloorPct: number;
  /** The VM's cap never goes above this. */
  vmCeilingPct: number;
}

export type Binding = "cap" | "weight" | "floor" | "ceiling";

export interface CagePolicyResult {
  /** cap − ids, unclamped (the paper's cap credit on one CPU). */
  capSharePct: number;
  /** H × (weight/Σweight) − ids, unclamped; null without a weight. */
  weightSharePct: number | null;
  /** What the VM gets: the smaller share, within [floor, ceiling] (the paper's distributed credit). */
  vmSharePct: number;
  /** The cap to apply to the VM: the cap share within [floor, ceiling]. */
  vmCapPct: number;
  /** The weight to apply (config scale) so that under contention the VM's share is the weight share; null without a weight. */
  vmWeight: number | null;
  /** Which term decided vmSharePct. */
  binding: Binding;
  /** In words, for the decision log. */
  reason: string;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

function checkPositive(name: string, v: unknown): void {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw new RangeError(`cage policy: ${name} must be a positive number, got ${String(v)}`);
}

/** Checks an input at the edge; throws RangeError naming the field. */
export function validatePolicyInput(i: CagePolicyInput): void {
  // Each field by name, not through a list of keys: the controller checks its input every period.
  checkPositive("capPct", i.capPct);
  checkPositive("sumWeights", i.sumWeights);
  checkPositive("hostCapacityPct", i.hostCapacityPct);
  checkPositive("vmFloorPct", i.vmFloorPct);
  checkPositive("vmCeilingPct", i.vmCeilingPct);
  if (!Number.isFinite(i.idsPct) || i.idsPct < 0) throw new RangeError(`cage policy: idsPct must be a number >= 0, got ${i.idsPct}`);
  if (i.vmFloorPct > i.vmCeilingPct) throw new RangeError(`cage policy: vmFloorPct ${i.vmFloorPct} > vmCeilingPct ${i.vmCeilingPct}`);
  if (i.weight !== null && (!Number.isFinite(i.weight) || i.weight <= 0 || i.weight > i.sumWeights)) {
    throw new RangeError(`cage policy: weight must be in (0, sumWeights=${i.sumWeights}], got ${i.weight}`);
  }
}

/**
 * The weight (config scale) that gives the VM `sharePct` of the host against the other cages'
 * weights (Σweight − weight): w' / (w' + others) = share / H  ⇒  w' = f × others / (1 − f).
 * With no other cage to compete with, the weight is scaled by the share left to the VM instead.
 */
export function weightForShare(weight: number, sumWeights: number, hostCapacityPct: number, sharePct: number): number {
  const others = sumWeights - weight;
  const f = clamp(sharePct / hostCapacityPct, 0, 1);
  const baseShare = (hostCapacityPct * weight) / sumWeights;
  const w = others > 0 && f < 1 ? (f * others) / (1 - f) : weight * clamp(sharePct / baseShare, 0, 1);
  return Math.max(1, Math.round(w));
}

export function cagePolicy(i: CagePolicyInput): CagePolicyResult {
  const shares = cageShares(i);
  return { ...shares, reason: policyReason(i, shares) };
}

/**
 * cagePolicy without its reason: the figures alone. A controller that holds most periods asks for
 * the reason (policyReason) only when it applies a setting, not every period for every cage.
 */
export function cageShares(i: CagePolicyInput): Omit<CagePolicyResult, "reason"> {
  validatePolicyInput(i);
  const capSharePct = paperCapCredit(100, i.capPct, i.idsPct);
  const weightSharePct = i.weight === null ? null : paperWeightCredit(i.hostCapacityPct, i.weight, i.sumWeights, (i.idsPct * 100) / i.hostCapacityPct);
  const vmCapPct = clamp(capSharePct, i.vmFloorPct, i.vmCeilingPct);

  let raw = capSharePct;
  let binding: Binding = "cap";
  if (weightSharePct !== null && weightSharePct < capSharePct) {
    raw = weightSharePct;
    binding = "weight";
  }
  const vmSharePct = clamp(raw, i.vmFloorPct, i.vmCeilingPct);
  if (raw < i.vmFloorPct) binding = "floor";
  else if (raw > i.vmCeilingPct) binding = "ceiling";

  const vmWeight = i.weight === null || weightSharePct === null ? null : weightForShare(i.weight, i.sumWeights, i.hostCapacityPct, Math.max(weightSharePct, i.vmFloorPct));
  return { capSharePct, weightSharePct, vmSharePct, vmCapPct, vmWeight, binding };
}

/** cagePolicy's reason, in words, for the figures cageShares gave for the same input. */
export function policyReason(i: CagePolicyInput, r: Omit<CagePolicyResult, "reason">): string {
  const parts = [`ids ${round1(i.idsPct)}% of cage cap ${i.capPct}%: cap share ${round1(r.capSharePct)}%`];
  if (r.weightSharePct !== null) parts.push(`weight share ${round1(r.weightSharePct)}% (weight ${i.weight}/${i.sumWeights} of ${i.hostCapacityPct}%)`);
  if (r.binding === "floor") parts.push(`raised to the floor ${i.vmFloorPct}%`);
  if (r.binding === "ceiling") parts.push(`lowered to the ceiling ${i.vmCeilingPct}%`);
  if (r.binding === "weight") parts.push("weight share is smaller");
  return parts.join("; ");
}

function round1(v: number): number {
  return Math.round(v * 10) / 10;
}

/** Per-cage knobs with their defaults filled in (docs/cpu-actuators.md). */
export interface CageCpuKnobs {
  vmFloorPct: number;
  vmCeilingPct: number;
  failsafeCapPct: number;
}

/** Default floor: 10% of the cage cap, so the VM is never starved to zero. */
export const DEFAULT_FLOOR_FRACTION = DEFAULT_VM_FLOOR_FRACTION;

export function cageCpuKnobs(cpu: { cap: number; vmFloor?: number; vmCeiling?: number; failsafeCap?: number }): CageCpuKnobs {
  const vmCeilingPct = cpu.vmCeiling ?? cpu.cap;
  const vmFloorPct = cpu.vmFloor ?? Math.min(vmCeilingPct, cpu.cap * DEFAULT_FLOOR_FRACTION);
  return { vmFloorPct, vmCeilingPct, failsafeCapPct: cpu.failsafeCap ?? vmCeilingPct };
}

/** Σweight over the cages: the paper's "total weight"; a cage without a weight counts 100. */
export function sumOfWeights(cages: { cpu: { weight: number | null } }[]): number {
  return cages.reduce((s, c) => s + (c.cpu.weight ?? 100), 0);
}

/**
 * Whether a new setting is worth applying: always the first time, when the weight changes, when
 * the cap moves by at least `minChangePct`, or when it reaches a bound exactly (so the floor and
 * ceiling are really reached despite the dead band).
 */
export function worthApplying(
  prev: { capPct: number | null; weight: number | null } | null,
  next: { capPct: number | null; weight: number | null },
  minChangePct: number,
  bounds: { lo: number; hi: number },
): boolean {
  if (prev === null) return true;
  if (prev.weight !== next.weight) return true;
  if (prev.capPct === null || next.capPct === null) return prev.capPct !== next.capPct;
  const delta = Math.abs(prev.capPct - next.capPct);
  if (delta === 0) return false;
  if (delta >= minChangePct) return true;
  return next.capPct === bounds.lo || next.capPct === bounds.hi;
}
