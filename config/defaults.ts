/**
 * Every default value of the cage file, in one place. Loading fills these in (normalise.ts); the
 * schema's descriptions and the actuators' fallbacks read them from here.
 */
import type { AgentSpec, BalloonActuatorSpec, CageBalloonSpec, CpuActuatorSpec, InfluxSpec, LimiterActuatorSpec } from "./cageConfig.js";

const MiB = 1024 * 1024;

export const DEFAULT_PROMETHEUS = Object.freeze({ host: "127.0.0.1", port: 9464 });
export const DEFAULT_OTLP = Object.freeze({ endpoint: "http://127.0.0.1:4318/v1/metrics", intervalMs: 5000 });
export const DEFAULT_PAGE_CACHE = Object.freeze({ intervalMs: 1000, maxPages: 262_144 });

export const DEFAULT_AGENT: Readonly<AgentSpec> = Object.freeze({
  host: null,
  runtimeDir: null,
  stateDir: "/var/lib/offloadcage",
  cpuIntervalMs: 100,
  cpuProgram: "auto",
  memorySampleMs: 1000,
  idsMemorySampleMs: 50,
  resolveMs: 500,
  prometheus: { ...DEFAULT_PROMETHEUS },
  otlp: null,
  pageCache: null,
  logLevel: "info",
  actuators: { balloon: null, cpu: null, limiter: null, external: [] },
  influx: null,
});

/** An external actuator's time to restore and exit after SIGTERM, like the built-in actuators'. */
export const DEFAULT_EXTERNAL_ACTUATOR_STOP_TIMEOUT_MS = 10_000;

/** A matcher also selects the descendants of what it matches: an IDS that forks workers stays one IDS. */
export const DEFAULT_DESCENDANTS = true;

/** A cage memory section's balloon knobs when none are given. */
export const DEFAULT_CAGE_BALLOON: Readonly<CageBalloonSpec> = Object.freeze({
  backend: "auto",
  libvirtDomain: null,
  cgroup: null,
  cgroupV2File: "memory.max",
});

/** Node starts in well under a second on a normal host; a loaded or emulated one (the Xen lab's dom0) takes tens of seconds. */
export const DEFAULT_GUARDIAN_START_TIMEOUT_MS = 60_000;

/** Defaults of agent.actuators.balloon (docs/config.md, docs/balloon.md say why). */
export const DEFAULT_BALLOON_ACTUATOR: Readonly<BalloonActuatorSpec> = Object.freeze({
  dryRun: false,
  periodMs: 500,
  staleAfterMs: 5000,
  guardianStartTimeoutMs: DEFAULT_GUARDIAN_START_TIMEOUT_MS,
  maxStepBytes: 256 * MiB,
  hysteresisBytes: 2 * MiB,
  minMoveIntervalMs: 0,
  reverseHoldMs: 100,
  actOnAggregate: true,
  stuckAfterMs: 10_000,
  stuckRetargetBytes: 64 * MiB,
  toleranceBytes: 1 * MiB,
  xlPath: "xl",
  virshPath: "virsh",
  commandTimeoutMs: 10_000,
  dom0: null,
});

/** Defaults shared by the CPU actuator and the limiter (docs/config.md, docs/cpu-actuators.md). */
export const DEFAULT_ACTUATOR_PERIOD_MS = 100;
export const DEFAULT_ACTUATOR_STALE_AFTER_MS = 1000;
/** A cage's default cpu.vmFloor as a fraction of its cap (the VM is never starved to zero). */
export const DEFAULT_VM_FLOOR_FRACTION = 0.1;

const DEFAULT_ACTUATOR_COMMON = Object.freeze({
  dryRun: false,
  periodMs: DEFAULT_ACTUATOR_PERIOD_MS,
  staleAfterMs: DEFAULT_ACTUATOR_STALE_AFTER_MS,
  guardianStartTimeoutMs: DEFAULT_GUARDIAN_START_TIMEOUT_MS,
});

export const DEFAULT_CPU_ACTUATOR: Readonly<CpuActuatorSpec> = Object.freeze({
  ...DEFAULT_ACTUATOR_COMMON,
  hostCapacityPct: null,
  minChangePct: 1,
  idsHoldMs: 0,
  // The cap follows the window that shows an IDS change; the integral's gain is per period of data, not per action.
  actOnAggregate: true,
});

export const DEFAULT_LIMITER_ACTUATOR: Readonly<LimiterActuatorSpec> = Object.freeze({
  ...DEFAULT_ACTUATOR_COMMON,
  mode: "cgroup",
  failsafe: "hold",
});

/** The CPU actuator's settings when the config has no `agent.actuators.cpu` section. */
export function defaultCpuActuatorSpec(): CpuActuatorSpec {
  return { ...DEFAULT_CPU_ACTUATOR };
}

/** The limiter's settings when the config has no `agent.actuators.limiter` section. */
export function defaultLimiterActuatorSpec(): LimiterActuatorSpec {
  return { ...DEFAULT_LIMITER_ACTUATOR };
}

export const DEFAULT_INFLUX: Readonly<InfluxSpec> = Object.freeze({
  url: "http://127.0.0.1:8086",
  username: null,
  passwordFile: null,
  database: "offloadcage",
  retention: "7d",
  downsampleEvery: "1m",
  downsampledRetention: "90d",
  batchPoints: 1000,
  flushMs: 1000,
  bufferPoints: 200_000,
  bufferBytes: 256 * MiB,
  fsyncMs: 1000,
  retryMinMs: 250,
  retryMaxMs: 10_000,
  timeoutMs: 10_000,
});

/** vm.kind libvirt without a uri: the system QEMU driver, as virsh itself would pick as root. */
export const DEFAULT_LIBVIRT_URI = "qemu:///system";
