/**
 * The validated, normalised cage configuration every process works from.
 * The file format is YAML or JSON checked against docs/config.schema.json (loadConfig.ts);
 * these types are what loading produces: sizes in bytes, defaults filled in.
 */

/**
 * Selects processes. Every field given must match (AND). With `descendants` (default true)
 * the matched processes' descendants belong too: an IDS that forks workers stays one IDS.
 */
export interface ProcessMatcher {
  pid?: number;
  /** Exact match on /proc/PID/comm (the kernel truncates it to 15 bytes). */
  comm?: string;
  /** Exact match on the /proc/PID/exe link target. */
  exe?: string;
  /** JavaScript regular expression tested against /proc/PID/cmdline joined with spaces. */
  cmdline?: string;
  /** A cgroup directory (v1 or v2, absolute path under /sys/fs/cgroup); its member processes match. */
  cgroup?: string;
  descendants: boolean;
}

export type VmSpec =
  | { kind: "process"; match: ProcessMatcher[] }
  | { kind: "cgroup"; path: string }
  | { kind: "qemu"; match: ProcessMatcher[]; qmpSocket: string }
  | { kind: "xen"; domain: string | number };

export interface CpuSpec {
  /** Cage cap, % of one CPU (200 = two CPUs). */
  cap: number;
  /** The IDS's own cap, % of one CPU, enforced by the IDS limiter. */
  idsCap: number | null;
  /** Relative weight among cages (scheduler share). */
  weight: number | null;
}

export interface MemorySpec {
  /** The VM's memory when the IDS uses none. */
  baseBytes: number;
  /** The VM is never shrunk below this. */
  floorBytes: number;
}

export interface CageSpec {
  name: string;
  vm: VmSpec;
  ids: ProcessMatcher[];
  cpu: CpuSpec;
  memory: MemorySpec | null;
}

export interface AgentSpec {
  /** Directory for the ipc:// sockets (mode 0700). */
  runtimeDir: string | null;
  /** bpftrace summary interval. */
  cpuIntervalMs: number;
  /** /proc/PID/status sampling period. */
  memorySampleMs: number;
  /** How often matchers are re-resolved against /proc. */
  resolveMs: number;
  prometheus: { host: string; port: number } | null;
  otlp: { endpoint: string; intervalMs: number } | null;
  logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal";
  /** InfluxDB history; null when off. */
  influx: InfluxSpec | null;
}

// --- agent.influx (issue 7: history) ---------------------------------------------------------

/** Where and how the pipeline writes history to InfluxDB 1.x (pipeline/influxWriter.ts). */
export interface InfluxSpec {
  /** HTTP API base URL, e.g. http://127.0.0.1:8086. */
  url: string;
  database: string;
  /** InfluxQL duration of the raw (default) retention policy, e.g. "7d". */
  retention: string;
  /** GROUP BY time() interval of the downsampling continuous queries, e.g. "1m". */
  downsampleEvery: string;
  /** InfluxQL duration of the downsampled retention policy (also holds actuator decisions). */
  downsampledRetention: string;
  batchPoints: number;
  flushMs: number;
  /** Points kept while InfluxDB is unreachable; the oldest are dropped beyond this. */
  bufferPoints: number;
  retryMinMs: number;
  retryMaxMs: number;
  timeoutMs: number;
}

export interface AgentConfig {
  agent: AgentSpec;
  cages: CageSpec[];
}
