/**
 * `cage actuator limiter --config FILE [--dry-run] [--endpoint AGG_EP] [--publish EP]`: the IDS
 * limiter (docs/cpu-actuators.md), or this file run directly with the same arguments.
 * Exit 2 = bad arguments or config, 1 = could not start.
 */
// First: a parent that dies while the modules below load must not leave us behind.
import "../../runtime/armParentWatch.js";
import { runIfEntry } from "../../runtime/processRuntime.js";
import { actuatorProcess, runActuatorProcess } from "../common/actuatorLifecycle.js";
import type { LimiterActuatorSpec } from "../../config/cageConfig.js";
import { defaultLimiterActuatorSpec } from "../../config/loadConfig.js";
import { defaultEndpoints, defaultRuntimeDir } from "../../protocol/endpoints.js";
import { readMounts } from "../common/cgroupCpuBackend.js";
import { LimiterActuator } from "./limiterActuator.js";

export const limiterProcess = actuatorProcess({
  name: "limiter",
  create(args, config, log) {
    const section = config.agent.actuators.limiter ?? null;
    if (section === null) log.warn(`${args.configPath}: no agent.actuators.limiter section; running with its defaults`);
    const spec: LimiterActuatorSpec = { ...(section ?? defaultLimiterActuatorSpec()) };
    if (args.dryRun) spec.dryRun = true;
    const endpoints = defaultEndpoints(config.agent.runtimeDir ?? defaultRuntimeDir());
    return new LimiterActuator({
      config,
      spec,
      aggregates: args.endpoint ?? endpoints.aggregates,
      publish: args.publish ?? endpoints.actuators?.limiter ?? null,
      logger: log,
      mounts: readMounts(),
    });
  },
  cannotStart: "IDS limiter could not start",
  stopping: "stopping: resuming the IDS and removing its limits",
  stoppedInfo: (service) => ({ decisions: service.decisions }),
});

export function runLimiter(argv: string[]): Promise<number> {
  return runActuatorProcess(limiterProcess, argv);
}

runIfEntry(import.meta.url, limiterProcess);
