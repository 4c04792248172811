/**
 * v2 lab: what a scenario is (the spec the host sends into the guest), what the guest reports, and
 * the checks on it. Pure: no I/O, unit-tested in test/lab/v2/labScenario.test.ts. The console
 * markers and the 1 s window compliance are the Xen lab's (lab/xen/labScenario.ts), shared.
 */
import { capCompliance, type CageWindow, type CapCompliance } from "../xen/labScenario.js";

/**
 * What one boot does in the guest, in order. `smoke` (alone): systemd is PID 1, only cgroup2 is
 * mounted, node and bpftrace run. `service`: `cage install`, `systemctl start`, metrics served,
 * `kill -9` of the main process and systemd's restart, `systemctl stop`, `cage uninstall`, and what
 * is left of ours. `cage`: the agent with the limiter (cgroup mode), the CPU actuator, page-cache
 * attribution and the cgroup balloon back end, all at once, on the VM and IDS units.
 */
export type V2Phase = "smoke" | "service" | "cage";
export const V2_PHASES: readonly V2Phase[] = ["smoke", "service", "cage"];

export interface V2ScenarioSpec {
  phases: V2Phase[];
  /** The cage's CPU cap, % of one CPU: VM + IDS together. */
  capPct: number;
  /** The IDS's own cap (`cpu.idsCap`), enforced by the limiter in cgroup mode. */
  idsCapPct: number;
  /** 1 s windows recorded in the cage phase once the actuators run. */
  durationS: number;
  /** The VM workload's anonymous memory, MiB (also the cage's memory base is derived from it). */
  vmMemMiB: number;
}

/** Throws with an exact message naming the field when the spec cannot be run. */
export function validateV2Spec(s: V2ScenarioSpec): void {
  const where = "v2 lab scenario";
  if (!Array.isArray(s.phases) || s.phases.length === 0 || !s.phases.every((p) => V2_PHASES.includes(p))) {
    throw new Error(`${where}: phases must be a non-empty list of ${V2_PHASES.join(", ")}, got ${JSON.stringify(s.phases)}`);
  }
  if (s.phases.includes("smoke") && s.phases.length > 1) throw new Error(`${where}: smoke runs alone, got ${JSON.stringify(s.phases)}`);
  if (new Set(s.phases).size !== s.phases.length) throw new Error(`${where}: a phase is listed twice in ${JSON.stringify(s.phases)}`);
  if (!(Number.isFinite(s.capPct) && s.capPct > 0 && s.capPct <= 200)) throw new Error(`${where}: capPct must be in (0, 200], got ${JSON.stringify(s.capPct)}`);
  if (!(Number.isFinite(s.idsCapPct) && s.idsCapPct > 0 && s.idsCapPct < s.capPct)) throw new Error(`${where}: idsCapPct must be in (0, capPct), got ${JSON.stringify(s.idsCapPct)}`);
  if (!(Number.isInteger(s.durationS) && s.durationS >= 3 && s.durationS <= 600)) throw new Error(`${where}: durationS must be an integer 3..600, got ${JSON.stringify(s.durationS)}`);
  if (!(Number.isInteger(s.vmMemMiB) && s.vmMemMiB >= 16 && s.vmMemMiB <= 1024)) throw new Error(`${where}: vmMemMiB must be an integer 16..1024, got ${JSON.stringify(s.vmMemMiB)}`);
}

/** What the smoke phase found in the guest. */
export interface SmokeFacts {
  /** /proc/1/comm. */
  pid1Comm: string;
  /** `systemctl is-system-running` (running or degraded once the boot is done). */
  systemState: string;
  /** Lines of /proc/self/mounts whose type is cgroup or cgroup2. */
  cgroupMounts: string[];
  /** /sys/fs/cgroup/cgroup.controllers. */
  controllers: string;
  /** `node -e` printed this (process.version). */
  nodeVersion: string;
  /** bpftrace counted this many sched_switch events in its second. */
  bpftraceEvents: number;
  /** Failed units (`systemctl --failed`), one per line. */
  failedUnits: string[];
}

export interface Check {
  ok: boolean;
  problems: string[];
}

