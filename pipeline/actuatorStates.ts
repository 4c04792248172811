/**
 * The latest `act.state` of every (actuator, cage), and counts of `act.decision`s, for the
 * pipeline's metrics (pure: the caller passes the receive time).
 *
 * A state not refreshed within `expireMs` is forgotten, so the metrics of an actuator that died
 * disappear (and "balloon stuck" does not stay raised forever from a dead process's last word);
 * Prometheus then sees the series go absent, which the alert rules treat as such.
 */
import type { ActuatorDecision, ActuatorMode, ActuatorState } from "../protocol/actuatorMessages.js";

export const ACTUATOR_MODES: readonly ActuatorMode[] = ["active", "failsafe", "dry-run", "error"];

/** Actuators publish about once a second; ten missed states mean it is gone. */
export const DEFAULT_STATE_EXPIRY_MS = 10_000;

export type DecisionOutcome = "applied" | "dry_run" | "error";

export interface DecisionCount {
  cage: string;
  actuator: string;
  setting: string;
  outcome: DecisionOutcome;
  count: number;
}

export function decisionOutcome(d: ActuatorDecision): DecisionOutcome {
  if (d.error !== undefined) return "error";
  return d.dryRun ? "dry_run" : "applied";
}

export class ActuatorStateBook {
  private readonly states = new Map<string, { state: ActuatorState; receivedMs: number }>();
  private readonly decisions = new Map<string, DecisionCount>();

  constructor(private readonly expireMs = DEFAULT_STATE_EXPIRY_MS) {
    if (!(expireMs > 0)) throw new Error(`actuator state book: expireMs must be > 0, got ${expireMs}`);
  }

  noteState(state: ActuatorState, receivedMs: number): void {
    const key = `${state.actuator}\u0000${state.cage}`;
    const prev = this.states.get(key);
    // A reordered older state must not overwrite a newer one.
    if (prev !== undefined && prev.state.timeMs > state.timeMs) return;
    this.states.set(key, { state, receivedMs });
  }

  noteDecision(d: ActuatorDecision): void {
    const outcome = decisionOutcome(d);
    const key = [d.cage, d.actuator, d.setting, outcome].join("\u0000");
    const entry = this.decisions.get(key);
    if (entry === undefined) this.decisions.set(key, { cage: d.cage, actuator: d.actuator, setting: d.setting, outcome, count: 1 });
    else entry.count++;
  }

  /** The states received within expireMs of `nowMs`; older ones are forgotten. */
  current(nowMs: number): ActuatorState[] {
    const out: ActuatorState[] = [];
    for (const [key, { state, receivedMs }] of this.states) {
      if (nowMs - receivedMs > this.expireMs) this.states.delete(key);
      else out.push(state);
    }
    return out;
  }

  decisionCounts(): DecisionCount[] {
    return [...this.decisions.values()];
  }
}
