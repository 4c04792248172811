/**
 * The balloon actuator's decisions for one cage, without I/O: the caller passes the clock, the
 * IDS's memory (null when the aggregates went stale) and the VM's actual memory as the back end
 * reports it, and gets back the target to set, if any.
 *
 *   desired target = base − IDS memory (RSS + resident page cache), within [floor, base]
 *
 * Bounded the way the two reference balloon managers bound theirs:
 *  - step limit (oVirt MOM's policies change a guest by at most max_balloon_change_percent = 5 %
 *    of its memory per interval): one move changes the target by at most `maxStepBytes`;
 *  - hysteresis (MOM skips changes smaller than min_balloon_change_percent = 0.2 %): a desired
 *    target within `hysteresisBytes` of the current one is not applied, except to land exactly on
 *    base or floor;
 *  - rate limit: at most one move per `minMoveIntervalMs` (default 0: a large step goes at once);
 *  - reversal hold: a move against the direction of the previous one waits until `reverseHoldMs`
 *    after it, which damps oscillation (a target chasing a noisy figure up and down) without
 *    delaying a step, or a run of steps, in one direction;
 *  - stuck balloon (XAPI squeezed's Stuckness_monitor: a domain asked to move whose actual has not
 *    moved toward its target for 5 s is "stuck" and left out): after `stuckAfterMs` without progress
 *    the cage is stuck, and no further move is pushed until the actual reaches the target or the
 *    desired target moves at least `stuckRetargetBytes` away from the stuck one;
 *  - "reached" allows an inaccuracy of `toleranceBytes` (squeezed's inaccuracy_kib).
 * The stale-data fail-safe target is applied at once: no step limit, hysteresis or rate limit.
 */
import type { BalloonActuatorSpec } from "../../config/cageConfig.js";

/** Targets are whole 4 KiB pages (cgroup v1 rounds limits down to pages anyway). */
export const PAGE_BYTES = 4096;

/** The policy's knobs: documented once, in the config's BalloonActuatorSpec. */
export type BalloonLimits = Pick<BalloonActuatorSpec, "maxStepBytes" | "hysteresisBytes" | "minMoveIntervalMs" | "reverseHoldMs" | "stuckAfterMs" | "stuckRetargetBytes" | "toleranceBytes">;

export interface CageMemoryBounds {
  baseBytes: number;
  floorBytes: number;
  /** Target applied when the cage's aggregates go stale (default: base). */
  failsafeBytes: number;
}

export interface BalloonCageState {
  /** The target last set (or, in dry-run, that would have been set); null before the first move. */
  targetBytes: number | null;
  lastMoveMs: number | null;
  /** Which way the last move took the target (grow: the VM gets more); null before the first change. */
  lastDirection: "grow" | "shrink" | null;
  /** The actual seen at the previous step, to tell progress. */
  lastActualBytes: number | null;
  /** Last time the actual reached or moved toward the target (or a new target was set). */
  lastProgressMs: number | null;
  stuck: boolean;
  /** The target the balloon got stuck on. */
  stuckTargetBytes: number | null;
}

export const initialCageState = (): BalloonCageState => ({
  targetBytes: null,
  lastMoveMs: null,
  lastDirection: null,
  lastActualBytes: null,
  lastProgressMs: null,
  stuck: false,
  stuckTargetBytes: null,
});

export interface PolicyInput {
  nowMs: number;
  /** IDS memory (RSS + attributed page cache), bytes; null = the cage's aggregates are stale. */
  idsBytes: number | null;
  /** The VM's actual memory from the back end; null = unknown (back end cannot tell, or failed). */
  actualBytes: number | null;
  /** Dry-run: targets are never applied, so the actual is not expected to follow (no stuck check). */
  dryRun: boolean;
}

export interface PolicyMove {
  fromBytes: number | null;
  toBytes: number;
  reason: string;
  failsafe: boolean;
}

export interface PolicyResult {
  state: BalloonCageState;
  move: PolicyMove | null;
  desiredBytes: number;
  /** Set when this step declared the balloon stuck (for a one-off log line). */
  becameStuck: boolean;
  /** Set when a stuck balloon recovered (reached its target or was retargeted). */
  recovered: boolean;
  /** Why no move was made although the target differs from the desired one (null: nothing pending). */
  heldBy: "hysteresis" | "rate-limit" | "reverse-hold" | "stuck" | null;
}

const MiB = 1024 * 1024;
const mib = (b: number): string => `${(b / MiB).toFixed(1)} MiB`;

/** Checks limits and bounds at the edge; throws with the field's name. */
export function validateLimits(limits: BalloonLimits, bounds: CageMemoryBounds): void {
  for (const [k, v] of Object.entries(limits)) {
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`balloon limits: ${k} must be a finite number >= 0, got ${v}`);
  }
  if (limits.maxStepBytes < PAGE_BYTES) throw new RangeError(`balloon limits: maxStepBytes must be at least one page (${PAGE_BYTES}), got ${limits.maxStepBytes}`);
  const { baseBytes, floorBytes, failsafeBytes } = bounds;
  if (!(floorBytes > 0 && floorBytes <= baseBytes)) throw new RangeError(`balloon bounds: need 0 < floor <= base, got floor ${floorBytes}, base ${baseBytes}`);
  if (!(failsafeBytes >= floorBytes && failsafeBytes <= baseBytes)) throw new RangeError(`balloon bounds: failsafe must be within [floor, base], got ${failsafeBytes}`);
}

