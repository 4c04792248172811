/**
 * Fuzz targets for what arrives from outside a process: wire frames, cage aggregates, actuator
 * messages and cage files. Each case starts from a valid input, mutates it with a seeded PRNG and
 * feeds it to the real decoder. A rejection must be the decoder's own error (ProtocolError,
 * ConfigError), counted by where it was found; anything else thrown, or a malformed value that
 * gets through, is a crash.
 */
import { isConfigError } from "../../config/configError.js";
import { parseConfigText } from "../../config/loadConfig.js";
import { decodeActuatorDecision, decodeActuatorState, type ActuatorDecision, type ActuatorState } from "../../protocol/actuatorMessages.js";
import { decodeCageAggregate, decodeCollectorStatus, encodeJson, type CageAggregate } from "../../protocol/cageAggregate.js";
import { PID_MAX } from "../../protocol/jsonFields.js";
import { parseFrames } from "../../protocol/messageBus.js";
import { decodeCpuBatch, decodeMemoryBatch, decodePageCacheBatch, encodeCpuBatch, encodeMemoryBatch, encodePageCacheBatch } from "../../protocol/rawBatches.js";
import { SequenceTracker } from "../../protocol/sequenceTracker.js";
import { decodeXenDomainCpu, encodeXenDomainCpu } from "../../protocol/xenDomainCpu.js";
import { encodeHeader, Encoding, isProtocolError, PROTOCOL_VERSION, Topic, type EncodingId } from "../../protocol/wireFormat.js";
import { SeededRandom } from "./seededRandom.js";

export interface FuzzReport {
  target: string;
  seed: number;
  cases: number;
  accepted: number;
  rejected: number;
  crashes: number;
  /** The first few crashes: case number and what happened. */
  crashExamples: string[];
  /** Rejections by where they were found (the counters that rose). */
  rejections: Record<string, number>;
  /** Crashes by kind: what happened, up to its first colon. */
  crashKinds: Record<string, number>;
}

export function newReport(target: string, seed: number): FuzzReport {
  return { target, seed, cases: 0, accepted: 0, rejected: 0, crashes: 0, crashExamples: [], rejections: {}, crashKinds: {} };
}

export function countRejection(r: FuzzReport, key: string): void {
  r.rejected++;
  r.rejections[key] = (r.rejections[key] ?? 0) + 1;
}

export function crash(r: FuzzReport, i: number, what: string): void {
  r.crashes++;
  const kind = what.split(":")[0] ?? what;
  r.crashKinds[kind] = (r.crashKinds[kind] ?? 0) + 1;
  if (r.crashExamples.length < 5) r.crashExamples.push(`case ${i} (seed ${r.seed}): ${what}`);
}

/** The counter key for a ProtocolError: its location without array indices, so keys stay few. */
function whereKey(where: string): string {
  return where.replace(/\[\d+\]/g, "[]");
}

/** Byte-level mutations: flips, random bytes, truncation, extension, splices. */
export function mutateBytes(rng: SeededRandom, input: Buffer): Buffer {
  let b = Buffer.from(input);
  const n = 1 + rng.int(4);
  for (let k = 0; k < n; k++) {
    const op = rng.int(6);
    if (op === 0 && b.length > 0) {
      const i = rng.int(b.length);
      b[i] = (b[i] as number) ^ (1 << rng.int(8));
    } else if (op === 1 && b.length > 0) {
      b[rng.int(b.length)] = rng.int(256);
    } else if (op === 2) {
      b = b.subarray(0, rng.int(b.length + 1));
    } else if (op === 3) {
      const extra = Buffer.alloc(1 + rng.int(64));
      for (let i = 0; i < extra.length; i++) extra[i] = rng.int(256);
      b = Buffer.concat([b, extra]);
    } else if (op === 4 && b.length > 1) {
      const from = rng.int(b.length);
      const len = 1 + rng.int(Math.min(16, b.length - from));
      const chunk = Buffer.from(b.subarray(from, from + len));
      const at = rng.int(b.length);
      b = Buffer.concat([b.subarray(0, at), chunk, b.subarray(at)]);
    } else if (b.length > 0) {
      // An interesting value over 1, 2, 4 or 8 bytes: where counts and sequences live.
      const width = rng.pick([1, 2, 4, 8]);
      const at = rng.int(b.length);
      const value = rng.pick([0x00, 0xff, 0x7f, 0x80]);
      for (let i = 0; i < width && at + i < b.length; i++) b[at + i] = value;
    }
  }
  return b;
}

