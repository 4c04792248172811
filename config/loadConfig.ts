/**
 * Loads a cage file (YAML or JSON: the `yaml` parser reads both) into the normalised
 * AgentConfig. docs/config.schema.json is the single source of truth for the shape and is read
 * at run time; this module adds the checks a schema cannot express and fills in defaults.
 * Every problem is collected, each with its path in the file and, where known, its line.
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from "yaml";
import type { ActuatorCommonSpec, ActuatorsSpec, AgentConfig, AgentSpec, BalloonActuatorSpec, CageSpec, CpuActuatorSpec, CpuSpec, InfluxSpec, LimiterActuatorSpec, MemorySpec, ProcessMatcher, VmSpec } from "./cageConfig.js";
import { ConfigError, type ConfigProblem } from "./configError.js";

export const DEFAULT_PROMETHEUS = Object.freeze({ host: "127.0.0.1", port: 9464 });
export const DEFAULT_OTLP = Object.freeze({ endpoint: "http://127.0.0.1:4318/v1/metrics", intervalMs: 5000 });
export const DEFAULT_AGENT: Readonly<AgentSpec> = Object.freeze({
  runtimeDir: null,
  cpuIntervalMs: 100,
  memorySampleMs: 1000,
  resolveMs: 500,
  prometheus: { ...DEFAULT_PROMETHEUS },
  otlp: null,
  pageCache: null,
  logLevel: "info",
  actuators: { balloon: null, cpu: null, limiter: null },
  influx: null,
});
export const DEFAULT_PAGE_CACHE = Object.freeze({ intervalMs: 1000, maxPages: 262_144 });

// --- balloon actuator (issue 5) ---
const MiB = 1024 * 1024;
/** Defaults of agent.actuators.balloon (docs/config.md, docs/balloon.md say why). */
export const DEFAULT_BALLOON_ACTUATOR: Readonly<BalloonActuatorSpec> = Object.freeze({
  dryRun: false,
  periodMs: 500,
  staleAfterMs: 5000,
  maxStepBytes: 256 * MiB,
  hysteresisBytes: 2 * MiB,
  minMoveIntervalMs: 1000,
  stuckAfterMs: 10_000,
  stuckRetargetBytes: 64 * MiB,
  toleranceBytes: 1 * MiB,
  xlPath: "xl",
  virshPath: "virsh",
  commandTimeoutMs: 10_000,
  dom0: null,
});
// --- end balloon actuator ---

/** The kernel keeps at most 15 bytes of a command name (TASK_COMM_LEN 16 with the NUL). */
const COMM_MAX_BYTES = 15;
const SELECTORS = ["pid", "comm", "exe", "cmdline", "cgroup"] as const;

/** dist/config/loadConfig.js → docs/config.schema.json; also works when run from the source tree. */
export function configSchemaPath(): string {
  const candidates = ["../../docs/config.schema.json", "../docs/config.schema.json"].map((rel) =>
    fileURLToPath(new URL(rel, import.meta.url)),
  );
  return candidates.find((p) => existsSync(p)) ?? (candidates[0] as string);
}

let compiledSchema: ValidateFunction | undefined;

function schemaValidator(): ValidateFunction {
  if (compiledSchema !== undefined) return compiledSchema;
  const path = configSchemaPath();
  const schema = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  // verbose: errors carry their schema, so our "x-error" messages can live in the schema file.
  const ajv = new Ajv2020({ allErrors: true, verbose: true, discriminator: true, allowUnionTypes: true, strict: true, strictRequired: false });
  ajv.addKeyword({ keyword: "x-error", schemaType: "string" });
  compiledSchema = ajv.compile(schema);
  return compiledSchema;
}

/** Reads and loads a cage file. Throws ConfigError (all problems) when it is unreadable or invalid. */
export function loadConfigFile(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === "ENOENT" ? "no such file" : e.code === "EISDIR" ? "is a directory, not a file" : e.message;
    throw new ConfigError(path, [{ path: "", message: `cannot read config file: ${why}` }]);
  }
  return parseConfigText(text, path);
}