/** The smoke bar: systemd PID 1, booted (not starting/stopping), cgroup2 alone with cpu and memory, node and bpftrace work. */
export function checkSmoke(f: SmokeFacts): Check {
  const problems: string[] = [];
  if (f.pid1Comm !== "systemd") problems.push(`PID 1 is ${JSON.stringify(f.pid1Comm)}, not systemd`);
  if (!["running", "degraded"].includes(f.systemState)) problems.push(`systemctl is-system-running says ${JSON.stringify(f.systemState)}`);
  const v1 = f.cgroupMounts.filter((l) => l.split(" ")[2] !== "cgroup2");
  if (v1.length > 0) problems.push(`cgroup v1 is mounted: ${v1.join("; ")}`);
  if (!f.cgroupMounts.some((l) => l.split(" ")[1] === "/sys/fs/cgroup" && l.split(" ")[2] === "cgroup2")) problems.push("cgroup2 is not mounted at /sys/fs/cgroup");
  for (const c of ["cpu", "memory"]) if (!f.controllers.split(/\s+/).includes(c)) problems.push(`controller ${c} missing from /sys/fs/cgroup/cgroup.controllers (${JSON.stringify(f.controllers)})`);
  if (!/^v\d+\./.test(f.nodeVersion)) problems.push(`node -e printed ${JSON.stringify(f.nodeVersion)}, not a version`);
  if (!(f.bpftraceEvents > 0)) problems.push(`bpftrace counted ${f.bpftraceEvents} sched_switch events`);
  return { ok: problems.length === 0, problems };
}

/** Our traces on the machine after `systemctl stop` and `cage uninstall` (what the service phase lists). */
export interface Leftovers {
  /** cgroup directories whose path names offloadcage. */
  cgroups: string[];
  /** Processes whose command line names the agent (cage.js, bpftrace programs of ours). */
  processes: string[];
  /** Files install put down that are still there. */
  files: string[];
  /** `systemctl show offloadcage.service` LoadState (not-found once uninstalled). */
  unitLoadState: string;
  /** Runtime drop-ins (`/run/systemd/system.control/*`) that still set a value: "FILE: KEY=VALUE". */
  runtimeProperties: string[];
  /**
   * Runtime drop-ins whose every assignment is empty (the property reset to its default): what
   * systemd keeps after `set-property --runtime UNIT CPUQuota=`. They set nothing, live in /run,
   * and removing them would take a daemon-reload of every unit on the host; recorded, not a failure.
   */
  resetDropIns: string[];
  /** Processes left in state T (stopped). */
  stoppedProcesses: string[];
}

/** The KEY=VALUE lines of a systemd drop-in (sections and comments skipped). */
export function dropInAssignments(text: string): { key: string; value: string }[] {
  return text.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith(";") && !l.startsWith("[")).map((l) => {
    const eq = l.indexOf("=");
    return eq < 0 ? { key: l, value: "" } : { key: l.slice(0, eq).trim(), value: l.slice(eq + 1).trim() };
  });
}

export function checkLeftovers(l: Leftovers): Check {
  const problems: string[] = [];
  const list = (what: string, xs: string[]): void => {
    if (xs.length > 0) problems.push(`${what} left: ${xs.join(", ")}`);
  };
  list("cgroups", l.cgroups);
  list("processes", l.processes);
  list("files", l.files);
  list("runtime properties", l.runtimeProperties);
  list("stopped processes", l.stoppedProcesses);
  if (l.unitLoadState !== "not-found") problems.push(`offloadcage.service LoadState is ${JSON.stringify(l.unitLoadState)}, not not-found`);
  return { ok: problems.length === 0, problems };
}

/** What the guest saw around `kill -9` of the agent's main process. */
export interface RestartFacts {
  mainPidBefore: number;
  mainPidAfter: number;
  nRestartsBefore: number;
  nRestartsAfter: number;
  /** The IDS's processes seen in state T while the agent was down or restarting (pid:comm). */
  idsStoppedWhileDown: string[];
  /** The IDS cgroup's cpu.max samples while the agent was down ("max 100000" = no cap). */
  idsCpuMaxWhileDown: string[];
  /** Metrics answered by the restarted agent (HTTP status). */
  metricsStatusAfter: number;
}