// ---- wire frames ---------------------------------------------------------------------------

const FRAME_TOPICS: readonly [string, EncodingId][] = [
  [Topic.rawCpu, Encoding.cpuBatch],
  [Topic.rawMemory, Encoding.memoryBatch],
  [Topic.rawPageCache, Encoding.pageCacheBatch],
  [Topic.status, Encoding.json],
  [Topic.rawXen, Encoding.json],
];

function validPayload(rng: SeededRandom, encoding: EncodingId, topic: string): Buffer {
  const pid = 1 + rng.int(PID_MAX);
  switch (encoding) {
    case Encoding.cpuBatch:
      return encodeCpuBatch({ windowStartNs: 1_000n, windowEndNs: 101_000n, processes: [{ pid, cpuNs: rng.int(100_000) }], threads: [{ pid, tid: pid, cpuNs: rng.int(100_000) }] });
    case Encoding.memoryBatch:
      return encodeMemoryBatch({ sampledAtNs: 5n, processes: [{ pid, vmRssBytes: rng.int(1 << 30), rssAnonBytes: 0, rssFileBytes: 0, rssShmemBytes: 0, vmHwmBytes: 0 }] });
    case Encoding.pageCacheBatch:
      return encodePageCacheBatch({ sampledAtNs: 5n, untrackedInserts: 0, processes: [{ pid, insertedBytes: 4096, residentBytes: 4096 }] });
    default:
      return topic === Topic.status
        ? encodeJson({ v: 1, collector: "cpu", state: "running", counters: { restarts: 0 }, timeMs: 1 })
        : encodeXenDomainCpu({ v: 1, windowSeconds: 0.25, timeMs: 1_700_000_000_000, cpuHz: 2_596_000_000, session: 1, final: false, domains: [{ domain: 1, name: "domu1", runNs: 5000, vcpus: [{ vcpu: 0, runNs: 5000 }] }], lostRecords: 0, corrupt: 0 });
  }
}

function decodePayload(topic: string, payload: Buffer): void {
  switch (topic) {
    case Topic.rawCpu:
      decodeCpuBatch(payload);
      return;
    case Topic.rawMemory:
      decodeMemoryBatch(payload);
      return;
    case Topic.rawPageCache:
      decodePageCacheBatch(payload);
      return;
    case Topic.status:
      decodeCollectorStatus(payload);
      return;
    case Topic.rawXen:
      decodeXenDomainCpu(payload);
      return;
  }
}

/**
 * Frames as the pipeline checks them: frame count, topic, header, sequence, then the payload of
 * the topic's encoding. A few honest publishers keep sending between the mutated frames, so the
 * sequence tracker's anomaly counting is exercised against a real stream.
 */
export function fuzzWireFrames(cases: number, seed: number): FuzzReport & { lostMessages: number; sequenceAnomalies: number } {
  const rng = new SeededRandom(seed);
  const r = newReport("wire frames", seed);
  const tracker = new SequenceTracker();
  const sequences = new Map<string, bigint>();
  const publisherId = 0x1234_5678;
  for (let i = 0; i < cases; i++) {
    r.cases++;
    const [topic, encoding] = rng.pick(FRAME_TOPICS);
    const sequence = sequences.get(topic) ?? 0n;
    sequences.set(topic, sequence + 1n);
    const header = encodeHeader({ version: PROTOCOL_VERSION, encoding, publisherId, sequence, sentAtUs: 1_000_000n });
    let frames: Buffer[] = [Buffer.from(topic), header, validPayload(rng, encoding, topic)];
    if (rng.chance(0.85)) {
      const which = rng.int(3);
      frames[which] = mutateBytes(rng, frames[which] as Buffer);
      if (rng.chance(0.05)) frames = rng.chance(0.5) ? frames.slice(0, rng.int(3)) : [...frames, Buffer.from("extra")];
    }
    try {
      const msg = parseFrames(frames);
      // All in one instant: the plausible jump is the tracker's slack alone.
      tracker.observe(msg.topic, msg.header.publisherId, msg.header.sequence, 0);
      const expected = FRAME_TOPICS.find(([t]) => t === msg.topic)?.[1];
      if (expected === undefined) {
        countRejection(r, "topic not consumed");
        continue;
      }
      if (msg.header.encoding !== expected) {
        countRejection(r, "frame 1 (header) byte 3: wrong encoding for topic");
        continue;
      }
      decodePayload(msg.topic, msg.payload);
      r.accepted++;
    } catch (err) {
      if (isProtocolError(err)) countRejection(r, whereKey(err.where));
      else crash(r, i, `threw ${String(err)}`);
    }
  }
  // Each real loss is at most the slack: anything above is the old 3e21 bug back.
  if (tracker.lostTotal > cases * 10_000) crash(r, cases, `lost messages ${tracker.lostTotal} exceed what ${cases} frames could lose`);
  return { ...r, lostMessages: tracker.lostTotal, sequenceAnomalies: tracker.anomalyTotal };
}

