/**
 * The memory collector process: `collector-memory --config FILE --endpoint ipc://... [--sample-ms N]`.
 * Started and restarted by `cage run`; exit 2 = bad arguments or config (restarting won't help).
 */
import { pino } from "pino";
import { stopWhenParentDies } from "../../runtime/parentWatch.js";
import { argsOrReport, loadConfigOrReport, openPublisher, runEntry, waitForStopSignal } from "../../runtime/processEntry.js";
import { MemoryCollector } from "./memoryCollector.js";
import { isUsageError } from "../../runtime/usageError.js";
import { MEMORY_COLLECTOR_USAGE, parseMemoryCollectorArgs } from "./memoryCollectorArgs.js";

async function main(): Promise<number> {
  const args = argsOrReport(() => parseMemoryCollectorArgs(process.argv.slice(2)), isUsageError, MEMORY_COLLECTOR_USAGE);
  if (!args) return 2;
  const config = loadConfigOrReport(args.configPath);
  if (!config) return 2;

  const log = pino({ name: "collector-memory", level: config.agent.logLevel }, pino.destination(2));
  const publisher = await openPublisher(args.endpoint, log);
  if (!publisher) return 1;

  const sampleMs = args.sampleMs ?? config.agent.memorySampleMs;
  const collector = new MemoryCollector({ cages: config.cages, publisher, log, sampleMs, resolveMs: config.agent.resolveMs });
  collector.start();
  log.info({ endpoint: args.endpoint, sampleMs, resolveMs: config.agent.resolveMs, cages: config.cages.length }, "memory collector started");

  stopWhenParentDies();
  const signal = await waitForStopSignal();
  log.info({ signal, counters: collector.counters }, "stopping");
  collector.stop();
  // A stuck socket must not keep us alive: the supervisor waits for our exit.
  setTimeout(() => process.exit(0), 3000).unref();
  await publisher.close();
  log.flush();
  return 0;
}

runEntry("collector-memory", main);
