/**
 * The memory collector process: `collector-memory --config FILE --endpoint ipc://... [--sample-ms N]`.
 * Started and restarted by `cage run`; exit 2 = bad arguments or config (restarting won't help).
 */
import { existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { pino } from "pino";
import { stopWhenParentDies } from "../../cli/parentWatch.js";
import { formatConfigProblem, isConfigError } from "../../config/configError.js";
import { loadConfigFile } from "../../config/loadConfig.js";
import type { AgentConfig } from "../../config/cageConfig.js";
import { MessagePublisher } from "../../protocol/messageBus.js";
import { MemoryCollector } from "./memoryCollector.js";
import { MEMORY_COLLECTOR_USAGE, MemoryCollectorArgsError, parseMemoryCollectorArgs, type MemoryCollectorArgs } from "./memoryCollectorArgs.js";

async function main(): Promise<number> {
  let args: MemoryCollectorArgs;
  try {
    args = parseMemoryCollectorArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof MemoryCollectorArgsError)) throw err;
    process.stderr.write(`${err.message}\n${MEMORY_COLLECTOR_USAGE}\n`);
    return 2;
  }
  let config: AgentConfig;
  try {
    config = loadConfigFile(args.configPath);
  } catch (err) {
    if (!isConfigError(err)) throw err;
    for (const p of err.problems) process.stderr.write(`${formatConfigProblem(args.configPath, p)}\n`);
    return 2;
  }

  const log = pino({ name: "collector-memory", level: config.agent.logLevel }, pino.destination(2));
  const publisher = new MessagePublisher();
  try {
    if (args.endpoint.startsWith("ipc://")) {
      // Create a missing socket directory privately; never touch the mode of an existing one.
      const dir = dirname(args.endpoint.slice("ipc://".length));
      if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
    }
    await publisher.bind(args.endpoint);
  } catch (err) {
    log.fatal({ err, endpoint: args.endpoint }, "cannot bind the publisher socket");
    log.flush();
    return 1;
  }

  const sampleMs = args.sampleMs ?? config.agent.memorySampleMs;
  const collector = new MemoryCollector({ cages: config.cages, publisher, log, sampleMs, resolveMs: config.agent.resolveMs });
  collector.start();
  log.info({ endpoint: args.endpoint, sampleMs, resolveMs: config.agent.resolveMs, cages: config.cages.length }, "memory collector started");

  stopWhenParentDies();
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  log.info({ signal, counters: collector.counters }, "stopping");
  collector.stop();
  // A stuck socket must not keep us alive: the supervisor waits for our exit.
  setTimeout(() => process.exit(0), 3000).unref();
  await publisher.close();
  log.flush();
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`collector-memory: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
