/**
 * The memory collector process: `collector-memory --config FILE --endpoint ipc://... [--sample-ms N]`.
 * Started and restarted by `cage run`; exit 2 = bad arguments or config (restarting won't help).
 */
// First: a parent that dies while the modules below load must not leave us behind.
import "../../runtime/armParentWatch.js";
import type { Logger } from "pino";
import { loadProcessConfig, openPublisher } from "../../runtime/processEntry.js";
import { ExitCode, runIfEntry, STOP_TIMEOUT_MS, type ProcessSpec } from "../../runtime/processRuntime.js";
import { decodeCageMembers } from "../../protocol/cageMembers.js";
import { MessageSubscriber, type MessagePublisher } from "../../protocol/messageBus.js";
import { isProtocolError, Topic } from "../../protocol/wireFormat.js";
import { idsSampleCages, MemoryCollector } from "./memoryCollector.js";
import { MEMORY_COLLECTOR_USAGE, parseMemoryCollectorArgs, type MemoryCollectorArgs } from "./memoryCollectorArgs.js";

export const memoryCollectorProcess: ProcessSpec<MemoryCollectorArgs, { collector: MemoryCollector; publisher: MessagePublisher; members: { subscriber: MessageSubscriber; receiving: Promise<void> } | null }> = {
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
    const membersFrom = args.members === null ? "proc" : "pipeline";
    const collector = new MemoryCollector({ cages: config.cages, publisher, log, sampleMs, idsSampleMs, idsSampleCages: fastCages, resolveMs: config.agent.resolveMs, membersFrom });
    const members = args.members === null ? null : subscribeMembers(args.members, collector, log);
    collector.start();
    log.info({ endpoint: args.endpoint, sampleMs, idsSampleMs, idsSampleCages: fastCages.length, resolveMs: config.agent.resolveMs, members: args.members ?? "proc", cages: config.cages.length }, "memory collector started");
    return { collector, publisher, members };
  },
  async stop({ collector, publisher, members }, { log }) {
    log.info({ counters: collector.counters }, "stopping the sampler");
    members?.subscriber.close();
    await members?.receiving;
    collector.stop();
    await publisher.close();
  },
};

/** A SUB on the pipeline's `agg.members`; a malformed message is counted and skipped, never ends the loop. */
function subscribeMembers(endpoint: string, collector: MemoryCollector, log: Logger): { subscriber: MessageSubscriber; receiving: Promise<void> } {
  const subscriber = new MessageSubscriber();
  subscriber.connect(endpoint);
  subscriber.subscribe(Topic.cageMembers);
  const receiving = subscriber.receiveEach(
    (msg) => {
      if (msg.topic !== Topic.cageMembers) return; // a longer topic sharing the prefix
      try {
        collector.takeMembers(decodeCageMembers(msg.payload));
      } catch (err) {
        if (isProtocolError(err)) collector.rejectMembers(err.message);
        else {
          collector.counters.resolveErrors++;
          log.error({ err }, "taking the pipeline's membership failed; keeping the previous membership");
        }
      }
    },
    (err) => collector.rejectMembers(err.message),
  ).catch((err: unknown) => {
    // Only a socket-level failure ends the loop (as in the pipeline's receive loop): say so loudly.
    log.fatal({ err, endpoint }, "membership subscriber failed; the membership is no longer updated");
  });
  return { subscriber, receiving };
}

runIfEntry(import.meta.url, memoryCollectorProcess);
