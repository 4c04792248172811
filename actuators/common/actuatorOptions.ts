/**
 * What every actuator is built from, under the same names: its config section (`spec`), the
 * pipeline's aggregates endpoint and its own publish endpoint (actuatorLink.ts), a logger and a
 * clock. Each actuator adds only what is its own (back ends, host capacity, cgroup mounts).
 */
import type { Logger } from "pino";
import type { AgentConfig } from "../../config/cageConfig.js";

export interface ActuatorOptions<Spec> {
  config: AgentConfig;
  /** The actuator's section of agent.actuators, with --dry-run already folded into dryRun. */
  spec: Spec;
  /** The pipeline's aggregates endpoint to connect to. */
  aggregates: string;
  /** Where to bind act.decision/act.state; null = publish nothing. */
  publish: string | null;
  logger: Logger;
  /** The clock, ms since the epoch; default Date.now (tests step it by hand). */
  now?: () => number;
}

/** For the actuators that hand their undo actions to a restore guardian. */
export interface GuardedActuatorOptions<Spec> extends ActuatorOptions<Spec> {
  /** Guardian watchdog: it undoes everything if no heartbeat comes for this long; default GuardianClient's. */
  guardianWatchdogMs?: number;
  /** Where the original settings are recorded (originalSettings.ts); default the runtime and state directories of the config. */
  originalsFiles?: readonly string[];
}
