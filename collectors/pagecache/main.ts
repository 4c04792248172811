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
import { memcgCrossCheck, MemcgPageCacheSource, type MemcgCrossCheck } from "./memcgPageCache.js";

interface PageCacheCollector {
  publisher: MessagePublisher;
  source: PageCacheSource | null;
  /** v2, eBPF could not attach: each group's memory.stat `file` instead. */
  fallback: MemcgPageCacheSource | null;
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
    // The placer makes each cage's page cache group (the cgroup plan's idsV2); an explicit --cgroup overrides which group is traced.
    const placer = config === null ? null : await IdsPlacer.open(config.cages, log);
    const trackedPaths = args.cgroupV2Path !== null ? [args.cgroupV2Path] : (placer as IdsPlacer).trackedPaths;
    const [cgroupV2Path, ...extraCgroupV2Paths] = trackedPaths;
    if (cgroupV2Path === undefined) {
      placer?.stop();
      throw new ExitCode(1, "no cage has a page cache group: nothing to track (see the errors above)");
    }
    if (args.createCgroup && !existsSync(cgroupV2Path)) mkdirSync(cgroupV2Path, { recursive: true });

    const publisher = await openPublisher(args.endpoint, log);
    if (!publisher) {
      placer?.stop();
      throw new ExitCode(1, `cannot bind ${args.endpoint}`);
    }
    let source: PageCacheSource | null = null;
    let fallback: MemcgPageCacheSource | null = null;
    // eBPF's figure beside the kernel's for the groups with memory.stat (v2 memory controller).
    let crossCheck: MemcgCrossCheck | null = null;
    const status = new CollectorStatusPublisher({
      collector: "pagecache",
      publisher,
      log,
      counters: () => ({ ...(source?.counters ?? {}), ...(placer?.counters ?? {}), ...(crossCheck ?? {}) }),
    });
    try {
      if (signal.aborted) throw signal.reason;
      source = await startPageCacheSource({
        cgroupV2Path,
        extraCgroupV2Paths,
        intervalMs: args.intervalMs,
        maxTrackedPages: args.maxTrackedPages,
        signal,
        onBatch: (batch) => {
          if (placer !== null) crossCheck = memcgCrossCheck(batch, trackedPaths);
          void publisher.publish(Topic.rawPageCache, Encoding.pageCacheBatch, encodePageCacheBatch(batch));
        },
        onEvent: (e) => {
          log[e.level](e.message);
          if (e.state !== undefined) status.set(e.state, e.message);
          else if (e.level === "error") status.set("error", e.message);
          else status.publish();
        },
      });
    } catch (err) {
      const why = (err as Error).message;
      // On v2 the kernel charges page cache to the reader's group: its memory.stat `file` stands in.
      if (!signal.aborted && placer !== null && args.cgroupV2Path === null) {
        try {
          fallback = new MemcgPageCacheSource(trackedPaths, (batch) => void publisher.publish(Topic.rawPageCache, Encoding.pageCacheBatch, encodePageCacheBatch(batch)));
          log.warn({ err: why, groups: trackedPaths }, "eBPF could not attach: page cache from each group's memory.stat file instead (per group, not per process)");
        } catch (fallbackErr) {
          log.error({ err: (fallbackErr as Error).message }, "no memory.stat fallback either");
        }
      }
      if (fallback === null) {
        if (!signal.aborted) status.set("error", why);
        placer?.stop();
        await publisher.close();
        throw err;
      }
      fallback.start(args.intervalMs);
    }
    // Placing only after bpftrace is attached: nothing an IDS reads after its move goes unseen.
    if (config !== null) placer?.start(config.agent.resolveMs);
    log.info({ ...args, trackedPaths }, "page cache collector started");
    status.publish();
    status.set("running");
    status.startPeriodic(args.statusMs);
    return { publisher, source, fallback, placer, status };
  },
  async stop({ publisher, source, fallback, placer, status }, { log }) {
    status.stopPeriodic();
    log.info({ counters: source?.counters ?? null }, "stopping bpftrace and returning the IDS processes");
    fallback?.stop();
    placer?.stop();
    await source?.stop();
    status.set("stopped");
    await publisher.close();
  },
};

runIfEntry(import.meta.url, pageCacheCollectorProcess);
