/**
 * Options of the page cache collector, validated at the edge, and the bpftrace command line
 * they turn into. Pure: no I/O.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface PageCacheCollectorOptions {
  /** Absolute path of the cgroup v2 group whose tasks are tracked, e.g. /sys/fs/cgroup/unified/offloadcage/tracked. */
  cgroupV2Path: string;
  /** More cgroup v2 groups tracked as well (one per cage on a v2-only host: each cage's IDS group). */
  extraCgroupV2Paths?: readonly string[];
  /** How often bpftrace prints the cumulative maps. */
  intervalMs: number;
  /** Size of the kernel maps (BPFTRACE_MAP_KEYS_MAX): folios owned at once, and also PIDs. */
  maxTrackedPages: number;
}

export const DEFAULT_INTERVAL_MS = 1000;
/** 2^18 folios: 1 GiB of 4 KiB pages, far more with large folios; the maps take ~100 MB of kernel memory. */
export const DEFAULT_MAX_TRACKED_PAGES = 262_144;
export const MAX_TRACKED_PAGES_LIMIT = 16_777_216;

/** bpf/pageCache.bt, found from this module's place in src or dist. */
export function defaultScriptPath(): string {
  const here = fileURLToPath(new URL(".", import.meta.url));
  // src: collectors/pagecache/ ; dist: dist/collectors/pagecache/
  const up = here.includes("/dist/") ? "../../../bpf/pageCache.bt" : "../../bpf/pageCache.bt";
  return fileURLToPath(new URL(up, import.meta.url));
}

/** Throws with an exact message on the first bad option. */
export function validatePageCacheOptions(opts: PageCacheCollectorOptions): void {
  for (const path of [opts.cgroupV2Path, ...(opts.extraCgroupV2Paths ?? [])]) {
    if (typeof path !== "string" || !path.startsWith("/")) {
      throw new Error(`page cache collector: cgroupV2Path must be an absolute path, got ${JSON.stringify(path)}`);
    }
    // The path reaches bpftrace as a string (a positional parameter or a literal); keep it to plain path characters.
    if (!/^\/[A-Za-z0-9._/@:+-]*$/.test(path) || path.split("/").includes("..")) {
      throw new Error(`page cache collector: cgroupV2Path may hold only letters, digits and . _ / @ : + - (no ..), got ${JSON.stringify(path)}`);
    }
  }
  if (!Number.isInteger(opts.intervalMs) || opts.intervalMs < 10 || opts.intervalMs > 60_000) {
    throw new Error(`page cache collector: intervalMs must be an integer from 10 to 60000, got ${String(opts.intervalMs)}`);
  }
  if (!Number.isInteger(opts.maxTrackedPages) || opts.maxTrackedPages < 1 || opts.maxTrackedPages > MAX_TRACKED_PAGES_LIMIT) {
    throw new Error(`page cache collector: maxTrackedPages must be an integer from 1 to ${MAX_TRACKED_PAGES_LIMIT}, got ${String(opts.maxTrackedPages)}`);
  }
}

export interface BpftraceInvocation {
  command: string;
  args: string[];
  env: Record<string, string>;
}

export function pageCacheInvocation(
  opts: PageCacheCollectorOptions,
  pageSize: number,
  scriptPath = defaultScriptPath(),
  bpftrace = "bpftrace",
): BpftraceInvocation {
  validatePageCacheOptions(opts);
  if (!Number.isInteger(pageSize) || pageSize < 4096 || (pageSize & (pageSize - 1)) !== 0) {
    throw new Error(`page cache collector: page size must be a power of two >= 4096, got ${String(pageSize)}`);
  }
  const extra = opts.extraCgroupV2Paths ?? [];
  // Several groups: the script's one-group filter becomes an OR over their ids, run with -e.
  const program = extra.length === 0 ? [scriptPath] : ["-e", multiGroupProgram(readFileSync(scriptPath, "utf8"), extra)];
  return {
    command: bpftrace,
    args: ["-f", "json", ...program, opts.cgroupV2Path, String(opts.intervalMs), String(pageSize)],
    env: {
      BPFTRACE_MAP_KEYS_MAX: String(opts.maxTrackedPages),
      // Prints only at each interval; a few pages per CPU is plenty, more only costs memory.
      BPFTRACE_PERF_RB_PAGES: "64",
    },
  };
}

/** The filter of bpf/pageCache.bt: tasks in exactly the group $1. */
export const ONE_GROUP_FILTER = "/cgroup == cgroupid(str($1))/";

/** The script with its filter widened to $1 or any of `extra` (validated paths: no quote can occur). */
export function multiGroupProgram(script: string, extra: readonly string[]): string {
  if (!script.includes(ONE_GROUP_FILTER)) throw new Error(`page cache collector: the bpftrace script has no ${ONE_GROUP_FILTER} filter to widen`);
  const terms = ["cgroup == cgroupid(str($1))", ...extra.map((p) => `cgroup == cgroupid("${p}")`)];
  return script.replace(ONE_GROUP_FILTER, `/${terms.join(" || ")}/`);
}
