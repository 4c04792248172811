/**
 * The pipeline process: `pipeline --config FILE [--runtime-dir DIR] [--agent-pid PID]`. Started and restarted by
 * `cage run`; exit 2 = bad arguments or config (restarting won't help), 1 = could not start.
 */
import { pino } from "pino";
import { stopWhenParentDies } from "../runtime/parentWatch.js";
import { argsOrReport, loadConfigOrReport, runEntry, waitForStopSignal } from "../runtime/processEntry.js";
import { defaultEndpoints, defaultRuntimeDir, ensurePrivateDir } from "../protocol/endpoints.js";
import { isUsageError } from "../runtime/usageError.js";
import { parsePipelineArgs, PIPELINE_USAGE } from "./pipelineArgs.js";
import { PipelineService } from "./pipelineService.js";
import { procMembershipResolver } from "./procMembership.js";

async function main(): Promise<number> {
  const args = argsOrReport(() => parsePipelineArgs(process.argv.slice(2)), isUsageError, PIPELINE_USAGE);
  if (!args) return 2;
  if (args.help) {
    process.stdout.write(`${PIPELINE_USAGE}\n`);
    return 0;
  }
  const config = loadConfigOrReport(args.configPath);
  if (!config) return 2;

  const log = pino({ name: "pipeline", level: config.agent.logLevel }, pino.destination(2));
  const runtimeDir = args.runtimeDir ?? config.agent.runtimeDir ?? defaultRuntimeDir();
  const service = new PipelineService({
    config,
    endpoints: defaultEndpoints(runtimeDir),
    resolveMembership: procMembershipResolver(config.cages, log),
    logger: log,
    ...(args.agentPid !== null ? { agentRootPid: args.agentPid } : {}),
  });
  try {
    ensurePrivateDir(runtimeDir);
    await service.start();
  } catch (err) {
    log.fatal({ err, runtimeDir }, "pipeline could not start");
    log.flush();
    return 1;
  }

  stopWhenParentDies();
  const signal = await waitForStopSignal();
  log.info({ signal }, "stopping");
  // A stuck socket or exporter must not keep us alive: the supervisor waits for our exit.
  setTimeout(() => process.exit(0), 5000).unref();
  await service.stop();
  log.flush();
  return 0;
}

runEntry("pipeline", main);