// ---- JSON messages -------------------------------------------------------------------------

/** Values that broke receivers before: wrong types, non-integers, huge and negative numbers. */
const NASTY_VALUES: readonly unknown[] = [null, "1", "", 1e308, -1e308, -1, 0, 1.5, 4_194_305, [], {}, [null], ["1"], [1e308], [-1e308], [0], true, "NaN", { length: 3 }];
const DELETE = Symbol("delete");

/** A fresh copy, so a later mutation inside it never changes the pool or makes a cycle. */
function nastyValue(rng: SeededRandom): unknown {
  return structuredClone(rng.pick(NASTY_VALUES));
}

/** Every path to a value in a JSON tree (objects and arrays). */
function paths(value: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      const p = [...prefix, Array.isArray(value) ? Number(k) : k];
      out.push(p);
      paths(v, p, out);
    }
  }
  return out;
}

function setAt(root: unknown, path: readonly (string | number)[], value: unknown): void {
  let cur = root as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  if (value === DELETE) delete cur[last];
  else cur[last] = value;
}

/** A structurally mutated copy (fields replaced, deleted, added), or the bytes of one mutated. */
export function mutateJson(rng: SeededRandom, valid: unknown): Buffer {
  const copy: unknown = JSON.parse(JSON.stringify(valid));
  const all = paths(copy);
  const n = 1 + rng.int(3);
  for (let k = 0; k < n && all.length > 0; k++) {
    const path = rng.pick(all);
    const op = rng.int(4);
    try {
      if (op === 0) setAt(copy, path, DELETE);
      else if (op === 1) setAt(copy, [...path.slice(0, -1), `extra${rng.int(5)}`], nastyValue(rng));
      else setAt(copy, path, nastyValue(rng));
    } catch {
      // The path went away with an earlier mutation in this case: try the next one.
    }
  }
  const text = encodeJson(copy);
  return rng.chance(0.25) ? mutateBytes(rng, text) : text;
}

function isPidList(v: unknown): boolean {
  return Array.isArray(v) && v.every((p) => Number.isInteger(p) && (p as number) >= 1 && (p as number) <= PID_MAX);
}

function finiteNonNegative(...values: unknown[]): boolean {
  return values.every((v) => typeof v === "number" && Number.isFinite(v) && v >= 0);
}

/** What an actuator relies on in an aggregate it accepted. */
function aggregateViolation(a: CageAggregate): string | null {
  if (!isPidList(a.vm.pids) || !isPidList(a.ids.pids)) return "pids not a list of PIDs";
  for (const role of [a.vm, a.ids]) {
    if (role.startTimes.length !== role.pids.length || !role.startTimes.every((t) => Number.isSafeInteger(t) && t >= 0)) return "start times not one non-negative integer per PID";
    if (new Set(role.pids).size !== role.pids.length) return "a PID listed twice";
  }
  if (!finiteNonNegative(a.timeMs, a.vm.cpuPct, a.vm.rssBytes, a.ids.cpuPct, a.ids.rssBytes, a.ids.pageCacheBytes, a.totalPct)) return "a figure is not a finite number ≥ 0";
  if (!(a.capPct > 0) || !(a.windowSeconds > 0)) return "capPct or windowSeconds not > 0";
  if (typeof a.cage !== "string" || a.cage === "") return "cage not a non-empty string";
  return null;
}

function fuzzJson<T>(target: string, cases: number, seed: number, valid: readonly unknown[], decode: (b: Buffer) => T, violation: (v: T) => string | null): FuzzReport {
  const rng = new SeededRandom(seed);
  const r = newReport(target, seed);
  for (let i = 0; i < cases; i++) {
    r.cases++;
    const input = rng.chance(0.05) ? encodeJson(rng.pick(valid)) : mutateJson(rng, rng.pick(valid));
    try {
      const value = decode(input);
      const bad = violation(value);
      if (bad !== null) crash(r, i, `accepted a malformed message (${bad}): ${input.toString("utf8").slice(0, 200)}`);
      else r.accepted++;
    } catch (err) {
      if (isProtocolError(err)) countRejection(r, whereKey(err.where));
      else crash(r, i, `threw ${String(err)}`);
    }
  }
  return r;
}

