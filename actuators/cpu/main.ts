/**
 * `cage actuator cpu --config FILE [--dry-run] [--endpoint AGG_EP] [--publish EP]`: the cage
 * scheduler (docs/cpu-actuators.md), or this file run directly with the same arguments.
 * Exit 2 = bad arguments or config, 1 = could not start.
 */
// First: a parent that dies while the modules below load must not leave us behind.
import "../../runtime/armParentWatch.js";
import { availableParallelism } from "node:os";
import { runIfEntry } from "../../runtime/processRuntime.js";
import { defaultCpuActuatorSpec } from "../../config/loadConfig.js";
import { actuatorProcess, runActuatorProcess } from "../common/actuatorLifecycle.js";
import { defaultEndpoints, defaultRuntimeDir } from "../../protocol/endpoints.js";
import { readMounts } from "../common/cgroupCpuBackend.js";
import { backendForCage } from "./backends/selectBackend.js";
import { CpuActuator } from "./cpuActuator.js";

export const cpuActuatorProcess = actuatorProcess({
  name: "cpu",
  create(args, config, log) {
    const section = config.agent.actuators.cpu ?? null;
    if (section === null) log.warn(`${args.configPath}: no agent.actuators.cpu section; running with its defaults`);
    const spec = { ...(section ?? defaultCpuActuatorSpec()) };
    if (args.dryRun) spec.dryRun = true;
    const endpoints = defaultEndpoints(config.agent.runtimeDir ?? defaultRuntimeDir());
    const mounts = readMounts();
    log.info({ cages: config.cages.length, dryRun: spec.dryRun, periodMs: spec.periodMs, staleAfterMs: spec.staleAfterMs }, "cpu actuator starting");
    return new CpuActuator({
      config,
      spec,
      aggregates: args.endpoint ?? endpoints.aggregates,
      publish: args.publish ?? endpoints.actuators?.cpu ?? null,
      logger: log,
      hostCapacityPct: spec.hostCapacityPct ?? availableParallelism() * 100,
      backendFor: (cage) => backendForCage(cage, mounts, {}, undefined, log),
    });
  },
  cannotStart: "cpu actuator could not start",
  stopping: "stopping: restoring the original settings",
  stoppedInfo: (service) => ({ decisions: service.decisions, applyErrors: service.applyErrors }),
});

export function runCpuActuator(argv: string[]): Promise<number> {
  return runActuatorProcess(cpuActuatorProcess, argv);
}

runIfEntry(import.meta.url, cpuActuatorProcess);