/** Parses cage-file text (YAML or JSON). `fileName` is only used in messages. */
export function parseConfigText(text: string, fileName: string): AgentConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lineAt = (offset: number): number => lineCounter.linePos(offset).line;

  const syntax = [...doc.errors, ...doc.warnings].map((e) => ({
    path: "",
    message: `YAML syntax: ${e.message.split("\n")[0] ?? e.message}`,
    line: lineAt(e.pos[0]),
  }));
  if (syntax.length > 0) throw new ConfigError(fileName, syntax);

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    throw new ConfigError(fileName, [{ path: "", message: `YAML: ${(err as Error).message}` }]);
  }

  if (data === null || data === undefined) {
    throw new ConfigError(fileName, [{ path: "", message: "the file is empty (expected a mapping with a cages: list)" }]);
  }

  const locate = (segments: PathSegment[], at: "key" | "value"): number | undefined => {
    const range = findNode(doc, segments, at)?.range;
    return range ? lineAt(range[0]) : undefined;
  };
  const problems = [...schemaProblems(data, locate), ...semanticProblems(data, locate)];
  if (problems.length > 0) {
    throw new ConfigError(fileName, sortProblems(dedupe(problems)));
  }
  return normalise(data as RawConfig);
}

/**
 * Bytes from an integer or a size string ("1GiB", "512 MiB", "1.5G"). KiB/MiB/GiB/TiB and the
 * bare K/M/G/T (as in cgroup files) are powers of 1024; KB/MB/GB/TB are powers of 1000.
 * Returns null for anything else.
 */
export function parseSize(value: unknown): number | null {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? value : null;
  if (typeof value !== "string") return null;
  const m = /^([0-9]+(?:\.[0-9]+)?) ?(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB|K|M|G|T)?$/.exec(value);
  if (!m) return null;
  const unit = m[2] ?? "B";
  const factor: Record<string, number> = {
    B: 1, K: 1024, KiB: 1024, M: 1024 ** 2, MiB: 1024 ** 2, G: 1024 ** 3, GiB: 1024 ** 3, T: 1024 ** 4, TiB: 1024 ** 4,
    KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12,
  };
  const bytes = Math.round(Number(m[1]) * (factor[unit] ?? 1));
  return Number.isSafeInteger(bytes) ? bytes : null;
}

// ---------------------------------------------------------------------------------------------
// Paths and lines

type PathSegment = string | number;
type Locate = (segments: PathSegment[], at: "key" | "value") => number | undefined;

