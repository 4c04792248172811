/**
 * The validated, normalised cage configuration every process works from.
 * The file format is YAML or JSON checked against the schema (configSchema.ts, published as
 * docs/config.schema.json); these types are what loading produces: sizes in bytes, defaults filled in.
 * The CPU back ends' shapes are taken from the schema, so a new back end is declared once.
 */
import type { RawCpuBackend } from "./configSchema.js";

/** The CPU collector's programs: auto = the libbpf one if it is built and attaches, else bpftrace. */
export const CPU_PROGRAM_SETTINGS = ["auto", "libbpf", "bpftrace"] as const;
export type CpuProgramSetting = (typeof CPU_PROGRAM_SETTINGS)[number];

/**
 * Selects processes. Every field given must match (AND). With `descendants` (default true)
 * the matched processes' descendants belong too: an IDS that forks workers stays one IDS.
 */
export interface ProcessMatcher {
  pid?: number;
  /** Exact match on /proc/PID/comm (the kernel truncates it to 15 bytes). */
  comm?: string;
  /**
   * Owner: the process's real and effective UID must both be in this list (`uid` and `user`
   * of the file together, names already looked up in /etc/passwd).
   */
  uids?: number[];
  /** Exact match on the /proc/PID/exe link target (a " (deleted)" suffix ignored). */
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
  | { kind: "xen"; domain: string | number }
  /** A libvirt domain (name or UUID) on `uri` (default qemu:///system): host/libvirt/ follows its QEMU process. */
  | { kind: "libvirt"; domain: string; uri: string };

export interface CpuSpec {
  /** Cage cap, % of one CPU (200 = two CPUs). */
  cap: number;
  /** The IDS's own cap, % of one CPU, enforced by the IDS limiter. */
  idsCap: number | null;
  /** Relative weight among cages (scheduler share). */
  weight: number | null;
  // CPU actuator knobs: present only when the file gives them, because their defaults derive from cap (actuators/cpu).
  /** The VM's cap never goes below this, % of one CPU (default 10% of cap). */
  vmFloor?: number;
  /** The VM's cap never goes above this, % of one CPU (default cap). */
  vmCeiling?: number;
  /** The VM's cap while aggregates are stale (default vmCeiling). */
  failsafeCap?: number;
  /** How the VM is controlled; absent = derived from vm.kind. */
  backend?: CpuBackendSpec;
}

/**
 * An explicit CPU back end for a cage's VM (docs/cpu-actuators.md): a branch of the schema's
 * cpuBackend with every optional field present, null when not given.
 */
export type CpuBackendSpec = WithNulls<RawCpuBackend>;

type OptionalKeys<T> = { [K in keyof T]-?: Record<never, never> extends Pick<T, K> ? K : never }[keyof T];
/** Optional fields become required `| null`; distributes over a union of back ends. */
type WithNulls<T> = T extends unknown
  ? Flatten<{ [R in Exclude<keyof T, OptionalKeys<T>>]: T[R] } & { [O in OptionalKeys<T>]: Exclude<T[O], undefined> | null }>
  : never;
type Flatten<T> = { [K in keyof T]: T[K] };

export interface MemorySpec {
  /** The VM's memory when the IDS uses none. */
  baseBytes: number;
  /** The VM is never shrunk below this. */
  floorBytes: number;
  /** The VM's target while the cage's aggregates are stale (default: base). */
  failsafeBytes: number;
  /** How the balloon actuator reaches this VM. */
  balloon: CageBalloonSpec;
}

/**
 * The balloon back end of one cage. `auto` picks by vm.kind: qemu → qmp (vm.qmpSocket),
 * xen → xl, a VM with units.vm → systemd (MemoryHigh), cgroup → cgroup (vm.path); a process VM
 * needs `cgroup` (a memory cgroup it runs in) or units.vm.
 */
export interface CageBalloonSpec {
  backend: "auto" | "qmp" | "xl" | "virsh" | "cgroup" | "systemd";
  /** libvirt domain name for the virsh back end. */
  libvirtDomain: string | null;
  /** Memory cgroup of the VM for the cgroup back end (default: vm.path of a cgroup VM). */
  cgroup: string | null;
  /** cgroup v2 file the target is written to (v1 always uses memory.limit_in_bytes). */
  cgroupV2File: "memory.max" | "memory.high";
}

/** agent.actuators.balloon: present = `cage run` starts the balloon actuator. */
export interface BalloonActuatorSpec {
  dryRun: boolean;
  /** How often targets are recomputed and state is published. */
  periodMs: number;
  /** A cage whose last aggregate is older than this gets its fail-safe target. */
  staleAfterMs: number;
  /** How long the restore guardian (a second node process) may take to start before the actuator gives up. */
  guardianStartTimeoutMs: number;
  /** Largest change of a VM's target in one move. */
  maxStepBytes: number;
  /** Desired changes smaller than this are not applied (except to land on base or floor). */
  hysteresisBytes: number;
  /** At most one move per cage per this many ms (rate limit). */
  minMoveIntervalMs: number;
  /** A move against the direction of the previous one waits until this long after it (damps oscillation). */
  reverseHoldMs: number;
  /** Also recompute a cage's target on each of its aggregates, not only every periodMs. */
  actOnAggregate: boolean;
  /** A balloon that has not moved toward its target for this long is stuck. */
  stuckAfterMs: number;
  /** While stuck, a new target must differ from the stuck one by at least this to be pushed. */
  stuckRetargetBytes: number;
  /** |actual − target| within this counts as reached. */
  toleranceBytes: number;
  xlPath: string;
  virshPath: string;
  commandTimeoutMs: number;
  /** Xen: dom0's target is base + the memory the Xen cages gave up, at most max. null: dom0 untouched. */
  dom0: { baseBytes: number; maxBytes: number } | null;
}

/** systemd units a cage names: their own properties are set instead of moving their processes. */
export interface CageUnits {
  /** The IDS's unit (limiter: CPUQuota; page cache: its cgroup is tracked). */
  ids: string | null;
  /** The VM's unit (CPU actuator: CPUQuota, CPUWeight; balloon: MemoryHigh). */
  vm: string | null;
}

/** A Xen IDS-VM whose IDS processes are told apart by CR3: which domain, and who reports the CR3s. */
export interface IdsCr3Spec {
  /** The IDS-VM's domain, as its `vm.domain` (name or ID). */
  domain: string | number;
  /** The guest helper's reports in xenstore (host/xen/idsHelperEntries.ts). */
  from: "helper";
}

export interface CageSpec {
  name: string;
  vm: VmSpec;
  /** The IDS's processes (the file's `ids` entries that are matchers). */
  ids: ProcessMatcher[];
  /**
   * Whole IDS-VMs (the file's `ids` entries `{ vm: ... }`), in file order: all of such a VM's
   * host CPU is charged to the IDS and held at idsCap. Absent when the file names none.
   */
  idsVms?: VmSpec[];
  /**
   * The Xen IDS-VMs of idsVms (`ids[]: { vm: { kind: xen, … }, cr3From: helper }`) charged only for
   * the CR3s their guest helper reports (docs/xentrace.md); absent when the file names none.
   */
  idsCr3?: IdsCr3Spec[];
  cpu: CpuSpec;
  memory: MemorySpec | null;
  /** Absent when the file names no unit. */
  units?: CageUnits;
}

export interface AgentSpec {
  /** This host's name in exported series and points; null = the machine's hostname. */
  host: string | null;
  /** Directory for the ipc:// sockets (mode 0700). */
  runtimeDir: string | null;
  /** Directory for state that must survive the processes and a reboot: the history spool, the pipeline's sequence state, the actuators' recorded original settings. */
  stateDir: string;
  /** CPU collector window length. */
  cpuIntervalMs: number;
  /** Which eBPF program the CPU collector runs (collectors/cpu/cpuProgram.ts). */
  cpuProgram: CpuProgramSetting;
  /** /proc/PID/status sampling period. */
  memorySampleMs: number;
  /** Sampling period of just the IDS processes' /proc/PID/status; null = off (memorySampleMs only). */
  idsMemorySampleMs: number | null;
  /** How often matchers are re-resolved against /proc. */
  resolveMs: number;
  prometheus: { host: string; port: number } | null;
  otlp: { endpoint: string; intervalMs: number } | null;
  /** Page cache attribution for the IDS processes; null = off (no collector, no cgroup moves). */
  pageCache: { intervalMs: number; maxPages: number } | null;
  logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal";
  /** Actuator sections (agent.actuators.*); null = that actuator is not started by `cage run`. */
  actuators: ActuatorsSpec;
  /** InfluxDB history; null when off. */
  influx: InfluxSpec | null;
}

export interface ActuatorsSpec {
  balloon: BalloonActuatorSpec | null;
  /** The cage scheduler. */
  cpu: CpuActuatorSpec | null;
  /** The IDS limiter. */
  limiter: LimiterActuatorSpec | null;
  /** Third-party actuator processes `cage run` supervises (docs/protocol.md, External actuators). */
  external: ExternalActuatorSpec[];
}

/** agent.actuators.external[]: a third party's actuator, started and supervised like the built-in ones. */
export interface ExternalActuatorSpec {
  name: string;
  /** Absolute path, or a bare name looked up in PATH. */
  command: string;
  args: string[];
  env: Record<string, string>;
  stopTimeoutMs: number;
}

/** Where and how the pipeline writes history to InfluxDB 1.x (pipeline/influxWriter.ts). */
export interface InfluxSpec {
  /** HTTP API base URL, e.g. http://127.0.0.1:8086. */
  url: string;
  /** User for InfluxDB authentication; null = none. Set together with passwordFile. */
  username: string | null;
  /** File holding the user's password; null = none. */
  passwordFile: string | null;
  database: string;
  /** InfluxQL duration of the raw (default) retention policy, e.g. "7d". */
  retention: string;
  /** GROUP BY time() interval of the downsampling continuous queries, e.g. "1m". */
  downsampleEvery: string;
  /** InfluxQL duration of the downsampled retention policy (also holds actuator decisions). */
  downsampledRetention: string;
  batchPoints: number;
  flushMs: number;
  /** Points kept in the on-disk spool until InfluxDB has them; the oldest are dropped beyond this. */
  bufferPoints: number;
  /** Bytes of spooled records kept; the oldest are dropped beyond this. */
  bufferBytes: number;
  /** Spooled records are fsynced at least this often (and at every segment roll). */
  fsyncMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  timeoutMs: number;
}

/** What every actuator section has. */
export interface ActuatorCommonSpec {
  dryRun: boolean;
  periodMs: number;
  staleAfterMs: number;
  /** How long the restore guardian (a second node process) may take to start before the actuator gives up. */
  guardianStartTimeoutMs: number;
}

export interface CpuActuatorSpec extends ActuatorCommonSpec {
  /** CPU capacity the cage weights share, % of one CPU; null = online CPUs × 100. */
  hostCapacityPct: number | null;
  /** Cap changes smaller than this (points) are not applied. */
  minChangePct: number;
  /** The VM's cap leaves room for the IDS's peak CPU over this span, ms (0: the last period only). */
  idsHoldMs: number;
  /** Also act on each of a cage's aggregates, not only every periodMs. */
  actOnAggregate: boolean;
}

export interface LimiterActuatorSpec extends ActuatorCommonSpec {
  mode: "cgroup" | "sigstop";
  failsafe: "hold" | "release";
}

export interface AgentConfig {
  agent: AgentSpec;
  cages: CageSpec[];
}
