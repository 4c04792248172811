/**
 * Page cache of one measurement (`cage measure`): a private tracking group, a collector on it,
 * and the totals over everything inside (the command and its descendants, or the given PIDs).
 * Pages a measured process added before it entered the group are not known to us.
 */
import { randomBytes } from "node:crypto";
import type { PageCacheBatch } from "../../protocol/rawBatches.js";
import { enterCgroupsArgv } from "../../host/cgroup/cgroupMounts.js";
import { DEFAULT_INTERVAL_MS, DEFAULT_MAX_TRACKED_PAGES } from "./pageCacheOptions.js";
import { startPageCacheSource, type PageCacheSource, type PageCacheSourceEvent } from "./pageCacheSource.js";
import { pageCacheTotals } from "./pageCacheTotals.js";
import { createTrackingCgroup, type TrackingCgroup } from "../../host/cgroup/trackingCgroup.js";

export interface PageCacheMeasurementOptions {
  /** Tracking group name; default measure-<pid>-<random>. */
  name?: string;
  /** Folder for the tracking group under the v2 root; default "offloadcage". */
  trackingParent?: string;
  intervalMs?: number;
  maxTrackedPages?: number;
  onEvent?: (e: PageCacheSourceEvent) => void;
}

/** The fields `cage measure --json` reports. */
export interface PageCacheFigures {
  pageCacheInsertedBytes: number;
  pageCacheResidentBytes: number;
  pageCachePeakResidentBytes: number;
  /** Insertions that did not fit the kernel map (their bytes are in inserted, not in resident). */
  pageCacheUntrackedInserts: number;
}

export interface PageCacheMeasurement {
  tracking: TrackingCgroup;
  source: PageCacheSource;
  /** argv that enters the tracking group and execs the command (same PID). */
  wrapCommand(argv: string[]): string[];
  /** Moves a running process into the tracking group (restored by stop()). */
  addPid(pid: number): void;
  /** Figures from the latest sample. */
  current(): PageCacheFigures;
  /** Waits for a sample taken after this call. */
  sample(): Promise<PageCacheFigures>;
  /** Takes a last sample, stops the collector, moves processes back out and removes the group. */
  stop(): Promise<PageCacheFigures>;
}

export async function startPageCacheMeasurement(opts: PageCacheMeasurementOptions = {}): Promise<PageCacheMeasurement> {
  const tracking = createTrackingCgroup(opts.name ?? `measure-${process.pid}-${randomBytes(3).toString("hex")}`, opts.trackingParent);
  let figures: PageCacheFigures = { pageCacheInsertedBytes: 0, pageCacheResidentBytes: 0, pageCachePeakResidentBytes: 0, pageCacheUntrackedInserts: 0 };
  const waiters: { afterNs: bigint; resolve: () => void }[] = [];
  const onBatch = (b: PageCacheBatch): void => {
    const t = pageCacheTotals(b);
    figures = {
      pageCacheInsertedBytes: t.insertedBytes,
      pageCacheResidentBytes: Math.max(0, t.residentBytes),
      pageCachePeakResidentBytes: Math.max(figures.pageCachePeakResidentBytes, t.residentBytes),
      pageCacheUntrackedInserts: b.untrackedInserts,
    };
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (b.sampledAtNs > waiters[i]!.afterNs) waiters.splice(i, 1)[0]!.resolve();
    }
  };
  let source: PageCacheSource;
  try {
    source = await startPageCacheSource({
      cgroupV2Path: tracking.path,
      intervalMs: opts.intervalMs ?? DEFAULT_INTERVAL_MS,
      maxTrackedPages: opts.maxTrackedPages ?? DEFAULT_MAX_TRACKED_PAGES,
      onBatch,
      onEvent: opts.onEvent,
    });
  } catch (err) {
    tracking.remove();
    throw err;
  }
  const sample = async (): Promise<PageCacheFigures> => {
    const afterNs = process.hrtime.bigint();
    await new Promise<void>((resolve) => waiters.push({ afterNs, resolve }));
    return figures;
  };
  return {
    tracking,
    source,
    wrapCommand: (argv) => enterCgroupsArgv([tracking.procsFile], argv),
    addPid: (pid) => tracking.addPid(pid),
    current: () => figures,
    sample,
    async stop(): Promise<PageCacheFigures> {
      try {
        // Bounded: a dead collector must not hang the measurement.
        await Promise.race([sample(), new Promise((r) => setTimeout(r, 3 * (opts.intervalMs ?? DEFAULT_INTERVAL_MS) + 2000))]);
        return figures;
      } finally {
        await source.stop();
        tracking.remove();
      }
    },
  };
}