/** `cages[1].cpu.cap` from ["cages", 1, "cpu", "cap"]. */
export function formatConfigPath(segments: readonly PathSegment[]): string {
  let out = "";
  for (const s of segments) {
    if (typeof s === "number") out += `[${s}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(s)) out += out === "" ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

/** ajv's JSON Pointer (/cages/1/cpu/cap) as segments, array indexes as numbers. */
function pointerSegments(pointer: string, data: unknown): PathSegment[] {
  if (pointer === "") return [];
  const segments: PathSegment[] = [];
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(cur)) {
      const i = Number(key);
      segments.push(i);
      cur = cur[i];
    } else {
      segments.push(key);
      cur = isRecord(cur) ? cur[key] : undefined;
    }
  }
  return segments;
}

/** The YAML node at a path (the key node of the last segment with at = "key"), for its line. */
function findNode(doc: Document, segments: PathSegment[], at: "key" | "value"): YamlNode | undefined {
  let node: unknown = doc.contents;
  for (let i = 0; i < segments.length; i++) {
    if (isAlias(node)) node = node.resolve(doc);
    const seg = segments[i];
    const last = i === segments.length - 1;
    if (isSeq(node) && typeof seg === "number") {
      node = node.items[seg];
    } else if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      if (!pair) return undefined;
      node = last && at === "key" ? pair.key : pair.value;
    } else {
      return undefined;
    }
  }
  return isAlias(node) ? node.resolve(doc) : (node as YamlNode | undefined);
}

// ---------------------------------------------------------------------------------------------
// Schema problems

const TYPE_WORDS: Record<string, string> = {
  integer: "an integer",
  number: "a number",
  string: "a string",
  object: "a mapping (object)",
  array: "a list",
  boolean: "true or false",
  null: "null",
};

function schemaProblems(data: unknown, locate: Locate): ConfigProblem[] {
  const validate = schemaValidator();
  if (validate(data)) return [];
  const problems: ConfigProblem[] = [];
  for (const e of validate.errors ?? []) {
    const problem = schemaProblem(e, data, locate);
    if (problem) problems.push(problem);
  }
  return problems;
}

function schemaProblem(e: ErrorObject, data: unknown, locate: Locate): ConfigProblem | undefined {
  const at = pointerSegments(e.instancePath, data);
  const params = e.params as Record<string, unknown>;
  const custom: unknown = isRecord(e.parentSchema) ? e.parentSchema["x-error"] : undefined;
  const problem = (segments: PathSegment[], message: string, lineAt: "key" | "value" = "value"): ConfigProblem => {
    const line = locate(segments, lineAt) ?? locate(segments.slice(0, -1), "value");
    return { path: segments.length === 0 ? "(top level)" : formatConfigPath(segments), message, ...(line === undefined ? {} : { line }) };
  };
  switch (e.keyword) {
    case "required":
      return problem([...at, String(params.missingProperty)], "is required");
    case "additionalProperties": {
      const allowed = isRecord(e.parentSchema) && isRecord(e.parentSchema.properties) ? Object.keys(e.parentSchema.properties) : [];
      return problem([...at, String(params.additionalProperty)], `unknown field (allowed: ${allowed.join(", ")})`, "key");
    }
    case "discriminator": {
      const kinds = vmKinds(e.parentSchema);
      const tag = String(params.tag);
      return params.error === "tag"
        ? problem([...at, tag], `must be a string, one of: ${kinds.join(", ")}`)
        : problem([...at, tag], `unknown kind ${JSON.stringify(params.tagValue)} (must be one of: ${kinds.join(", ")})`);
    }
    case "oneOf":
      // With a discriminator only the matching branch is checked and reported; this summary adds nothing.
      return undefined;
    case "enum":
      return problem(at, `must be one of: ${(params.allowedValues as unknown[]).map((v) => String(v)).join(", ")}`);
    case "type": {
      if (typeof custom === "string") return problem(at, custom);
      const types = Array.isArray(params.type) ? (params.type as string[]) : String(params.type).split(",");
      return problem(at, `must be ${types.map((t) => TYPE_WORDS[t] ?? t).join(" or ")}`);
    }
    case "minItems":
      return problem(at, `must list at least ${String(params.limit)} item${params.limit === 1 ? "" : "s"}`);
    case "minLength":
      return problem(at, params.limit === 1 ? "must not be empty" : `must be at least ${String(params.limit)} characters`);
    default:
      return problem(at, typeof custom === "string" ? custom : (e.message ?? `fails ${e.keyword}`));
  }
}

function vmKinds(schema: unknown): string[] {
  if (!isRecord(schema) || !Array.isArray(schema.oneOf)) return [];
  return schema.oneOf.flatMap((branch: unknown) => {
    if (!isRecord(branch) || !isRecord(branch.properties) || !isRecord(branch.properties.kind)) return [];
    return typeof branch.properties.kind.const === "string" ? [branch.properties.kind.const] : [];
  });
}

// ---------------------------------------------------------------------------------------------
// Checks the schema cannot express. They read the raw data defensively, so they also run (and
// report) when other parts of the file fail the schema.

function semanticProblems(data: unknown, locate: Locate): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const add = (segments: PathSegment[], message: string): void => {
    const line = locate(segments, "value");
    problems.push({ path: formatConfigPath(segments), message, ...(line === undefined ? {} : { line }) });
  };
  if (isRecord(data) && isRecord(data.agent) && isRecord(data.agent.influx)) influxProblems(data.agent.influx, add);
  if (isRecord(data) && isRecord(data.agent) && isRecord(data.agent.actuators) && isRecord(data.agent.actuators.balloon)) {
    const dom0 = data.agent.actuators.balloon.dom0;
    if (isRecord(dom0)) {
      const b = parseSize(dom0.base);
      const m = parseSize(dom0.max);
      if (b !== null && m !== null && b > m) add(["agent", "actuators", "balloon", "dom0", "base"], `must be <= max (${String(dom0.base)} > ${String(dom0.max)})`);
    }
  }
  if (!isRecord(data) || !Array.isArray(data.cages)) return problems;

  const firstByName = new Map<string, number>();
  data.cages.forEach((cage: unknown, i) => {
    if (!isRecord(cage)) return;
    const at: PathSegment[] = ["cages", i];
    if (typeof cage.name === "string") {
      const first = firstByName.get(cage.name);
      if (first === undefined) firstByName.set(cage.name, i);
      else add([...at, "name"], `duplicate cage name ${JSON.stringify(cage.name)} (also cages[${first}].name)`);
    }
    if (isRecord(cage.cpu) && typeof cage.cpu.cap === "number" && typeof cage.cpu.idsCap === "number" && cage.cpu.cap > 0 && cage.cpu.idsCap > cage.cpu.cap) {
      add([...at, "cpu", "idsCap"], `must be <= cap (${cage.cpu.idsCap} > ${cage.cpu.cap})`);
    }
    if (isRecord(cage.cpu)) cpuActuatorProblems(cage.cpu, cage.vm, [...at, "cpu"], add);
    if (isRecord(cage.memory)) {
      for (const field of ["base", "floor"] as const) {
        const v = cage.memory[field];
        if (typeof v === "number" && Number.isInteger(v) && !Number.isSafeInteger(v)) add([...at, "memory", field], "is too large");
      }
      const base = parseSize(cage.memory.base);
      const floor = parseSize(cage.memory.floor);
      if (base !== null && floor !== null && floor > base) {
        add([...at, "memory", "floor"], `must be <= base (${String(cage.memory.floor)} > ${String(cage.memory.base)})`);
      }
      balloonCageProblems(cage, at, base, floor, add);
    }
    if (isRecord(cage.vm) && Array.isArray(cage.vm.match)) {
      cage.vm.match.forEach((m: unknown, j) => matcherProblems(m, [...at, "vm", "match", j], add));
    }
    if (Array.isArray(cage.ids)) {
      cage.ids.forEach((m: unknown, j) => matcherProblems(m, [...at, "ids", j], add));
    }
  });
  return problems;
}

/** CPU actuator knobs (issue 4): floor <= ceiling <= cap; a back end that fits the VM kind. */
function cpuActuatorProblems(cpu: Record<string, unknown>, vm: unknown, at: PathSegment[], add: (segments: PathSegment[], message: string) => void): void {
  const cap = typeof cpu.cap === "number" && cpu.cap > 0 ? cpu.cap : null;
  const floor = typeof cpu.vmFloor === "number" ? cpu.vmFloor : null;
  const ceiling = typeof cpu.vmCeiling === "number" ? cpu.vmCeiling : null;
  if (cap !== null && ceiling !== null && ceiling > cap) add([...at, "vmCeiling"], `must be <= cap (${ceiling} > ${cap})`);
  const effectiveCeiling = ceiling ?? cap;
  if (floor !== null && effectiveCeiling !== null && floor > effectiveCeiling) {
    add([...at, "vmFloor"], `must be <= ${ceiling !== null ? "vmCeiling" : "cap"} (${floor} > ${effectiveCeiling})`);
  }
  const vmKind = isRecord(vm) ? vm.kind : undefined;
  if (isRecord(cpu.backend) && vmKind === "xen") {
    add([...at, "backend"], "a xen VM is controlled with xl; remove backend (it is for process, qemu and cgroup VMs)");
  }
}

// --- balloon actuator (issue 5) ---
/** The balloon knobs of a cage's memory section that the schema cannot check. */
function balloonCageProblems(
  cage: Record<string, unknown>,
  at: PathSegment[],
  base: number | null,
  floor: number | null,
  add: (segments: PathSegment[], message: string) => void,
): void {
  const memory = cage.memory as Record<string, unknown>;
  const kind = isRecord(cage.vm) ? cage.vm.kind : undefined;
  const failsafe = parseSize(memory.failsafe);
  if (failsafe !== null && ((base !== null && failsafe > base) || (floor !== null && failsafe < floor))) {
    add([...at, "memory", "failsafe"], `must be within [floor, base] (${String(memory.failsafe)})`);
  }
  const need = (backend: string, ok: boolean, why: string): void => {
    if (memory.backend === backend && !ok) add([...at, "memory", "backend"], `${backend} needs ${why}`);
  };
  need("qmp", kind === "qemu", `vm.kind qemu (its qmpSocket); this VM is ${String(kind)}`);
  need("xl", kind === "xen", `vm.kind xen (its domain); this VM is ${String(kind)}`);
  need("virsh", typeof memory.libvirtDomain === "string", "memory.libvirtDomain");
  need("cgroup", kind === "cgroup" || typeof memory.cgroup === "string", "vm.kind cgroup or memory.cgroup");
}
// --- end balloon actuator ---

function matcherProblems(m: unknown, at: PathSegment[], add: (segments: PathSegment[], message: string) => void): void {
  if (!isRecord(m)) return;
  if (!SELECTORS.some((s) => m[s] !== undefined)) {
    add(at, `must have at least one selector (${SELECTORS.join(", ")}); descendants alone selects nothing`);
  }
  if (typeof m.comm === "string" && Buffer.byteLength(m.comm, "utf8") > COMM_MAX_BYTES) {
    add([...at, "comm"], `is ${Buffer.byteLength(m.comm, "utf8")} bytes; the kernel keeps at most ${COMM_MAX_BYTES} of a command name, so it never matches (use exe or cmdline)`);
  }
  if (typeof m.cmdline === "string") {
    try {
      new RegExp(m.cmdline);
    } catch (err) {
      add([...at, "cmdline"], `not a valid regular expression: ${(err as Error).message}`);
    }
  }
}

// --- agent.influx (issue 7: history) ---------------------------------------------------------

export const DEFAULT_INFLUX: Readonly<InfluxSpec> = Object.freeze({
  url: "http://127.0.0.1:8086",
  database: "offloadcage",
  retention: "7d",
  downsampleEvery: "1m",
  downsampledRetention: "90d",
  batchPoints: 1000,
  flushMs: 1000,
  bufferPoints: 200_000,
  retryMinMs: 250,
  retryMaxMs: 10_000,
  timeoutMs: 10_000,
});

const DURATION_MINUTES: Record<string, number> = { m: 1, h: 60, d: 1440, w: 10080 };

/** Minutes in an InfluxQL duration the schema accepted ("30m", "7d"), or null for anything else. */
export function influxDurationMinutes(value: unknown): number | null {
  if (typeof value !== "string") return null;
  const m = /^([1-9][0-9]{0,5})(m|h|d|w)$/.exec(value);
  return m ? Number(m[1]) * (DURATION_MINUTES[m[2] as string] as number) : null;
}

function influxProblems(influx: Record<string, unknown>, add: (segments: PathSegment[], message: string) => void): void {
  const at: PathSegment[] = ["agent", "influx"];
  // InfluxDB refuses retention policies shorter than one hour.
  for (const field of ["retention", "downsampledRetention"] as const) {
    const minutes = influxDurationMinutes(influx[field]);
    if (minutes !== null && minutes < 60) add([...at, field], `must be at least 1h (InfluxDB's shortest retention), got ${String(influx[field])}`);
  }
  const everyText = typeof influx.downsampleEvery === "string" ? influx.downsampleEvery : DEFAULT_INFLUX.downsampleEvery;
  const keptText = typeof influx.downsampledRetention === "string" ? influx.downsampledRetention : DEFAULT_INFLUX.downsampledRetention;
  const every = influxDurationMinutes(everyText);
  const kept = influxDurationMinutes(keptText);
  if (every !== null && kept !== null && every >= kept) {
    add([...at, "downsampleEvery"], `must be shorter than downsampledRetention (${everyText} >= ${keptText})`);
  }
  const min = typeof influx.retryMinMs === "number" ? influx.retryMinMs : DEFAULT_INFLUX.retryMinMs;
  const max = typeof influx.retryMaxMs === "number" ? influx.retryMaxMs : DEFAULT_INFLUX.retryMaxMs;
  if (min > max) add([...at, influx.retryMaxMs !== undefined ? "retryMaxMs" : "retryMinMs"], `retryMinMs must be <= retryMaxMs (${min} > ${max})`);
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.path}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  // Stable: problems without a line keep their relative order, after those with one.
  return [...problems].sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
}

