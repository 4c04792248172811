/**
 * Raw (as-written, schema-approved) config → AgentConfig: defaults filled in, sizes in bytes,
 * trailing slashes off cgroup paths, absent optional fields as null. Only reached when the
 * schema and the semantic checks passed, so the raw types can be trusted here.
 */
import type { ActuatorCommonSpec, AgentConfig, AgentSpec, BalloonActuatorSpec, CageSpec, CpuActuatorSpec, CpuBackendSpec, CpuSpec, ExternalActuatorSpec, IdsCr3Spec, InfluxSpec, LimiterActuatorSpec, MemorySpec, ProcessMatcher, VmSpec } from "./cageConfig.js";
import { CONFIG_SCHEMA, type RawBalloonActuator, type RawCage, type RawConfig, type RawCpu, type RawCpuActuator, type RawCpuBackend, type RawExternalActuator, type RawInflux, type RawLimiterActuator, type RawMatcher, type RawMemory, type RawSize, type RawVm } from "./configSchema.js";
import {
  DEFAULT_AGENT,
  DEFAULT_BALLOON_ACTUATOR,
  DEFAULT_CAGE_BALLOON,
  DEFAULT_CPU_ACTUATOR,
  DEFAULT_DESCENDANTS,
  DEFAULT_EXTERNAL_ACTUATOR_STOP_TIMEOUT_MS,
  DEFAULT_INFLUX,
  DEFAULT_LIBVIRT_URI,
  DEFAULT_LIMITER_ACTUATOR,
  DEFAULT_OTLP,
  DEFAULT_PAGE_CACHE,
  DEFAULT_PROMETHEUS,
} from "./defaults.js";
import { parseSize } from "./units.js";
import { cachedUsers } from "./checks/matcherChecks.js";

/** `users` looks user names up (default: /etc/passwd, read once per call and only if a matcher has `user`). */
export function normalise(raw: RawConfig, users: () => Map<string, number> = cachedUsers()): AgentConfig {
  const a = raw.agent ?? {};
  const cages = raw.cages;
  const prometheus = a.prometheus === false ? null : { ...DEFAULT_PROMETHEUS, ...(typeof a.prometheus === "object" ? a.prometheus : {}) };
  const otlp = a.otlp === undefined || a.otlp === false ? null : { ...DEFAULT_OTLP, ...(typeof a.otlp === "object" ? a.otlp : {}) };
  // Page cache matters to the balloon (IDS memory = RSS + its page cache), so a memory section turns it on.
  const pageCacheOn = a.pageCache === undefined ? cages.some((c) => c.memory !== undefined) : a.pageCache !== false;
  const pageCache = pageCacheOn ? { ...DEFAULT_PAGE_CACHE, ...(typeof a.pageCache === "object" ? a.pageCache : {}) } : null;
  const actuators = a.actuators ?? {};
  const agent: AgentSpec = {
    host: a.host ?? DEFAULT_AGENT.host,
    runtimeDir: a.runtimeDir ?? DEFAULT_AGENT.runtimeDir,
    stateDir: a.stateDir ?? DEFAULT_AGENT.stateDir,
    cpuIntervalMs: a.cpuIntervalMs ?? DEFAULT_AGENT.cpuIntervalMs,
    cpuProgram: a.cpuProgram ?? DEFAULT_AGENT.cpuProgram,
    memorySampleMs: a.memorySampleMs ?? DEFAULT_AGENT.memorySampleMs,
    idsMemorySampleMs: a.idsMemorySampleMs === false ? null : (a.idsMemorySampleMs ?? DEFAULT_AGENT.idsMemorySampleMs),
    resolveMs: a.resolveMs ?? DEFAULT_AGENT.resolveMs,
    prometheus,
    otlp,
    pageCache,
    logLevel: a.logLevel ?? DEFAULT_AGENT.logLevel,
    actuators: {
      balloon: actuators.balloon === undefined ? null : normaliseBalloonActuator(actuators.balloon),
      cpu: actuators.cpu === undefined ? null : normaliseCpuActuator(actuators.cpu),
      limiter: actuators.limiter === undefined ? null : normaliseLimiterActuator(actuators.limiter),
      external: (actuators.external ?? []).map(normaliseExternalActuator),
    },
    influx: a.influx === undefined || a.influx === false ? null : normaliseInflux(a.influx),
  };
  return { agent, cages: cages.map((c) => normaliseCage(c, users)) };
}

function normaliseExternalActuator(raw: RawExternalActuator): ExternalActuatorSpec {
  return {
    name: raw.name,
    command: raw.command,
    args: raw.args ?? [],
    env: { ...((raw.env ?? {}) as Record<string, string>) },
    stopTimeoutMs: raw.stopTimeoutMs ?? DEFAULT_EXTERNAL_ACTUATOR_STOP_TIMEOUT_MS,
  };
}

