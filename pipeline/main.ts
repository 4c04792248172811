/**
 * The pipeline process: `pipeline --config FILE [--runtime-dir DIR] [--agent-pid PID]`. Started and restarted by
 * `cage run`; exit 2 = bad arguments or config (restarting won't help), 1 = could not start.
 */
// First: a parent that dies while the modules below load must not leave us behind.
import "../runtime/armParentWatch.js";
import { loadProcessConfig } from "../runtime/processEntry.js";
import { ExitCode, runIfEntry, STOP_TIMEOUT_MS, type ProcessSpec } from "../runtime/processRuntime.js";
import { defaultEndpoints, defaultRuntimeDir, ensurePrivateDir } from "../protocol/endpoints.js";
import { agentIdentity } from "./agentIdentity.js";
import { parsePipelineArgs, PIPELINE_USAGE, type ParsedPipelineArgs } from "./pipelineArgs.js";
import { PipelineService } from "./pipelineService.js";
import { procMembershipResolver } from "./procMembership.js";
import { readIdsHelperSnapshot } from "../host/xen/idsHelperEntries.js";

export const pipelineProcess: ProcessSpec<ParsedPipelineArgs, PipelineService> = {
  name: "pipeline",
  usage: PIPELINE_USAGE,
  parseArgs: parsePipelineArgs,
  wantsHelp: (args) => args.help,
  stopTimeoutMs: STOP_TIMEOUT_MS.pipeline,
  async start(args, { log }) {
    if (args.help) throw new ExitCode(0);
    const config = loadProcessConfig(args.configPath, log);
    const runtimeDir = args.runtimeDir ?? config.agent.runtimeDir ?? defaultRuntimeDir();
    let service: PipelineService;
    try {
      const identity = agentIdentity(config.agent.host, runtimeDir);
      if (identity.hostWarning !== null) log.warn({ host: identity.host }, identity.hostWarning);
      service = new PipelineService({
        config,
        endpoints: defaultEndpoints(runtimeDir, config.agent.actuators.external.map((a) => a.name)),
        resolveMembership: procMembershipResolver(config.cages, log),
        ...(config.cages.some((c) => c.idsCr3 !== undefined) ? { readIdsHelpers: () => readIdsHelperSnapshot() } : {}),
        logger: log,
        identity,
        ...(args.agentPid !== null ? { agentRootPid: args.agentPid } : {}),
      });
    } catch (err) {
      // An unreadable InfluxDB password file: restarting will not help.
      log.fatal({ err }, "pipeline: bad configuration");
      throw new ExitCode(2, `pipeline: ${(err as Error).message}`);
    }
    try {
      ensurePrivateDir(runtimeDir);
      await service.start();
    } catch (err) {
      log.fatal({ err, runtimeDir }, "pipeline could not start");
      throw new ExitCode(1, "pipeline could not start");
    }
    return service;
  },
  stop: (service) => service.stop(),
};

runIfEntry(import.meta.url, pipelineProcess);