// ---------------------------------------------------------------------------------------------
// Normalisation (only reached when the schema and semantic checks passed)

interface RawMatcher {
  pid?: number;
  comm?: string;
  exe?: string;
  cmdline?: string;
  cgroup?: string;
  descendants?: boolean;
}
type RawVm =
  | { kind: "process"; match: RawMatcher[] }
  | { kind: "cgroup"; path: string }
  | { kind: "qemu"; match: RawMatcher[]; qmpSocket: string }
  | { kind: "xen"; domain: string | number };
interface RawCage {
  name: string;
  vm: RawVm;
  ids?: RawMatcher[];
  cpu: {
    cap: number;
    idsCap?: number;
    weight?: number;
    vmFloor?: number;
    vmCeiling?: number;
    failsafeCap?: number;
    backend?: { kind: "cgroup"; path: string } | { kind: "virsh"; domain: string; uri?: string };
  };
  memory?: {
    base: number | string;
    floor: number | string;
    failsafe?: number | string;
    backend?: MemorySpec["balloon"]["backend"];
    libvirtDomain?: string;
    cgroup?: string;
    cgroupV2File?: MemorySpec["balloon"]["cgroupV2File"];
  };
}
type RawSize = number | string;
interface RawBalloonActuator {
  dryRun?: boolean;
  periodMs?: number;
  staleAfterMs?: number;
  maxStep?: RawSize;
  hysteresis?: RawSize;
  minMoveIntervalMs?: number;
  stuckAfterMs?: number;
  stuckRetarget?: RawSize;
  tolerance?: RawSize;
  xlPath?: string;
  virshPath?: string;
  commandTimeoutMs?: number;
  dom0?: { base: RawSize; max: RawSize };
}
interface RawActuatorCommon {
  dryRun?: boolean;
  periodMs?: number;
  staleAfterMs?: number;
  guardianStartTimeoutMs?: number;
}
interface RawActuators {
  cpu?: RawActuatorCommon & { hostCapacityPct?: number; minChangePct?: number; idsHoldMs?: number };
  limiter?: RawActuatorCommon & { mode?: "cgroup" | "sigstop"; failsafe?: "hold" | "release" };
}
interface RawConfig {
  agent?: {
    runtimeDir?: string;
    cpuIntervalMs?: number;
    memorySampleMs?: number;
    resolveMs?: number;
    prometheus?: boolean | { host?: string; port?: number };
    otlp?: boolean | { endpoint: string; intervalMs?: number };
    pageCache?: boolean | { intervalMs?: number; maxPages?: number };
    logLevel?: AgentSpec["logLevel"];
    actuators?: { balloon?: RawBalloonActuator } & RawActuators;
    influx?: boolean | Partial<InfluxSpec>;
  };
  cages: RawCage[];
}

