/**
 * One interface for every way of capping and weighting a VM's CPU: cgroup v1 and v2 files,
 * Xen `xl sched-credit`/`sched-credit2`, libvirt `virsh schedinfo`.
 */
import type { ProcessIdentity } from "../../host/proc/processIdentity.js";
import type { RestoreAction } from "./guardianProtocol.js";

export interface CpuBackend {
  /** For act.state `backend`: cgroup-v1, cgroup-v2, xl-credit, xl-credit2, virsh. */
  readonly kind: string;
  /** What it controls (a cgroup directory or a domain), for logs. */
  readonly target: string;
  /** Reads the settings as found (read-only: also used in dry-run). */
  open(): Promise<void>;
  /** Gets ready to change things (e.g. creates its own cgroup). Never called in dry-run. */
  prepare(): Promise<void>;
  /**
   * What the guardian must do to put the original settings back, each with the step that puts
   * a cap of `failsafeCapPct` in place instead should we die (the cage's fail-safe). Valid after prepare().
   */
  restoreActions(failsafeCapPct?: number): RestoreAction[];
  /**
   * Whether the cap of `target` is in place now, read back from the machine (an operator or
   * another tool may have reset it). Back ends that cannot read their setting back cheaply omit it.
   */
  isInPlace?(target: CpuTarget): boolean;
  /** Sets the VM's cap (null: the original) and weight (config scale; null: leave it). */
  apply(target: CpuTarget): Promise<void>;
  /**
   * For VMs the actuator keeps in its own cgroup: these processes are its members; they are
   * moved in, and ones moved in earlier that are no longer members go back out (others: no-op).
   */
  adoptPids(members: readonly ProcessIdentity[]): Promise<void>;
  /** Puts the original settings back (and removes what prepare() created). */
  restore(): Promise<void>;
}

export class CpuBackendError extends Error {
  override readonly name = "CpuBackendError";
}

/** Config weight (cgroup v2 scale, 100 = default) → v1 cpu.shares, the kernel's formula, clamped as the kernel does. */
export function sharesForWeight(weight: number): number {
  return Math.min(262144, Math.max(2, Math.round((weight * 1024) / 100)));
}

/** Config weight → v2 cpu.weight (1..10000). */
export function v2WeightFor(weight: number): number {
  return Math.min(10000, Math.max(1, Math.round(weight)));
}

/** Config weight → Xen credit weight (default 256 ↔ 100), 1..65535. */
export function xenWeightFor(weight: number): number {
  return Math.min(65535, Math.max(1, Math.round((weight * 256) / 100)));
}

export interface CpuTarget {
  /** % of one CPU; null = no cap (the original setting). */
  capPct: number | null;
  /** Config-scale weight; null = leave the weight alone. */
  weight: number | null;
}
