/**
 * Cross-check of the attributed page cache against the kernel's own memory accounting: the
 * workload runs in the tracking group AND in a memory cgroup of its own, whose charged page
 * cache (`cache` in v1 memory.stat, `file` in v2) is first-touch, like our attribution, and
 * uncharged on removal from the cache, like our eviction. The two should agree.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { PageCacheBatch } from "../../protocol/rawBatches.js";
import { enterCgroupsArgv, parseCgroupMounts, parseMemoryStat } from "../../host/cgroup/cgroupMounts.js";
import { DEFAULT_INTERVAL_MS, DEFAULT_MAX_TRACKED_PAGES } from "./pageCacheOptions.js";
import { startPageCacheSource, type PageCacheSource, type PageCacheSourceEvent } from "./pageCacheSource.js";
import { pageCacheTotals } from "./pageCacheTotals.js";
import { createTrackingCgroup, rmdirWithRetry, type TrackingCgroup } from "../../host/cgroup/trackingCgroup.js";

export interface MemoryAccountingGroup {
  kind: "v1" | "v2";
  path: string;
  procsFile: string;
  /** The memory.stat key holding charged page cache. */
  cacheKey: "cache" | "file";
  cachedBytes(): number;
  remove(): void;
}

/**
 * A memory cgroup for the workload: v1 `memory` when mounted (hybrid hosts), else the tracking
 * group itself with the v2 memory controller enabled (a task is in only one v2 group).
 */
export function createMemoryAccountingGroup(name: string, tracking: TrackingCgroup): MemoryAccountingGroup {
  const mounts = parseCgroupMounts(readFileSync("/proc/self/mountinfo", "utf8"));
  const v1 = mounts.v1.get("memory");
  if (v1 !== undefined) {
    const path = join(v1, name);
    mkdirSync(path);
    const stat = (): Map<string, number> => parseMemoryStat(readFileSync(join(path, "memory.stat"), "utf8"));
    return {
      kind: "v1",
      path,
      procsFile: join(path, "cgroup.procs"),
      cacheKey: "cache",
      cachedBytes: () => stat().get("cache") ?? 0,
      remove: () => removeV1MemoryGroup(path),
    };
  }
  if (mounts.v2 === null) throw new Error("memory cross-check: neither a v1 memory hierarchy nor cgroup2 is mounted");
  enableV2Memory(mounts.v2, tracking.path);
  const statFile = join(tracking.path, "memory.stat");
  if (!existsSync(statFile)) throw new Error(`memory cross-check: the v2 memory controller is not available at ${tracking.path}`);
  return {
    kind: "v2",
    path: tracking.path,
    procsFile: tracking.procsFile,
    cacheKey: "file",
    cachedBytes: () => parseMemoryStat(readFileSync(statFile, "utf8")).get("file") ?? 0,
    remove: () => undefined,
  };
}

function removeV1MemoryGroup(path: string): void {
  if (!existsSync(path)) return;
  // Reclaim its cache first so no offline memcg lingers holding charges (needs it empty of tasks).
  try {
    writeFileSync(join(path, "memory.force_empty"), "0");
  } catch {
    /* tasks still inside or already empty: rmdir decides */
  }
  rmdirWithRetry(path);
}

function enableV2Memory(root: string, groupPath: string): void {
  const parts = groupPath.slice(root.length).split("/").filter((p) => p !== "");
  // Every ancestor of the group, root first, must hand the memory controller down.
  for (let depth = 0; depth < parts.length; depth++) {
    const dir = join(root, ...parts.slice(0, depth));
    const controllers = readFileSync(join(dir, "cgroup.controllers"), "utf8").split(/\s+/);
    if (!controllers.includes("memory")) throw new Error(`memory cross-check: ${dir} has no memory controller`);
    writeFileSync(join(dir, "cgroup.subtree_control"), "+memory");
  }
}

export interface CrossCheckOptions {
  /** Names both groups (v2 tracking group and v1 memory group); [A-Za-z0-9._-]. */
  name: string;
  intervalMs?: number;
  maxTrackedPages?: number;
  /** Folder for the tracking group under the v2 root; default "offloadcage". */
  trackingParent?: string;
  onEvent?: (e: PageCacheSourceEvent) => void;
}

export interface CrossCheckComparison {
  /** Sum of residentBytes over every process in the tracking group. */
  attributedResidentBytes: number;
  attributedInsertedBytes: number;
  untrackedInserts: number;
  memcgCacheBytes: number;
  memcgKind: "v1" | "v2";
  memcgKey: "cache" | "file";
  /** attributed − memcg. */
  differenceBytes: number;
  /** differenceBytes / max(memcg, attributed), 0 when both are 0. */
  relativeDifference: number;
}