function normalise(raw: RawConfig): AgentConfig {
  const a = raw.agent ?? {};
  const prometheus =
    a.prometheus === false
      ? null
      : { ...DEFAULT_PROMETHEUS, ...(typeof a.prometheus === "object" ? a.prometheus : {}) };
  const otlp =
    a.otlp === undefined || a.otlp === false ? null : { ...DEFAULT_OTLP, ...(typeof a.otlp === "object" ? a.otlp : {}) };
  // Page cache matters to the balloon (IDS memory = RSS + its page cache), so a memory section turns it on.
  const pageCacheOn = a.pageCache === undefined ? raw.cages.some((c) => c.memory !== undefined) : a.pageCache !== false;
  const pageCache = pageCacheOn ? { ...DEFAULT_PAGE_CACHE, ...(typeof a.pageCache === "object" ? a.pageCache : {}) } : null;
  const agent: AgentSpec = {
    runtimeDir: a.runtimeDir ?? DEFAULT_AGENT.runtimeDir,
    cpuIntervalMs: a.cpuIntervalMs ?? DEFAULT_AGENT.cpuIntervalMs,
    memorySampleMs: a.memorySampleMs ?? DEFAULT_AGENT.memorySampleMs,
    resolveMs: a.resolveMs ?? DEFAULT_AGENT.resolveMs,
    prometheus,
    otlp,
    pageCache,
    logLevel: a.logLevel ?? DEFAULT_AGENT.logLevel,
    actuators: { balloon: a.actuators?.balloon ? normaliseBalloonActuator(a.actuators.balloon) : null, ...normaliseCpuActuators(a.actuators ?? {}) },
    influx: a.influx === undefined || a.influx === false ? null : { ...DEFAULT_INFLUX, ...(typeof a.influx === "object" ? a.influx : {}) },
  };
  if (agent.influx !== null) agent.influx.url = agent.influx.url.replace(/\/+$/, "");
  return { agent, cages: raw.cages.map(normaliseCage) };
}