export const VALID_AGGREGATES: readonly CageAggregate[] = [
  {
    v: 1, cage: "web", timeMs: 1_700_000_000_000, windowSeconds: 0.1,
    vm: { cpuPct: 50, pids: [4100, 4101], startTimes: [91234, 91240], rssBytes: 1 << 30 },
    ids: { cpuPct: 20, pids: [5120], startTimes: [95000], rssBytes: 1 << 26, pageCacheBytes: 4096 },
    totalPct: 70, capPct: 150, idsCapPct: 40, weight: 2, memory: { baseBytes: 4 * 2 ** 30, floorBytes: 2 ** 30 },
  },
  {
    v: 1, cage: "x", timeMs: 1, windowSeconds: 0.25,
    vm: { cpuPct: 0, pids: [], startTimes: [], rssBytes: 0 },
    ids: { cpuPct: 0, pids: [], startTimes: [], rssBytes: 0, pageCacheBytes: 0 },
    totalPct: 0, capPct: 50, idsCapPct: null, weight: null, memory: { baseBytes: null, floorBytes: null },
  },
];

export function fuzzAggregates(cases: number, seed: number): FuzzReport {
  return fuzzJson("cage aggregates", cases, seed, VALID_AGGREGATES, decodeCageAggregate, aggregateViolation);
}

const VALID_STATES: readonly ActuatorState[] = [
  { v: 1, actuator: "cpu", cage: "web", timeMs: 1_700_000_000_000, mode: "active", backend: "cgroup-v2", values: { vmCpuCapPct: 30, invalidAggregates: 0 } },
  { v: 1, actuator: "limiter", cage: "web", timeMs: 5, mode: "failsafe", backend: "sigstop", values: { idsCapPct: 20, idsStoppedPids: 1 } },
];
const VALID_DECISIONS: readonly ActuatorDecision[] = [
  { v: 1, actuator: "cpu", cage: "web", timeMs: 1_700_000_000_000, setting: "vm.cpu.cap", from: 50, to: 30, reason: "ids 20%", dryRun: false },
  { v: 1, actuator: "balloon", cage: "db", timeMs: 2, setting: "vm.memory.target", from: null, to: 1 << 30, reason: "stale", dryRun: true, error: "EIO" },
];

export function fuzzActuatorMessages(cases: number, seed: number): FuzzReport {
  const half = Math.ceil(cases / 2);
  const states = fuzzJson("actuator state", half, seed, VALID_STATES, decodeActuatorState, (s) =>
    ["active", "failsafe", "dry-run", "error"].includes(s.mode) && Object.values(s.values).every((v) => typeof v === "number" && Number.isFinite(v)) ? null : "mode or values malformed",
  );
  const decisions = fuzzJson("actuator decision", cases - half, seed + 1, VALID_DECISIONS, decodeActuatorDecision, (d) =>
    [d.from, d.to].every((v) => v === null || (typeof v === "number" && Number.isFinite(v))) && typeof d.dryRun === "boolean" ? null : "from/to/dryRun malformed",
  );
  const rejections: Record<string, number> = { ...states.rejections };
  for (const [k, v] of Object.entries(decisions.rejections)) rejections[k] = (rejections[k] ?? 0) + v;
  return {
    target: "actuator messages",
    seed,
    cases: states.cases + decisions.cases,
    accepted: states.accepted + decisions.accepted,
    rejected: states.rejected + decisions.rejected,
    crashes: states.crashes + decisions.crashes,
    crashExamples: [...states.crashExamples, ...decisions.crashExamples].slice(0, 5),
    rejections,
    crashKinds: { ...states.crashKinds, ...decisions.crashKinds },
  };
}

// ---- cage files ----------------------------------------------------------------------------

