/**
 * What the actuator processes share on top of the process runtime (runtime/processRuntime.ts):
 * their command line, the config with its log level, start (exit 1 if it cannot, after undoing
 * what it did) and a stop that restores what the actuator changed.
 */
import type { Logger } from "pino";
import type { AgentConfig } from "../../config/cageConfig.js";
import { loadProcessConfig } from "../../runtime/processEntry.js";
import { ExitCode, runProcess, STOP_TIMEOUT_MS, type ProcessSpec } from "../../runtime/processRuntime.js";
import { actuatorUsage, parseActuatorArgs, type ActuatorArgs } from "./actuatorArgs.js";

export interface ActuatorProcessService {
  /** `signal`: aborted when a stop is requested during start-up (give up early). */
  start(signal?: AbortSignal): Promise<void>;
  stop(): Promise<void>;
}

export type ParsedActuatorArgs = ReturnType<typeof parseActuatorArgs>;

export interface ActuatorProcessOptions<Service extends ActuatorProcessService> {
  /** As in `cage actuator NAME`. */
  name: "cpu" | "limiter" | "balloon";
  /** Builds the service (nothing started yet) from the arguments and the loaded config. */
  create(args: ActuatorArgs, config: AgentConfig, log: Logger): Service;
  /** Logged (fatal) when start() throws. */
  cannotStart: string;
  /** Logged when stopping, e.g. "stopping: restoring the original settings". */
  stopping: string;
  /** Fields for the final "stopped" log line. */
  stoppedInfo(service: Service): object;
}

/** The process spec of one actuator. */
export function actuatorProcess<Service extends ActuatorProcessService>(o: ActuatorProcessOptions<Service>): ProcessSpec<ParsedActuatorArgs, Service> {
  const name = `actuator-${o.name}` as const;
  return {
    name,
    usage: actuatorUsage(o.name),
    parseArgs: (argv) => parseActuatorArgs(o.name, argv),
    wantsHelp: (args) => args.help,
    stopTimeoutMs: STOP_TIMEOUT_MS[name],
    async start(args, { log, signal }) {
      if (args.help) throw new ExitCode(0);
      const config = loadProcessConfig(args.configPath, log);
      const service = o.create(args, config, log);
      try {
        await service.start(signal);
      } catch (err) {
        // Abandoned for a stop request: the runtime logs that and exits 0 once this is undone.
        if (!signal.aborted) log.fatal({ err }, o.cannotStart);
        await service.stop().catch((stopErr: unknown) => log.error({ err: stopErr }, "restoring after the failed start failed"));
        if (signal.aborted) throw err;
        throw new ExitCode(1, o.cannotStart);
      }
      return service;
    },
    async stop(service, { log }) {
      log.info(o.stopping);
      await service.stop();
      log.info(o.stoppedInfo(service), "actuator stopped");
    },
  };
}

/** `cage actuator NAME ARGS`: runs the actuator until a stop request; returns the exit code. */
export function runActuatorProcess<Service extends ActuatorProcessService>(spec: ProcessSpec<ParsedActuatorArgs, Service>, argv: string[]): Promise<number> {
  return runProcess(spec, argv);
}