// --- balloon actuator (issue 5) ---
function normaliseBalloonActuator(b: RawBalloonActuator): BalloonActuatorSpec {
  const d = DEFAULT_BALLOON_ACTUATOR;
  const size = (v: RawSize | undefined, dflt: number): number => (v === undefined ? dflt : (parseSize(v) as number));
  return {
    dryRun: b.dryRun ?? d.dryRun,
    periodMs: b.periodMs ?? d.periodMs,
    staleAfterMs: b.staleAfterMs ?? d.staleAfterMs,
    maxStepBytes: size(b.maxStep, d.maxStepBytes),
    hysteresisBytes: size(b.hysteresis, d.hysteresisBytes),
    minMoveIntervalMs: b.minMoveIntervalMs ?? d.minMoveIntervalMs,
    stuckAfterMs: b.stuckAfterMs ?? d.stuckAfterMs,
    stuckRetargetBytes: size(b.stuckRetarget, d.stuckRetargetBytes),
    toleranceBytes: size(b.tolerance, d.toleranceBytes),
    xlPath: b.xlPath ?? d.xlPath,
    virshPath: b.virshPath ?? d.virshPath,
    commandTimeoutMs: b.commandTimeoutMs ?? d.commandTimeoutMs,
    dom0: b.dom0 ? { baseBytes: parseSize(b.dom0.base) as number, maxBytes: parseSize(b.dom0.max) as number } : null,
  };
}

