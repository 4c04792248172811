/**
 * The one rule every actuator uses for the `mode` it publishes in act.state, so the same
 * situation reads the same whichever actuator reports it: a failing back end wins over dry-run,
 * dry-run over the fail-safe, and a cage on fresh data is active.
 */
import type { ActuatorMode } from "../../protocol/actuatorMessages.js";

export interface CageCondition {
  /** The cage's back end is missing or its last operation failed. */
  failing: boolean;
  dryRun: boolean;
  /** Aggregates went stale and the cage's fail-safe applies. */
  failsafe: boolean;
}

export function actuatorMode(condition: CageCondition): ActuatorMode {
  if (condition.failing) return "error";
  if (condition.dryRun) return "dry-run";
  return condition.failsafe ? "failsafe" : "active";
}
