/**
 * The balloon actuator process: `cage actuator balloon --config FILE [--dry-run] [--endpoint
 * AGG_EP] [--publish EP]`, or this file run directly with the same arguments. Runs until
 * SIGINT/SIGTERM (or its supervisor goes away), then gives every VM it shrank its base back.
 * Exit 2 = bad arguments or config (restarting won't help), 1 = cannot bind or no
 * agent.actuators.balloon section.
 */
import { pino } from "pino";
import { stopWhenParentDies } from "../../runtime/parentWatch.js";
import { argsOrReport, isEntryModule, loadConfigOrReport, runEntry, waitForStopSignal } from "../../runtime/processEntry.js";
import { runActuatorLifecycle } from "../common/actuatorLifecycle.js";
import { defaultEndpoints, defaultRuntimeDir } from "../../protocol/endpoints.js";
import { DEFAULT_BALLOON_ACTUATOR } from "../../config/loadConfig.js";
import { isUsageError } from "../../runtime/usageError.js";
import { actuatorUsage, parseActuatorArgs } from "../common/actuatorArgs.js";
import { BalloonActuator } from "./balloonActuator.js";

/** Runs the actuator until a stop signal; returns the exit code. */
export async function runBalloonActuator(argv: string[]): Promise<number> {
  stopWhenParentDies();
  const usage = actuatorUsage("balloon");
  const args = argsOrReport(() => parseActuatorArgs("balloon", argv), isUsageError, usage);
  if (!args) return 2;
  if (args.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  // Listen before anything slow, so an early SIGTERM still takes the clean path.
  const signalled = waitForStopSignal();
  const config = loadConfigOrReport(args.configPath);
  if (!config) return 2;
  const log = pino({ name: "actuator-balloon", level: config.agent.logLevel }, pino.destination(2));
  const section = config.agent.actuators.balloon;
  if (section === null) log.warn(`${args.configPath}: no agent.actuators.balloon section; running with the defaults`);
  const settings = { ...(section ?? DEFAULT_BALLOON_ACTUATOR), dryRun: args.dryRun || (section?.dryRun ?? false) };
  const endpoints = defaultEndpoints(config.agent.runtimeDir ?? defaultRuntimeDir());
  const aggregates = args.endpoint ?? endpoints.aggregates;
  const publish = args.publish ?? endpoints.actuators?.balloon ?? null;

  const actuator = new BalloonActuator({ config, spec: settings, aggregates, publish, logger: log });
  return runActuatorLifecycle({
    service: actuator,
    log,
    cannotStart: "cannot start the balloon actuator (bind/connect failed)",
    stopping: "stopping: restoring every VM's base",
    stopTimeoutMs: 30_000,
    stoppedInfo: () => ({ cages: actuator.snapshot() }),
    signal: signalled,
  });
}

if (isEntryModule(import.meta.url)) runEntry("actuator-balloon", () => runBalloonActuator(process.argv.slice(2)));
