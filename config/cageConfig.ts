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
  // CPU actuator knobs (issue 4): present only when the file gives them; actuators/cpu fills defaults.
  /** The VM's cap never goes below this, % of one CPU (default 10% of cap). */
  vmFloor?: number;
  /** The VM's cap never goes above this, % of one CPU (default cap). */
  vmCeiling?: number;
  /** The VM's cap while aggregates are stale (default vmCeiling). */
  failsafeCap?: number;
  /** How the VM is controlled; absent = derived from vm.kind. */
  backend?: CpuBackendSpec;
}

/** An explicit CPU back end for a cage's VM (docs/cpu-actuators.md). */
export type CpuBackendSpec = { kind: "cgroup"; path: string } | { kind: "virsh"; domain: string; uri: string | null };

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
  /** Actuator sections; present only when the file has `agent.actuators`. */
  actuators?: ActuatorsSpec;
}

// ---- CPU actuators (issue 4) ----
/** What every actuator section has. */
export interface ActuatorCommonSpec {
  dryRun: boolean;
  periodMs: number;
  staleAfterMs: number;
}

export interface CpuActuatorSpec extends ActuatorCommonSpec {
  /** CPU capacity the cage weights share, % of one CPU; null = online CPUs × 100. */
  hostCapacityPct: number | null;
  /** Cap changes smaller than this (points) are not applied. */
  minChangePct: number;
}

export interface LimiterActuatorSpec extends ActuatorCommonSpec {
  mode: "cgroup" | "sigstop";
  failsafe: "hold" | "release";
}

/** `agent.actuators`: a section that is null is absent (that actuator does not run). */
export interface ActuatorsSpec {
  cpu: CpuActuatorSpec | null;
  limiter: LimiterActuatorSpec | null;
}
// ---- end CPU actuators ----

export interface AgentConfig {
  agent: AgentSpec;
  cages: CageSpec[];
}