const VALID_CONFIG = `agent:
  runtimeDir: /run/offloadcage
  resolveMs: 500
  actuators:
    cpu: { periodMs: 100, staleAfterMs: 1000 }
    limiter: { mode: sigstop, failsafe: hold }
    balloon: { xlPath: xl, virshPath: /usr/bin/virsh }
cages:
  - name: web
    vm:
      kind: qemu
      match: [{ comm: qemu-system-x86, descendants: true }]
      qmpSocket: /run/qemu/web.qmp
    ids:
      - { exe: /usr/bin/aide, user: root }
      - { cmdline: '^/usr/bin/suricata\\b.*-i tap0', uid: [0, 65534], allowNonRoot: true }
      - { cgroup: /sys/fs/cgroup/unified/ids1, uid: 0 }
    cpu: { cap: 150, idsCap: 40, weight: 2, vmFloor: 20, vmCeiling: 140, failsafeCap: 100 }
    memory: { base: 4GiB, floor: 1GiB, failsafe: 3GiB }
  - name: db
    vm: { kind: cgroup, path: /sys/fs/cgroup/unified/db }
    cpu: { cap: 50 }
`;

/** Values a hand-edited file might hold where another belongs. */
const NASTY_SCALARS: readonly string[] = [
  "..", "../etc", "/sys/fs/cgroup/../../etc", "./xl", "sh", "(a)\\\\1", "'(?=x)y'", "-1", "0", "1e308", "-1e308", "null", "~", "[]", "{}",
  "\"\"", "true", "99999999999999999999", "4GiB", "lots", "/", "'((('", "0x10", "1.5", "&anchor", "*alias", "!!binary x", "'a\\tb'",
];

function mutateConfig(rng: SeededRandom, text: string): string {
  let lines = text.split("\n");
  const n = 1 + rng.int(3);
  for (let k = 0; k < n; k++) {
    const op = rng.int(6);
    const i = rng.int(lines.length);
    const line = lines[i] ?? "";
    if (op === 0) {
      lines.splice(i, 1);
    } else if (op === 1) {
      lines.splice(i, 0, line);
    } else if (op === 2 || op === 3) {
      // Replace one value after a "key:" with a nasty one.
      const colons = [...line.matchAll(/:\s/g)].map((m) => m.index);
      if (colons.length > 0) {
        const at = rng.pick(colons) + 2;
        const end = line.slice(at).search(/[,}\]]|$/);
        lines[i] = `${line.slice(0, at)}${rng.pick(NASTY_SCALARS)}${line.slice(at + (end < 0 ? 0 : end))}`;
      }
    } else if (op === 4 && rng.chance(0.3)) {
      lines[i] = mutateBytes(rng, Buffer.from(line)).toString("latin1");
    } else {
      const j = rng.int(lines.length);
      [lines[i], lines[j]] = [lines[j] ?? "", line];
    }
  }
  if (rng.chance(0.02)) lines = lines.slice(0, rng.int(lines.length));
  return lines.join("\n");
}

/** A problem's path as a counter name: indices dropped, a mangled key named as what it is. */
function configCounterKey(path: string, message: string): string {
  if (message.startsWith("unknown field")) return `${path.replace(/\[\d+\]/g, "[]").replace(/(\.[^.[]*|\["[^\]]*"\])$/, "")}: unknown field`;
  return path.replace(/\[\d+\]/g, "[]");
}

export function fuzzConfigFiles(cases: number, seed: number): FuzzReport {
  const rng = new SeededRandom(seed);
  const r = newReport("config files", seed);
  // The valid file must load, or every case would be a rejection and prove nothing.
  parseConfigText(VALID_CONFIG, "fuzz.yaml");
  for (let i = 0; i < cases; i++) {
    r.cases++;
    const text = mutateConfig(rng, VALID_CONFIG);
    try {
      parseConfigText(text, "fuzz.yaml");
      r.accepted++;
    } catch (err) {
      if (!isConfigError(err)) {
        crash(r, i, `threw ${String(err)}`);
        continue;
      }
      const first = err.problems[0];
      // Counted by the field (indices dropped) or YAML syntax, as cage validate would report it.
      const key = first === undefined ? "(no problem listed)" : first.path === "" ? first.message.split(":")[0] ?? "" : configCounterKey(first.path, first.message);
      countRejection(r, key);
      if (err.problems.some((p) => p.line !== undefined && (!Number.isInteger(p.line) || p.line < 1))) crash(r, i, "a problem with a line that is not a line number");
    }
  }
  return r;
}

export const FUZZ_TARGETS: readonly { name: string; run: (cases: number, seed: number) => FuzzReport }[] = [
  { name: "wireFrames", run: fuzzWireFrames },
  { name: "aggregates", run: fuzzAggregates },
  { name: "actuatorMessages", run: fuzzActuatorMessages },
  { name: "configFiles", run: fuzzConfigFiles },
];
