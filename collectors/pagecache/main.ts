/**
 * The page cache collector process:
 *   collector-pagecache (--cgroup PATH | --config FILE) --endpoint ipc://... [--interval-ms N] [--max-pages N] [--create-cgroup]
 * With --config (how `cage run` starts it) it also keeps the cages' IDS processes in its
 * tracking group (idsPlacer.ts) and returns them at exit.
 * Publishes PageCacheBatch on raw.pagecache and CollectorStatus on status. Exit 2 = bad
 * arguments (restarting won't help); 1 = could not start (bpftrace, socket).
 */
import { existsSync, mkdirSync } from "node:fs";
import { pino } from "pino";
import { stopWhenParentDies } from "../../runtime/parentWatch.js";
import { argsOrReport, loadConfigOrReport, openPublisher, runEntry, waitForStopSignal } from "../../runtime/processEntry.js";
import { encodeJson, type CollectorStatus } from "../../protocol/cageAggregate.js";
import { encodePageCacheBatch } from "../../protocol/rawBatches.js";
import { Encoding, Topic } from "../../protocol/wireFormat.js";
import { isUsageError } from "../../runtime/usageError.js";
import { PAGE_CACHE_COLLECTOR_USAGE, parsePageCacheCollectorArgs } from "./pageCacheCollectorArgs.js";
import { startPageCacheSource, type PageCacheSource } from "./pageCacheSource.js";
import { IdsPlacer } from "./idsPlacer.js";

const COLLECTOR = "pagecache";

async function main(): Promise<number> {
  const args = argsOrReport(() => parsePageCacheCollectorArgs(process.argv.slice(2)), isUsageError, PAGE_CACHE_COLLECTOR_USAGE);
  if (!args) return 2;
  const config = args.configPath === null ? null : loadConfigOrReport(args.configPath);
  if (args.configPath !== null && config === null) return 2;
  const log = pino({ name: "collector-pagecache", level: config?.agent.logLevel ?? "info" }, pino.destination(2));
  // The placer creates the agent's tracking group; an explicit --cgroup overrides which group is traced.
  const placer = config === null ? null : new IdsPlacer(config.cages, log);
  const cgroupV2Path = args.cgroupV2Path ?? (placer as IdsPlacer).group.path;
  if (args.createCgroup && !existsSync(cgroupV2Path)) mkdirSync(cgroupV2Path, { recursive: true });

  const publisher = await openPublisher(args.endpoint, log);
  if (!publisher) {
    placer?.stop();
    return 1;
  }

  let source: PageCacheSource | null = null;
  const publishStatus = (state: string, message?: string): void => {
    const status: CollectorStatus = { v: 1, collector: COLLECTOR, state, counters: { ...(source?.counters ?? {}), ...(placer?.counters ?? {}) }, timeMs: Date.now() };
    if (message !== undefined) status.message = message;
    void publisher.publish(Topic.status, Encoding.json, encodeJson(status));
  };

  try {
    source = await startPageCacheSource({
      cgroupV2Path,
      intervalMs: args.intervalMs,
      maxTrackedPages: args.maxTrackedPages,
      onBatch: (batch) => void publisher.publish(Topic.rawPageCache, Encoding.pageCacheBatch, encodePageCacheBatch(batch)),
      onEvent: (e) => {
        log[e.level](e.message);
        publishStatus(e.level === "info" ? "running" : e.level === "warn" ? "restarting" : "error", e.message);
      },
    });
  } catch (err) {
    log.fatal({ err }, "cannot start bpftrace");
    publishStatus("error", (err as Error).message);
    placer?.stop();
    await publisher.close();
    log.flush();
    return 1;
  }
  // Placing only after bpftrace is attached: nothing an IDS reads after its move goes unseen.
  if (config !== null) placer?.start(config.agent.resolveMs);
  log.info({ ...args, cgroupV2Path }, "page cache collector started");
  publishStatus("started");
  const statusTimer = setInterval(() => publishStatus("running"), args.statusMs);

  stopWhenParentDies();
  const signal = await waitForStopSignal();
  clearInterval(statusTimer);
  log.info({ signal, counters: source.counters }, "stopping");
  // A stuck socket must not keep us alive; bpftrace is stopped first so none is left behind.
  setTimeout(() => process.exit(0), 5000).unref();
  placer?.stop();
  await source.stop();
  await publisher.close();
  log.flush();
  return 0;
}

runEntry("collector-pagecache", main);
