/**
 * The memory collector process: `collector-memory --config FILE --endpoint ipc://... [--sample-ms N]`.
 * Started and restarted by `cage run`; exit 2 = bad arguments or config (restarting won't help).
 */
// First: a parent that dies while the modules below load must not leave us behind.
import "../../runtime/armParentWatch.js";
import { loadProcessConfig, openPublisher } from "../../runtime/processEntry.js";
import { ExitCode, runIfEntry, STOP_TIMEOUT_MS, type ProcessSpec } from "../../runtime/processRuntime.js";
import type { MessagePublisher } from "../../protocol/messageBus.js";
import { idsSampleCages, MemoryCollector } from "./memoryCollector.js";
import { MEMORY_COLLECTOR_USAGE, parseMemoryCollectorArgs, type MemoryCollectorArgs } from "./memoryCollectorArgs.js";

export const memoryCollectorProcess: ProcessSpec<MemoryCollectorArgs, { collector: MemoryCollector; publisher: MessagePublisher }> = {
  name: "collector-memory",
  usage: MEMORY_COLLECTOR_USAGE,
  parseArgs: parseMemoryCollectorArgs,
  stopTimeoutMs: STOP_TIMEOUT_MS["collector-memory"],
  async start(args, { log }) {
    const config = loadProcessConfig(args.configPath, log);
    const publisher = await openPublisher(args.endpoint, log);
    if (!publisher) throw new ExitCode(1, `cannot bind ${args.endpoint}`);
    const sampleMs = args.sampleMs ?? config.agent.memorySampleMs;
    const fastCages = idsSampleCages(config);
    const idsSampleMs = fastCages.length === 0 ? null : config.agent.idsMemorySampleMs;
    const collector = new MemoryCollector({ cages: config.cages, publisher, log, sampleMs, idsSampleMs, idsSampleCages: fastCages, resolveMs: config.agent.resolveMs });
    collector.start();
    log.info({ endpoint: args.endpoint, sampleMs, idsSampleMs, idsSampleCages: fastCages.length, resolveMs: config.agent.resolveMs, cages: config.cages.length }, "memory collector started");
    return { collector, publisher };
  },
  async stop({ collector, publisher }, { log }) {
    log.info({ counters: collector.counters }, "stopping the sampler");
    collector.stop();
    await publisher.close();
  },
};

runIfEntry(import.meta.url, memoryCollectorProcess);
