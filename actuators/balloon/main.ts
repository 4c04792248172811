/**
 * The balloon actuator process: `cage actuator balloon --config FILE [--dry-run] [--endpoint
 * AGG_EP] [--publish EP]`, or this file run directly with the same arguments. Runs until
 * SIGINT/SIGTERM (or its supervisor goes away), then gives every VM it shrank its base back.
 * Exit 2 = bad arguments or config (restarting won't help), 1 = cannot bind.
 */
// First: a parent that dies while the modules below load must not leave us behind.
import "../../runtime/armParentWatch.js";
import { runIfEntry } from "../../runtime/processRuntime.js";
import { actuatorProcess, runActuatorProcess } from "../common/actuatorLifecycle.js";
import { defaultEndpoints, defaultRuntimeDir } from "../../protocol/endpoints.js";
import { DEFAULT_BALLOON_ACTUATOR } from "../../config/loadConfig.js";
import { BalloonActuator } from "./balloonActuator.js";

export const balloonActuatorProcess = actuatorProcess({
  name: "balloon",
  create(args, config, log) {
    const section = config.agent.actuators.balloon;
    if (section === null) log.warn(`${args.configPath}: no agent.actuators.balloon section; running with the defaults`);
    const spec = { ...(section ?? DEFAULT_BALLOON_ACTUATOR), dryRun: args.dryRun || (section?.dryRun ?? false) };
    const endpoints = defaultEndpoints(config.agent.runtimeDir ?? defaultRuntimeDir());
    return new BalloonActuator({
      config,
      spec,
      aggregates: args.endpoint ?? endpoints.aggregates,
      publish: args.publish ?? endpoints.actuators?.balloon ?? null,
      logger: log,
    });
  },
  cannotStart: "cannot start the balloon actuator (bind/connect failed)",
  stopping: "stopping: restoring every VM's memory as found",
  stoppedInfo: (actuator) => ({ cages: actuator.snapshot() }),
});

/** Runs the actuator until a stop request; returns the exit code. */
export function runBalloonActuator(argv: string[]): Promise<number> {
  return runActuatorProcess(balloonActuatorProcess, argv);
}

runIfEntry(import.meta.url, balloonActuatorProcess);