export function checkRestart(r: RestartFacts): Check {
  const problems: string[] = [];
  if (!(r.mainPidBefore > 0)) problems.push(`no MainPID before the kill (${r.mainPidBefore})`);
  if (!(r.mainPidAfter > 0) || r.mainPidAfter === r.mainPidBefore) problems.push(`MainPID ${r.mainPidBefore} → ${r.mainPidAfter}: not restarted`);
  if (r.nRestartsAfter !== r.nRestartsBefore + 1) problems.push(`NRestarts ${r.nRestartsBefore} → ${r.nRestartsAfter}, expected one more`);
  if (r.idsStoppedWhileDown.length > 0) problems.push(`IDS processes left stopped while the agent was down: ${r.idsStoppedWhileDown.join(", ")}`);
  if (r.metricsStatusAfter !== 200) problems.push(`the restarted agent answered /metrics with ${r.metricsStatusAfter}`);
  return { ok: problems.length === 0, problems };
}

/** Page-cache attribution of the IDS against the kernel's own charge to its cgroup (memory.stat `file`). */
export interface PageCacheSample {
  atS: number;
  /** What the agent attributed to the IDS (page cache bytes, from its aggregate). */
  agentBytes: number;
  /** memory.stat `file` of the IDS's cgroup at the same moment. */
  cgroupFileBytes: number;
}

export interface PageCacheCheck {
  samples: number;
  /** |agent − cgroup| / cgroup of the last sample. */
  lastError: number;
  maxError: number;
  ok: boolean;
}

/** Within `tolerance` (2%) in the last sample, once the scan has filled the cache. */
export function pageCacheCheck(samples: readonly PageCacheSample[], tolerance = 0.02): PageCacheCheck {
  const err = (s: PageCacheSample): number => (s.cgroupFileBytes > 0 ? Math.abs(s.agentBytes - s.cgroupFileBytes) / s.cgroupFileBytes : 1);
  const last = samples[samples.length - 1];
  if (last === undefined) return { samples: 0, lastError: 1, maxError: 1, ok: false };
  const lastError = err(last);
  return { samples: samples.length, lastError, maxError: Math.max(...samples.map(err)), ok: lastError <= tolerance };
}

/** The VM's memory.high against the IDS's memory, once the balloon has settled. */
export interface BalloonSample {
  atS: number;
  /** The IDS's memory as the agent charged it (RSS + page cache), bytes. */
  idsBytes: number;
  /** The VM cgroup's memory.high, bytes (null: "max"). */
  vmHighBytes: number | null;
}

export interface BalloonV2Check {
  /** The cage's memory base minus the last memory.high: how far the balloon moved, bytes. */
  movedBytes: number;
  idsBytes: number;
  /** |moved − ids| in bytes, and the bound max(1% of ids, 4 MiB). */
  errorBytes: number;
  boundBytes: number;
  ok: boolean;
}

export function balloonV2Check(samples: readonly BalloonSample[], baseBytes: number, floorBytes: number): BalloonV2Check {
  const last = samples[samples.length - 1];
  if (last === undefined || last.vmHighBytes === null) return { movedBytes: 0, idsBytes: last?.idsBytes ?? 0, errorBytes: Infinity, boundBytes: 0, ok: false };
  const movedBytes = baseBytes - last.vmHighBytes;
  // The balloon never goes below the cage's floor: what it should move is capped there.
  const expected = Math.min(last.idsBytes, baseBytes - floorBytes);
  const errorBytes = Math.abs(movedBytes - expected);
  const boundBytes = Math.max(0.01 * expected, 4 * 2 ** 20);
  return { movedBytes, idsBytes: last.idsBytes, errorBytes, boundBytes, ok: errorBytes <= boundBytes };
}

/** The cage phase's CPU bars: total ≤ cap + 2 and IDS ≤ idsCap + 2, each in ≥ 95% of windows. */
export interface CpuV2Check {
  total: CapCompliance;
  idsWithin: number;
  idsFractionWithin: number;
  maxIdsPct: number;
  ok: boolean;
}

export function cpuV2Check(windows: readonly CageWindow[], idsCapPct: number, tolerancePts = 2, bar = 0.95): CpuV2Check {
  const total = capCompliance(windows, tolerancePts);
  const idsWithin = windows.filter((w) => w.idsPct <= idsCapPct + tolerancePts).length;
  const idsFractionWithin = windows.length > 0 ? idsWithin / windows.length : 0;
  const maxIdsPct = windows.reduce((m, w) => Math.max(m, w.idsPct), 0);
  return { total, idsWithin, idsFractionWithin, maxIdsPct, ok: windows.length > 0 && total.fractionWithin >= bar && idsFractionWithin >= bar };
}