export interface MemoryCgroupCrossCheck {
  tracking: TrackingCgroup;
  memory: MemoryAccountingGroup;
  /** The command wrapped so it enters both groups before it runs. */
  argv(command: string[]): string[];
  /** Waits for a collector sample taken after this call, then reads memory.stat. */
  compare(): Promise<CrossCheckComparison>;
  latest(): PageCacheBatch | null;
  source: PageCacheSource;
  /** Stops the collector and removes both groups (processes still inside are moved out). */
  close(): Promise<void>;
}

export async function openMemoryCgroupCrossCheck(opts: CrossCheckOptions): Promise<MemoryCgroupCrossCheck> {
  const tracking = createTrackingCgroup(opts.name, opts.trackingParent);
  let memory: MemoryAccountingGroup | null = null;
  let latest: PageCacheBatch | null = null;
  const waiters: { afterNs: bigint; resolve: (b: PageCacheBatch) => void }[] = [];
  try {
    memory = createMemoryAccountingGroup(opts.name, tracking);
    const source = await startPageCacheSource({
      cgroupV2Path: tracking.path,
      intervalMs: opts.intervalMs ?? DEFAULT_INTERVAL_MS,
      maxTrackedPages: opts.maxTrackedPages ?? DEFAULT_MAX_TRACKED_PAGES,
      onEvent: opts.onEvent,
      onBatch: (b) => {
        latest = b;
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (b.sampledAtNs > waiters[i]!.afterNs) waiters.splice(i, 1)[0]!.resolve(b);
        }
      },
    });
    const mem = memory;
    const procsFiles = mem.procsFile === tracking.procsFile ? [tracking.procsFile] : [tracking.procsFile, mem.procsFile];
    return {
      tracking,
      memory: mem,
      source,
      argv: (command) => enterCgroupsArgv(procsFiles, command),
      latest: () => latest,
      async compare(): Promise<CrossCheckComparison> {
        const afterNs = process.hrtime.bigint();
        const batch = await new Promise<PageCacheBatch>((resolve) => waiters.push({ afterNs, resolve }));
        return compareBatchWithMemcg(batch, mem.cachedBytes(), mem);
      },
      async close(): Promise<void> {
        await source.stop();
        tracking.remove();
        mem.remove();
      },
    };
  } catch (err) {
    tracking.remove();
    memory?.remove();
    throw err;
  }
}

/** Pure: the comparison figures for one collector batch and one memory.stat reading. */
export function compareBatchWithMemcg(
  batch: PageCacheBatch,
  memcgCacheBytes: number,
  memcg: { kind: "v1" | "v2"; cacheKey: "cache" | "file" },
): CrossCheckComparison {
  const totals = pageCacheTotals(batch);
  const differenceBytes = totals.residentBytes - memcgCacheBytes;
  const scale = Math.max(memcgCacheBytes, totals.residentBytes);
  return {
    attributedResidentBytes: totals.residentBytes,
    attributedInsertedBytes: totals.insertedBytes,
    untrackedInserts: batch.untrackedInserts,
    memcgCacheBytes,
    memcgKind: memcg.kind,
    memcgKey: memcg.cacheKey,
    differenceBytes,
    relativeDifference: scale === 0 ? 0 : differenceBytes / scale,
  };
}

export interface VerifyOptions extends CrossCheckOptions {
  /** The workload: argv[0] and its arguments. */
  argv: string[];
  /** Allowed |relativeDifference|; default 0.02. */
  tolerance?: number;
  /** Differences up to this many bytes always agree (a few pages of binaries and metadata); default 1 MiB. */
  slackBytes?: number;
  stdio?: "inherit" | "ignore";
}

export interface VerifyResult {
  exitCode: number | null;
  signal: string | null;
  comparison: CrossCheckComparison;
  tolerance: number;
  agrees: boolean;
}

/**
 * Runs a command to completion inside a fresh tracking group and memory cgroup and compares
 * our resident figure with the memory cgroup's charged page cache (`cage measure --verify`).
 */
export async function verifyAgainstMemoryCgroup(opts: VerifyOptions): Promise<VerifyResult> {
  if (!Array.isArray(opts.argv) || opts.argv.length === 0) throw new Error("verifyAgainstMemoryCgroup: argv must name a command");
  const tolerance = opts.tolerance ?? 0.02;
  if (!(tolerance >= 0 && tolerance < 1)) throw new Error(`verifyAgainstMemoryCgroup: tolerance must be in [0, 1), got ${String(opts.tolerance)}`);
  const slackBytes = opts.slackBytes ?? 1 << 20;
  const check = await openMemoryCgroupCrossCheck(opts);
  try {
    const [cmd, ...args] = check.argv(opts.argv) as [string, ...string[]];
    const child = spawn(cmd, args, { stdio: opts.stdio ?? "inherit" });
    const [exitCode, signal] = await new Promise<[number | null, string | null]>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code, sig) => resolve([code, sig]));
    });
    const comparison = await check.compare();
    const agrees = Math.abs(comparison.differenceBytes) <= slackBytes || Math.abs(comparison.relativeDifference) <= tolerance;
    return { exitCode, signal, comparison, tolerance, agrees };
  } finally {
    await check.close();
  }
}
