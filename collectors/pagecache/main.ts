/**
 * The page cache collector process:
 *   collector-pagecache --cgroup PATH --endpoint ipc://... [--interval-ms N] [--max-pages N] [--create-cgroup]
 * Publishes PageCacheBatch on raw.pagecache and CollectorStatus on status. Exit 2 = bad
 * arguments (restarting won't help); 1 = could not start (bpftrace, socket).
 */
import { existsSync, mkdirSync } from "node:fs";
import { pino } from "pino";
import { stopWhenParentDies } from "../../cli/parentWatch.js";
import { argsOrReport, openPublisher, waitForStopSignal } from "../../cli/processEntry.js";
import { encodeJson, type CollectorStatus } from "../../protocol/cageAggregate.js";
import { encodePageCacheBatch } from "../../protocol/rawBatches.js";
import { Encoding, Topic } from "../../protocol/wireFormat.js";
import { PAGE_CACHE_COLLECTOR_USAGE, PageCacheCollectorArgsError, parsePageCacheCollectorArgs } from "./pageCacheCollectorArgs.js";
import { startPageCacheSource, type PageCacheSource } from "./pageCacheSource.js";

const COLLECTOR = "pagecache";

async function main(): Promise<number> {
  const args = argsOrReport(() => parsePageCacheCollectorArgs(process.argv.slice(2)), (e) => e instanceof PageCacheCollectorArgsError, PAGE_CACHE_COLLECTOR_USAGE);
  if (!args) return 2;
  const log = pino({ name: "collector-pagecache" }, pino.destination(2));
  if (args.createCgroup && !existsSync(args.cgroupV2Path)) mkdirSync(args.cgroupV2Path, { recursive: true });

  const publisher = await openPublisher(args.endpoint, log);
  if (!publisher) return 1;

  let source: PageCacheSource | null = null;
  const publishStatus = (state: string, message?: string): void => {
    const status: CollectorStatus = { v: 1, collector: COLLECTOR, state, counters: { ...(source?.counters ?? {}) }, timeMs: Date.now() };
    if (message !== undefined) status.message = message;
    void publisher.publish(Topic.status, Encoding.json, encodeJson(status));
  };

  try {
    source = await startPageCacheSource({
      cgroupV2Path: args.cgroupV2Path,
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
    await publisher.close();
    log.flush();
    return 1;
  }
  log.info({ ...args }, "page cache collector started");
  publishStatus("started");
  const statusTimer = setInterval(() => publishStatus("running"), args.statusMs);

  stopWhenParentDies();
  const signal = await waitForStopSignal();
  clearInterval(statusTimer);
  log.info({ signal, counters: source.counters }, "stopping");
  // A stuck socket must not keep us alive; bpftrace is stopped first so none is left behind.
  setTimeout(() => process.exit(0), 5000).unref();
  await source.stop();
  await publisher.close();
  log.flush();
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`collector-pagecache: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
