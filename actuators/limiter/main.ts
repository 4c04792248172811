/**
 * `cage actuator limiter --config FILE [--dry-run] [--endpoint AGG_EP] [--publish EP]`: the IDS
 * limiter (docs/cpu-actuators.md). Exit 2 = bad arguments or config, 1 = could not start.
 */
import { pino } from "pino";
import { argsOrReport, loadConfigOrReport } from "../../runtime/processEntry.js";
import { runActuatorLifecycle } from "../common/actuatorLifecycle.js";
import type { LimiterActuatorSpec } from "../../config/cageConfig.js";
import { defaultLimiterActuatorSpec } from "../../config/loadConfig.js";
import { defaultEndpoints, defaultRuntimeDir } from "../../protocol/endpoints.js";
import { isUsageError } from "../../runtime/usageError.js";
import { actuatorUsage, parseActuatorArgs } from "../common/actuatorArgs.js";
import { readMounts } from "../common/cgroupCpuBackend.js";
import { ACTUATOR_NAME as LIMITER_NAME, LimiterActuator } from "./limiterActuator.js";

export async function runLimiter(argv: string[]): Promise<number> {
  const usage = actuatorUsage(LIMITER_NAME);
  const args = argsOrReport(() => parseActuatorArgs(LIMITER_NAME, argv), isUsageError, usage);
  if (!args) return 2;
  if (args.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const config = loadConfigOrReport(args.configPath);
  if (!config) return 2;
  const section = config.agent.actuators.limiter ?? null;
  if (section === null) process.stderr.write(`${args.configPath}: no agent.actuators.limiter section; running with its defaults\n`);
  const spec: LimiterActuatorSpec = { ...(section ?? defaultLimiterActuatorSpec()) };
  if (args.dryRun) spec.dryRun = true;

  const log = pino({ name: "actuator-limiter", level: config.agent.logLevel }, pino.destination({ dest: 2, sync: true }));
  const endpoints = defaultEndpoints(config.agent.runtimeDir ?? defaultRuntimeDir());
  const service = new LimiterActuator({
    config,
    spec,
    aggregates: args.endpoint ?? endpoints.aggregates,
    publish: args.publish ?? endpoints.actuators?.limiter ?? null,
    logger: log,
    mounts: readMounts(),
  });
  return runActuatorLifecycle({
    service,
    log,
    cannotStart: "IDS limiter could not start",
    stopping: "stopping: resuming the IDS and removing its limits",
    stopTimeoutMs: 15_000,
    stoppedInfo: () => ({ decisions: service.decisions }),
  });
}
