/** Command line of the page cache collector process (pure: parsing and checks only). */
import { integerFlag, readFlags, requireEndpoint } from "../../runtime/processFlags.js";
import { DEFAULT_INTERVAL_MS, DEFAULT_MAX_TRACKED_PAGES, MAX_TRACKED_PAGES_LIMIT } from "./pageCacheOptions.js";

export const PAGE_CACHE_COLLECTOR_USAGE =
  "usage: collector-pagecache (--cgroup /sys/fs/cgroup/unified/PATH | --config FILE) --endpoint ipc://PATH|tcp://HOST:PORT [--interval-ms N] [--max-pages N] [--create-cgroup] [--status-ms N]";

export interface PageCacheCollectorArgs {
  /** The group to track; null with --config: the agent's own `<v2 root>/offloadcage/ids`. */
  cgroupV2Path: string | null;
  /** With a cage file the collector also moves the cages' IDS processes into the group, every resolveMs. */
  configPath: string | null;
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

const PROGRAM = "collector-pagecache";

function fail(message: string): never {
  throw new PageCacheCollectorArgsError(message);
}

export function parsePageCacheCollectorArgs(argv: readonly string[]): PageCacheCollectorArgs {
  const flags = readFlags(
    argv,
    { program: PROGRAM, valued: ["--cgroup", "--config", "--endpoint", "--interval-ms", "--max-pages", "--status-ms"], switches: ["--create-cgroup"] },
    fail,
  );
  const cgroupV2Path = flags.values.get("--cgroup") ?? null;
  const configPath = flags.values.get("--config") ?? null;
  if (cgroupV2Path === null && configPath === null) fail(`${PROGRAM}: --cgroup PATH or --config FILE is required`);
  if (cgroupV2Path !== null && !cgroupV2Path.startsWith("/")) fail(`${PROGRAM}: --cgroup must be an absolute path, got ${JSON.stringify(cgroupV2Path)}`);
  const endpoint = requireEndpoint(flags, PROGRAM, fail);
  return {
    cgroupV2Path,
    configPath,
    endpoint,
    intervalMs: integerFlag(flags, "--interval-ms", { program: PROGRAM, min: 10, max: 60_000 }, fail) ?? DEFAULT_INTERVAL_MS,
    maxTrackedPages: integerFlag(flags, "--max-pages", { program: PROGRAM, min: 1, max: MAX_TRACKED_PAGES_LIMIT }, fail) ?? DEFAULT_MAX_TRACKED_PAGES,
    createCgroup: flags.switches.has("--create-cgroup"),
    statusMs: integerFlag(flags, "--status-ms", { program: PROGRAM, min: 100, max: 3_600_000 }, fail) ?? 5000,
  };
}
