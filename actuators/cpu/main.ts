/**
 * `cage actuator cpu --config FILE [--dry-run] [--endpoint AGG_EP] [--publish EP]`: the cage
 * scheduler (docs/cpu-actuators.md). Exit 2 = bad arguments or config, 1 = could not start.
 */
import { availableParallelism } from "node:os";
import { pino } from "pino";
import { argsOrReport, loadConfigOrReport } from "../../runtime/processEntry.js";
import { defaultCpuActuatorSpec } from "../../config/loadConfig.js";
import { runActuatorLifecycle } from "../common/actuatorLifecycle.js";
import { defaultEndpoints, defaultRuntimeDir } from "../../protocol/endpoints.js";
import { isUsageError } from "../../runtime/usageError.js";
import { actuatorUsage, parseActuatorArgs } from "../common/actuatorArgs.js";
import { readMounts } from "../common/cgroupCpuBackend.js";
import { backendForCage } from "./backends/selectBackend.js";
import { ACTUATOR_NAME, CpuActuator } from "./cpuActuator.js";

export async function runCpuActuator(argv: string[]): Promise<number> {
  const usage = actuatorUsage(ACTUATOR_NAME);
  const args = argsOrReport(() => parseActuatorArgs(ACTUATOR_NAME, argv), isUsageError, usage);
  if (!args) return 2;
  if (args.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const config = loadConfigOrReport(args.configPath);
  if (!config) return 2;
  const section = config.agent.actuators.cpu ?? null;
  if (section === null) process.stderr.write(`${args.configPath}: no agent.actuators.cpu section; running with its defaults\n`);
  const spec = { ...(section ?? defaultCpuActuatorSpec()) };
  if (args.dryRun) spec.dryRun = true;

  const log = pino({ name: "actuator-cpu", level: config.agent.logLevel }, pino.destination({ dest: 2, sync: true }));
  const endpoints = defaultEndpoints(config.agent.runtimeDir ?? defaultRuntimeDir());
  const mounts = readMounts();
  const service = new CpuActuator({
    config,
    spec,
    aggregates: args.endpoint ?? endpoints.aggregates,
    publish: args.publish ?? endpoints.actuators?.cpu ?? null,
    logger: log,
    hostCapacityPct: spec.hostCapacityPct ?? availableParallelism() * 100,
    backendFor: (cage) => backendForCage(cage, mounts),
  });
  log.info({ cages: config.cages.length, dryRun: spec.dryRun, periodMs: spec.periodMs, staleAfterMs: spec.staleAfterMs }, "cpu actuator starting");
  return runActuatorLifecycle({
    service,
    log,
    cannotStart: "cpu actuator could not start",
    stopping: "stopping: restoring the original settings",
    stopTimeoutMs: 15_000,
    stoppedInfo: () => ({ decisions: service.decisions, applyErrors: service.applyErrors }),
  });
}