function normaliseInflux(raw: RawInflux): InfluxSpec {
  const { bufferSize, ...rest } = typeof raw === "object" ? raw : {};
  const influx = { ...DEFAULT_INFLUX, ...rest, ...(bufferSize !== undefined ? { bufferBytes: bytes(bufferSize) } : {}) };
  // The schema allows a trailing slash; logs and clients get one spelling of the server.
  influx.url = influx.url.replace(/\/+$/, "");
  return influx;
}

export function normaliseBalloonActuator(b: RawBalloonActuator): BalloonActuatorSpec {
  const d = DEFAULT_BALLOON_ACTUATOR;
  const size = (v: RawSize | undefined, dflt: number): number => (v === undefined ? dflt : bytes(v));
  return {
    dryRun: b.dryRun ?? d.dryRun,
    periodMs: b.periodMs ?? d.periodMs,
    staleAfterMs: b.staleAfterMs ?? d.staleAfterMs,
    guardianStartTimeoutMs: b.guardianStartTimeoutMs ?? d.guardianStartTimeoutMs,
    maxStepBytes: size(b.maxStep, d.maxStepBytes),
    hysteresisBytes: size(b.hysteresis, d.hysteresisBytes),
    minMoveIntervalMs: b.minMoveIntervalMs ?? d.minMoveIntervalMs,
    reverseHoldMs: b.reverseHoldMs ?? d.reverseHoldMs,
    actOnAggregate: b.actOnAggregate ?? d.actOnAggregate,
    stuckAfterMs: b.stuckAfterMs ?? d.stuckAfterMs,
    stuckRetargetBytes: size(b.stuckRetarget, d.stuckRetargetBytes),
    toleranceBytes: size(b.tolerance, d.toleranceBytes),
    xlPath: b.xlPath ?? d.xlPath,
    virshPath: b.virshPath ?? d.virshPath,
    commandTimeoutMs: b.commandTimeoutMs ?? d.commandTimeoutMs,
    dom0: b.dom0 ? { baseBytes: bytes(b.dom0.base), maxBytes: bytes(b.dom0.max) } : null,
  };
}

function normaliseActuatorCommon(r: RawCpuActuator | RawLimiterActuator, d: ActuatorCommonSpec): ActuatorCommonSpec {
  return {
    dryRun: r.dryRun ?? d.dryRun,
    periodMs: r.periodMs ?? d.periodMs,
    staleAfterMs: r.staleAfterMs ?? d.staleAfterMs,
    guardianStartTimeoutMs: r.guardianStartTimeoutMs ?? d.guardianStartTimeoutMs,
  };
}

export function normaliseCpuActuator(r: RawCpuActuator): CpuActuatorSpec {
  const d = DEFAULT_CPU_ACTUATOR;
  return {
    ...normaliseActuatorCommon(r, d),
    hostCapacityPct: r.hostCapacityPct ?? d.hostCapacityPct,
    minChangePct: r.minChangePct ?? d.minChangePct,
    idsHoldMs: r.idsHoldMs ?? d.idsHoldMs,
    actOnAggregate: r.actOnAggregate ?? d.actOnAggregate,
  };
}

export function normaliseLimiterActuator(r: RawLimiterActuator): LimiterActuatorSpec {
  const d = DEFAULT_LIMITER_ACTUATOR;
  return { ...normaliseActuatorCommon(r, d), mode: r.mode ?? d.mode, failsafe: r.failsafe ?? d.failsafe };
}

function normaliseCage(c: RawCage, users: () => Map<string, number>): CageSpec {
  const out: CageSpec = {
    name: c.name,
    vm: normaliseVm(c.vm, users),
    ids: [],
    cpu: normaliseCpu(c.cpu),
    memory: c.memory ? normaliseMemory(c.memory) : null,
  };
  const idsVms: VmSpec[] = [];
  const idsCr3: IdsCr3Spec[] = [];
  for (const entry of c.ids ?? []) {
    if (entry.vm !== undefined) {
      const vm = normaliseVm(entry.vm, users);
      idsVms.push(vm);
      // The checks allow cr3From only beside a xen vm.
      if (entry.cr3From !== undefined && vm.kind === "xen") idsCr3.push({ domain: vm.domain, from: entry.cr3From });
    } else out.ids.push(normaliseMatcher(entry, users));
  }
  if (idsVms.length > 0) out.idsVms = idsVms;
  if (idsCr3.length > 0) out.idsCr3 = idsCr3;
  if (c.units !== undefined) out.units = { ids: c.units.ids ?? null, vm: c.units.vm ?? null };
  return out;
}