/** base − ids, rounded down to a page, within [floor, base]. */
export function desiredTargetBytes(bounds: CageMemoryBounds, idsBytes: number): number {
  const raw = bounds.baseBytes - Math.max(0, idsBytes);
  const paged = Math.floor(raw / PAGE_BYTES) * PAGE_BYTES;
  return Math.min(bounds.baseBytes, Math.max(bounds.floorBytes, paged));
}

export function stepPolicy(prev: BalloonCageState, input: PolicyInput, bounds: CageMemoryBounds, limits: BalloonLimits): PolicyResult {
  const state: BalloonCageState = { ...prev };
  const now = input.nowMs;
  let becameStuck = false;
  let recovered = false;

  // 1. Progress of the balloon toward the target already set (squeezed's stuckness monitor).
  if (!input.dryRun && state.targetBytes !== null && input.actualBytes !== null) {
    const distance = Math.abs(input.actualBytes - state.targetBytes);
    const lastDistance = state.lastActualBytes === null ? Infinity : Math.abs(state.lastActualBytes - state.targetBytes);
    if (distance <= limits.toleranceBytes) {
      state.lastProgressMs = now;
      if (state.stuck) recovered = true;
      state.stuck = false;
      state.stuckTargetBytes = null;
    } else if (distance < lastDistance && state.lastActualBytes !== null) {
      state.lastProgressMs = now;
    } else if (!state.stuck && state.lastProgressMs !== null && now - state.lastProgressMs > limits.stuckAfterMs) {
      state.stuck = true;
      state.stuckTargetBytes = state.targetBytes;
      becameStuck = true;
    }
  }
  if (input.actualBytes !== null) state.lastActualBytes = input.actualBytes;

  const failsafe = input.idsBytes === null;
  const desired = failsafe ? bounds.failsafeBytes : desiredTargetBytes(bounds, input.idsBytes as number);
  // Before the first move, the VM is where its back end says, else at base.
  const current = state.targetBytes ?? input.actualBytes ?? bounds.baseBytes;
  const result = (move: PolicyMove | null, heldBy: PolicyResult["heldBy"]): PolicyResult => ({ state, move, desiredBytes: desired, becameStuck, recovered, heldBy });

  if (desired === state.targetBytes) return result(null, null);
  const diff = desired - current;

  if (failsafe) {
    if (state.stuck && state.stuckTargetBytes === desired) return result(null, "stuck");
    return result(moveTo(state, now, current, desired, "aggregates stale: fail-safe target", true), null);
  }

  const atBoundary = desired === bounds.baseBytes || desired === bounds.floorBytes;
  if (state.targetBytes !== null && Math.abs(diff) < limits.hysteresisBytes && !atBoundary) return result(null, "hysteresis");
  if (state.stuck && state.stuckTargetBytes !== null && Math.abs(desired - state.stuckTargetBytes) < limits.stuckRetargetBytes) {
    return result(null, "stuck");
  }
  if (state.lastMoveMs !== null && now - state.lastMoveMs < limits.minMoveIntervalMs) return result(null, "rate-limit");
  const reversing = state.lastDirection !== null && state.lastDirection !== (diff > 0 ? "grow" : "shrink");
  if (reversing && state.lastMoveMs !== null && now - state.lastMoveMs < limits.reverseHoldMs) return result(null, "reverse-hold");

  const step = Math.sign(diff) * Math.min(Math.abs(diff), limits.maxStepBytes);
  // A limited step still lands on whole pages and inside [floor, base].
  let next = step === diff ? desired : current + Math.trunc(step / PAGE_BYTES) * PAGE_BYTES;
  next = Math.min(bounds.baseBytes, Math.max(bounds.floorBytes, next));
  const ids = input.idsBytes as number;
  let reason = `ids ${mib(ids)}: base ${mib(bounds.baseBytes)} − ids = ${mib(bounds.baseBytes - ids)}`;
  if (desired === bounds.floorBytes && bounds.baseBytes - ids < bounds.floorBytes) reason += `, held at floor ${mib(bounds.floorBytes)}`;
  if (next !== desired) reason += `; step-limited to ${mib(limits.maxStepBytes)} (desired ${mib(desired)})`;
  if (state.stuck) {
    recovered = true;
    reason += `; retargeted while stuck at ${mib(state.stuckTargetBytes ?? 0)}`;
  }
  return result(moveTo(state, now, current, next, reason, false), null);
}

function moveTo(state: BalloonCageState, now: number, current: number, to: number, reason: string, failsafe: boolean): PolicyMove {
  const from = state.targetBytes;
  state.targetBytes = to;
  state.lastMoveMs = now;
  if (to !== current) state.lastDirection = to > current ? "grow" : "shrink";
  // A new target restarts the stuck clock.
  state.lastProgressMs = now;
  state.stuck = false;
  state.stuckTargetBytes = null;
  return { fromBytes: from, toBytes: to, reason, failsafe };
}
