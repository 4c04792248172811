/**
 * The page cache collector process:
 *   collector-pagecache (--cgroup PATH | --config FILE) --endpoint ipc://... [--interval-ms N] [--max-pages N] [--create-cgroup]
 * With --config (how `cage run` starts it) it also keeps the cages' IDS processes in its
 * tracking group (idsPlacer.ts) and returns them at exit.
 * Publishes PageCacheBatch on raw.pagecache and CollectorStatus on status. Exit 2 = bad
 * arguments (restarting won't help); 1 = could not start (bpftrace, socket).
 */
// First: a parent that dies while the modules below load must not leave us behind.
import "../../runtime/armParentWatch.js";
import { existsSync, mkdirSync } from "node:fs";
import { CollectorStatusPublisher } from "../../runtime/collectorStatus.js";
import { loadProcessConfig, openPublisher } from "../../runtime/processEntry.js";
import { ExitCode, runIfEntry, STOP_TIMEOUT_MS, type ProcessSpec } from "../../runtime/processRuntime.js";
import type { MessagePublisher } from "../../protocol/messageBus.js";
import { encodePageCacheBatch } from "../../protocol/rawBatches.js";
import { Encoding, Topic } from "../../protocol/wireFormat.js";
import { PAGE_CACHE_COLLECTOR_USAGE, parsePageCacheCollectorArgs, type PageCacheCollectorArgs } from "./pageCacheCollectorArgs.js";
import { startPageCacheSource, type PageCacheSource } from "./pageCacheSource.js";
import { IdsPlacer } from "./idsPlacer.js";

interface PageCacheCollector {
  publisher: MessagePublisher;
  source: PageCacheSource;
  placer: IdsPlacer | null;
  status: CollectorStatusPublisher;
}

export const pageCacheCollectorProcess: ProcessSpec<PageCacheCollectorArgs, PageCacheCollector> = {
  name: "collector-pagecache",
  usage: PAGE_CACHE_COLLECTOR_USAGE,
  parseArgs: parsePageCacheCollectorArgs,
  stopTimeoutMs: STOP_TIMEOUT_MS["collector-pagecache"],
  async start(args, { log, signal }) {
    const config = args.configPath === null ? null : loadProcessConfig(args.configPath, log);
    // The placer creates the agent's tracking group; an explicit --cgroup overrides which group is traced.
    const placer = config === null ? null : new IdsPlacer(config.cages, log);
    const cgroupV2Path = args.cgroupV2Path ?? (placer as IdsPlacer).group.path;
    if (args.createCgroup && !existsSync(cgroupV2Path)) mkdirSync(cgroupV2Path, { recursive: true });

    const publisher = await openPublisher(args.endpoint, log);
    if (!publisher) {
      placer?.stop();
      throw new ExitCode(1, `cannot bind ${args.endpoint}`);
    }
    let source: PageCacheSource | null = null;
    const status = new CollectorStatusPublisher({
      collector: "pagecache",
      publisher,
      log,
      counters: () => ({ ...(source?.counters ?? {}), ...(placer?.counters ?? {}) }),
    });
    try {
      if (signal.aborted) throw signal.reason;
      source = await startPageCacheSource({
        cgroupV2Path,
        intervalMs: args.intervalMs,
        maxTrackedPages: args.maxTrackedPages,
        signal,
        onBatch: (batch) => void publisher.publish(Topic.rawPageCache, Encoding.pageCacheBatch, encodePageCacheBatch(batch)),
        onEvent: (e) => {
          log[e.level](e.message);
          if (e.state !== undefined) status.set(e.state, e.message);
          else if (e.level === "error") status.set("error", e.message);
          else status.publish();
        },
      });
    } catch (err) {
      if (!signal.aborted) status.set("error", (err as Error).message);
      placer?.stop();
      await publisher.close();
      throw err;
    }
    // Placing only after bpftrace is attached: nothing an IDS reads after its move goes unseen.
    if (config !== null) placer?.start(config.agent.resolveMs);
    log.info({ ...args, cgroupV2Path }, "page cache collector started");
    status.publish();
    status.set("running");
    status.startPeriodic(args.statusMs);
    return { publisher, source, placer, status };
  },
  async stop({ publisher, source, placer, status }, { log }) {
    status.stopPeriodic();
    log.info({ counters: source.counters }, "stopping bpftrace and returning the IDS processes");
    placer?.stop();
    await source.stop();
    status.set("stopped");
    await publisher.close();
  },
};

runIfEntry(import.meta.url, pageCacheCollectorProcess);
