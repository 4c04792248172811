/** Command line of the page cache collector process (pure: parsing and checks only). */
import { commandUsage, ENDPOINT_FORMAT, parseCommandLine } from "../../runtime/commandLine.js";
import { UsageError } from "../../runtime/usageError.js";
import { DEFAULT_INTERVAL_MS, DEFAULT_MAX_TRACKED_PAGES, MAX_TRACKED_PAGES_LIMIT } from "./pageCacheOptions.js";

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

export const PAGE_CACHE_COLLECTOR_COMMAND = {
  program: "cage collector pagecache",
  summary: "Publish the page cache a cgroup v2 group's tasks insert and evict (eBPF filemap) as raw.pagecache batches.",
  flags: {
    cgroup: { type: "string", value: "PATH", help: "the cgroup v2 group to track, absolute (/sys/fs/cgroup/unified/...)" },
    config: { type: "string", value: "FILE", help: "the cage file: track <v2 root>/offloadcage/ids and move the IDS processes into it" },
    endpoint: { type: "string", value: "EP", format: ENDPOINT_FORMAT, required: true, help: "where to bind the PUB socket" },
    "interval-ms": { type: "integer", value: "N", min: 10, max: 60_000, help: `window length, ms (default ${DEFAULT_INTERVAL_MS})` },
    "max-pages": { type: "integer", value: "N", min: 1, max: MAX_TRACKED_PAGES_LIMIT, help: `pages tracked at most (default ${DEFAULT_MAX_TRACKED_PAGES})` },
    "create-cgroup": { type: "boolean", help: "create the --cgroup group when it does not exist" },
    "status-ms": { type: "integer", value: "N", min: 100, max: 3_600_000, help: "status period, ms (default 5000)" },
  },
  notes: ["One of --cgroup and --config is required."],
} as const;

export const PAGE_CACHE_COLLECTOR_USAGE = commandUsage(PAGE_CACHE_COLLECTOR_COMMAND);

/** Throws runtime/usageError.ts's UsageError, or HelpRequested for --help. */
export function parsePageCacheCollectorArgs(argv: readonly string[]): PageCacheCollectorArgs {
  const { values } = parseCommandLine(PAGE_CACHE_COLLECTOR_COMMAND, argv);
  const program = PAGE_CACHE_COLLECTOR_COMMAND.program;
  const cgroupV2Path = values.cgroup ?? null;
  const configPath = values.config ?? null;
  if (cgroupV2Path === null && configPath === null) throw new UsageError(`${program}: --cgroup PATH or --config FILE is required`, PAGE_CACHE_COLLECTOR_USAGE);
  if (cgroupV2Path !== null && !cgroupV2Path.startsWith("/")) {
    throw new UsageError(`${program}: --cgroup must be an absolute path, got ${JSON.stringify(cgroupV2Path)}`, PAGE_CACHE_COLLECTOR_USAGE);
  }
  return {
    cgroupV2Path,
    configPath,
    endpoint: values.endpoint,
    intervalMs: values["interval-ms"] ?? DEFAULT_INTERVAL_MS,
    maxTrackedPages: values["max-pages"] ?? DEFAULT_MAX_TRACKED_PAGES,
    createCgroup: values["create-cgroup"],
    statusMs: values["status-ms"] ?? 5000,
  };
}