function normaliseMemory(m: NonNullable<RawCage["memory"]>): MemorySpec {
  const baseBytes = parseSize(m.base) as number;
  return {
    baseBytes,
    floorBytes: parseSize(m.floor) as number,
    failsafeBytes: m.failsafe === undefined ? baseBytes : (parseSize(m.failsafe) as number),
    balloon: {
      backend: m.backend ?? "auto",
      libvirtDomain: m.libvirtDomain ?? null,
      cgroup: m.cgroup === undefined ? null : trimSlash(m.cgroup),
      cgroupV2File: m.cgroupV2File ?? "memory.max",
    },
  };
}
// --- end balloon actuator ---

function normaliseCage(c: RawCage): CageSpec {
  const memory: MemorySpec | null = c.memory ? normaliseMemory(c.memory) : null;
  return {
    name: c.name,
    vm: normaliseVm(c.vm),
    ids: (c.ids ?? []).map(normaliseMatcher),
    cpu: normaliseCpu(c.cpu),
    memory,
  };
}

/** Defaults of the actuator sections (docs/config.md, docs/cpu-actuators.md). */
export const DEFAULT_ACTUATOR_PERIOD_MS = 100;
export const DEFAULT_ACTUATOR_STALE_AFTER_MS = 1000;
/** Node starts in well under a second on a normal host; a loaded or emulated one (the Xen lab's dom0) takes tens of seconds. */
export const DEFAULT_GUARDIAN_START_TIMEOUT_MS = 60_000;

