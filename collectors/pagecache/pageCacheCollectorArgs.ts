/** Command line of the page cache collector process (pure: parsing and checks only). */
import { DEFAULT_INTERVAL_MS, DEFAULT_MAX_TRACKED_PAGES, MAX_TRACKED_PAGES_LIMIT } from "./pageCacheOptions.js";

export const PAGE_CACHE_COLLECTOR_USAGE =
  "usage: collector-pagecache --cgroup /sys/fs/cgroup/unified/PATH --endpoint ipc://PATH|tcp://HOST:PORT [--interval-ms N] [--max-pages N] [--create-cgroup] [--status-ms N]";

export interface PageCacheCollectorArgs {
  cgroupV2Path: string;
  endpoint: string;
  intervalMs: number;
  maxTrackedPages: number;
  /** Create the cgroup directory if it does not exist (it is left in place at exit: tasks may be in it). */
  createCgroup: boolean;
  /** How often a CollectorStatus with the counters is published. */
  statusMs: number;
}

export class PageCacheCollectorArgsError extends Error {
  override readonly name = "PageCacheCollectorArgsError";
}

const VALUED = ["--cgroup", "--endpoint", "--interval-ms", "--max-pages", "--status-ms"] as const;
const SWITCHES = ["--create-cgroup"] as const;

export function parsePageCacheCollectorArgs(argv: readonly string[]): PageCacheCollectorArgs {
  const values = new Map<string, string>();
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if ((SWITCHES as readonly string[]).includes(name) && eq < 0) {
      switches.add(name);
      continue;
    }
    if (!(VALUED as readonly string[]).includes(name)) {
      throw new PageCacheCollectorArgsError(`collector-pagecache: unknown argument ${JSON.stringify(arg)}`);
    }
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith("--")) throw new PageCacheCollectorArgsError(`collector-pagecache: ${name} needs a value`);
      i++;
    }
    if (value === "") throw new PageCacheCollectorArgsError(`collector-pagecache: ${name} must not be empty`);
    if (values.has(name)) throw new PageCacheCollectorArgsError(`collector-pagecache: ${name} given twice`);
    values.set(name, value);
  }
  const cgroupV2Path = values.get("--cgroup");
  if (cgroupV2Path === undefined) throw new PageCacheCollectorArgsError("collector-pagecache: --cgroup PATH is required");
  if (!cgroupV2Path.startsWith("/")) {
    throw new PageCacheCollectorArgsError(`collector-pagecache: --cgroup must be an absolute path, got ${JSON.stringify(cgroupV2Path)}`);
  }
  const endpoint = values.get("--endpoint");
  if (endpoint === undefined) throw new PageCacheCollectorArgsError("collector-pagecache: --endpoint is required");
  if (!/^(ipc:\/\/\/.+|tcp:\/\/.+:[0-9]+)$/.test(endpoint)) {
    throw new PageCacheCollectorArgsError(`collector-pagecache: --endpoint must be ipc:///absolute/path or tcp://HOST:PORT, got ${JSON.stringify(endpoint)}`);
  }
  return {
    cgroupV2Path,
    endpoint,
    intervalMs: integerArg(values, "--interval-ms", 10, 60_000) ?? DEFAULT_INTERVAL_MS,
    maxTrackedPages: integerArg(values, "--max-pages", 1, MAX_TRACKED_PAGES_LIMIT) ?? DEFAULT_MAX_TRACKED_PAGES,
    createCgroup: switches.has("--create-cgroup"),
    statusMs: integerArg(values, "--status-ms", 100, 3_600_000) ?? 5000,
  };
}

function integerArg(values: Map<string, string>, flag: string, min: number, max: number): number | undefined {
  const text = values.get(flag);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || n < min || n > max) {
    throw new PageCacheCollectorArgsError(`collector-pagecache: ${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return n;
}