function normaliseMemory(m: RawMemory): MemorySpec {
  const baseBytes = bytes(m.base);
  const d = DEFAULT_CAGE_BALLOON;
  return {
    baseBytes,
    floorBytes: bytes(m.floor),
    failsafeBytes: m.failsafe === undefined ? baseBytes : bytes(m.failsafe),
    balloon: {
      backend: m.backend ?? d.backend,
      libvirtDomain: m.libvirtDomain ?? d.libvirtDomain,
      cgroup: m.cgroup === undefined ? d.cgroup : trimSlash(m.cgroup),
      cgroupV2File: m.cgroupV2File ?? d.cgroupV2File,
    },
  };
}

function normaliseCpu(c: RawCpu): CpuSpec {
  const out: CpuSpec = { cap: c.cap, idsCap: c.idsCap ?? null, weight: c.weight ?? null };
  // The CPU actuator fills these in from cap, so they stay absent unless the file gives them.
  if (c.vmFloor !== undefined) out.vmFloor = c.vmFloor;
  if (c.vmCeiling !== undefined) out.vmCeiling = c.vmCeiling;
  if (c.failsafeCap !== undefined) out.failsafeCap = c.failsafeCap;
  if (c.backend !== undefined) out.backend = normaliseCpuBackend(c.backend);
  return out;
}

/**
 * Any cpu.backend kind, read off its schema branch: absent fields become null and cgroup
 * paths lose their trailing slash. A new back end therefore needs no code here.
 */
export function normaliseCpuBackend(b: RawCpuBackend): CpuBackendSpec {
  const branch = CONFIG_SCHEMA.$defs.cpuBackend.oneOf.find((br) => br.properties.kind.const === b.kind);
  if (branch === undefined) throw new Error(`cpu.backend.kind ${JSON.stringify(b.kind)} is not in the schema`);
  const given = b as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [field, property] of Object.entries(branch.properties as Record<string, object>)) {
    const value = given[field];
    out[field] = value === undefined ? null : isCgroupPath(property) && typeof value === "string" ? trimSlash(value) : value;
  }
  return out as CpuBackendSpec;
}

function isCgroupPath(property: object): boolean {
  return "$ref" in property && property.$ref === "#/$defs/cgroupPath";
}

function normaliseVm(vm: RawVm, users: () => Map<string, number>): VmSpec {
  switch (vm.kind) {
    case "process":
      return { kind: "process", match: vm.match.map((m) => normaliseMatcher(m, users)) };
    case "cgroup":
      return { kind: "cgroup", path: trimSlash(vm.path) };
    case "qemu":
      return { kind: "qemu", match: vm.match.map((m) => normaliseMatcher(m, users)), qmpSocket: vm.qmpSocket };
    case "xen":
      return { kind: "xen", domain: vm.domain };
    case "libvirt":
      return { kind: "libvirt", domain: vm.domain, uri: vm.uri ?? DEFAULT_LIBVIRT_URI };
  }
}

function normaliseMatcher(m: RawMatcher, users: () => Map<string, number>): ProcessMatcher {
  const out: ProcessMatcher = { descendants: m.descendants ?? DEFAULT_DESCENDANTS };
  if (m.pid !== undefined) out.pid = m.pid;
  if (m.comm !== undefined) out.comm = m.comm;
  if (m.uid !== undefined || m.user !== undefined) out.uids = ownerUids(m, users);
  if (m.exe !== undefined) out.exe = m.exe;
  if (m.cmdline !== undefined) out.cmdline = m.cmdline;
  if (m.cgroup !== undefined) out.cgroup = trimSlash(m.cgroup);
  return out;
}

/** uid and user together as sorted, distinct UIDs; the checks made sure every name exists. */
function ownerUids(m: RawMatcher, users: () => Map<string, number>): number[] {
  const uids = m.uid === undefined ? [] : Array.isArray(m.uid) ? m.uid : [m.uid];
  const names = m.user === undefined ? [] : Array.isArray(m.user) ? m.user : [m.user];
  const out = new Set(uids);
  for (const name of names) {
    const uid = users().get(name);
    if (uid === undefined) throw new Error(`user ${JSON.stringify(name)} passed the checks but is not in /etc/passwd`);
    out.add(uid);
  }
  return [...out].sort((a, b) => a - b);
}

/** A size the schema and the checks accepted, in bytes. */
function bytes(v: RawSize): number {
  const n = parseSize(v);
  if (n === null) throw new Error(`size ${JSON.stringify(v)} passed the schema but does not parse`);
  return n;
}

function trimSlash(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, "") : p;
}