/** The CPU actuator's settings when the config has no `agent.actuators.cpu` section. */
export function defaultCpuActuatorSpec(): CpuActuatorSpec {
  return normaliseCpuActuators({ cpu: {} }).cpu as CpuActuatorSpec;
}

/** The limiter's settings when the config has no `agent.actuators.limiter` section. */
export function defaultLimiterActuatorSpec(): LimiterActuatorSpec {
  return normaliseCpuActuators({ limiter: {} }).limiter as LimiterActuatorSpec;
}

function normaliseCpuActuators(raw: RawActuators): Pick<ActuatorsSpec, "cpu" | "limiter"> {
  const common = (r: RawActuatorCommon): ActuatorCommonSpec => ({
    dryRun: r.dryRun ?? false,
    periodMs: r.periodMs ?? DEFAULT_ACTUATOR_PERIOD_MS,
    staleAfterMs: r.staleAfterMs ?? DEFAULT_ACTUATOR_STALE_AFTER_MS,
    guardianStartTimeoutMs: r.guardianStartTimeoutMs ?? DEFAULT_GUARDIAN_START_TIMEOUT_MS,
  });
  return {
    cpu: raw.cpu === undefined ? null : { ...common(raw.cpu), hostCapacityPct: raw.cpu.hostCapacityPct ?? null, minChangePct: raw.cpu.minChangePct ?? 1, idsHoldMs: raw.cpu.idsHoldMs ?? 0 },
    limiter: raw.limiter === undefined ? null : { ...common(raw.limiter), mode: raw.limiter.mode ?? "cgroup", failsafe: raw.limiter.failsafe ?? "hold" },
  };
}

function normaliseCpu(c: RawCage["cpu"]): CpuSpec {
  const out: CpuSpec = { cap: c.cap, idsCap: c.idsCap ?? null, weight: c.weight ?? null };
  if (c.vmFloor !== undefined) out.vmFloor = c.vmFloor;
  if (c.vmCeiling !== undefined) out.vmCeiling = c.vmCeiling;
  if (c.failsafeCap !== undefined) out.failsafeCap = c.failsafeCap;
  if (c.backend !== undefined) {
    out.backend = c.backend.kind === "cgroup" ? { kind: "cgroup", path: trimSlash(c.backend.path) } : { kind: "virsh", domain: c.backend.domain, uri: c.backend.uri ?? null };
  }
  return out;
}

function normaliseVm(vm: RawVm): VmSpec {
  switch (vm.kind) {
    case "process":
      return { kind: "process", match: vm.match.map(normaliseMatcher) };
    case "cgroup":
      return { kind: "cgroup", path: trimSlash(vm.path) };
    case "qemu":
      return { kind: "qemu", match: vm.match.map(normaliseMatcher), qmpSocket: vm.qmpSocket };
    case "xen":
      return { kind: "xen", domain: vm.domain };
  }
}

function normaliseMatcher(m: RawMatcher): ProcessMatcher {
  const out: ProcessMatcher = { descendants: m.descendants ?? true };
  if (m.pid !== undefined) out.pid = m.pid;
  if (m.comm !== undefined) out.comm = m.comm;
  if (m.exe !== undefined) out.exe = m.exe;
  if (m.cmdline !== undefined) out.cmdline = m.cmdline;
  if (m.cgroup !== undefined) out.cgroup = trimSlash(m.cgroup);
  return out;
}

function trimSlash(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, "") : p;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
