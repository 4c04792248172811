/**
 * The per-cage aggregate, published by the pipeline once per window for every cage together on
 * `agg.window` and, while someone subscribes to it, one per cage on `agg.cage` (JSON, encoding 3);
 * the IDS memory of the cages whose IDS memory moved, on `agg.memory` between windows; and the
 * collector status message on `status`. Actuators and third-party consumers read these;
 * docs/protocol.md documents every field. Add fields, never change the meaning of one
 * (bump PROTOCOL_VERSION for that).
 */
import { isPlainObject, nullableNumberField, numberField, objectField, parseJsonObject, pidsField, startTimesField, stringField, type NumberRange } from "./jsonFields.js";
import { ProtocolError } from "./wireFormat.js";

/**
 * What a QEMU VM's host threads do for it: `vcpu` runs guest code, `vhost` moves the virtual
 * NIC's packets in the host kernel, `emulator` is everything else (main loop, I/O threads, RCU,
 * workers). The keys of `vm.cpuPctByKind`, and the `kind` label of cage_vm_cpu_seconds_total.
 */
export const VM_CPU_KINDS = ["vcpu", "emulator", "vhost"] as const;
export type VmCpuKind = (typeof VM_CPU_KINDS)[number];

export interface CageAggregate {
  /** Aggregate schema version; equals PROTOCOL_VERSION. */
  v: 1;
  cage: string;
  /** Wall clock at the window's end, milliseconds since the Unix epoch. */
  timeMs: number;
  /** Length of the window the CPU figures cover. */
  windowSeconds: number;
  vm: {
    /** On-CPU time of the VM's processes (or domain) over the window, % of one CPU. */
    cpuPct: number;
    pids: number[];
    /** startTimes[i] is the start time of pids[i] (field 22 of /proc/PID/stat): with it a PID names one process. */
    startTimes: number[];
    rssBytes: number;
    /**
     * QEMU VMs (vm.kind qemu or libvirt) only: cpuPct split by what the VM's host threads do;
     * the three sum to cpuPct. Absent for the other VM kinds.
     */
    cpuPctByKind?: Record<VmCpuKind, number>;
  };
  ids: {
    cpuPct: number;
    pids: number[];
    startTimes: number[];
    /** Sum of VmRSS of the IDS processes (latest /proc sample). */
    rssBytes: number;
    /**
     * Page cache the IDS's file reads added that is still resident (eBPF attribution, including
     * exited IDS processes' cache); 0 when the page cache collector is not running.
     */
    pageCacheBytes: number;
    /**
     * Cages with a Xen IDS-VM charged by CR3 (`cr3From: helper`) only: that VM's CPU outside its
     * IDS processes' address spaces, % of one CPU. It is the IDS-VM's own, in neither cpuPct nor totalPct.
     */
    idsVmOwnCpuPct?: number;
  };
  /** vm.cpuPct + ids.cpuPct. */
  totalPct: number;
  /** The cage's configured cap, % of one CPU. */
  capPct: number;
  idsCapPct: number | null;
  weight: number | null;
  memory: { baseBytes: number | null; floorBytes: number | null };
}

export interface CollectorStatus {
  v: 1;
  collector: string;
  /** "started" | "running" | "restarting" | "error" */
  state: string;
  message?: string;
  /** Cumulative counters since the collector process started. */
  counters: Record<string, number>;
  timeMs: number;
}

/** Every cage's aggregate for one window: the `agg.window` payload. */
export interface CageAggregates {
  /** Schema version; equals PROTOCOL_VERSION. */
  v: 1;
  /** One per configured cage, in the cage file's order. */
  aggregates: CageAggregate[];
}

export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}

export function encodeCageAggregates(aggregates: readonly CageAggregate[]): Buffer {
  return encodeJson({ v: 1, aggregates });
}

const AGG = "cage aggregate";
// One range object per rule, not one per field per aggregate.
const AT_LEAST_0: NumberRange = Object.freeze({ min: 0 });
const ABOVE_0: NumberRange = Object.freeze({ above: 0 });
const AGGS = "cage aggregates";

/** What a receiver may act on from one `agg.window` message, and the aggregates it had to drop. */
export interface DecodedCageAggregates {
  aggregates: CageAggregate[];
  /** One per malformed aggregate, naming its index; the well-formed ones are still in `aggregates`. */
  rejected: ProtocolError[];
}

/**
 * Decodes an `agg.window` message. The envelope (JSON object, `v`, `aggregates` an array) must be
 * right or the whole message is rejected; each aggregate is then checked on its own, as
 * decodeCageAggregate does, so one malformed cage does not stop the others being acted on.
 * A cage named twice keeps its first aggregate; the second is rejected.
 */
export function decodeCageAggregates(b: Buffer): DecodedCageAggregates {
  const o = parseJsonObject(b, AGGS);
  if (o.v !== 1) throw new ProtocolError(`frame 2 (${AGGS}) field v`, `unsupported aggregates version ${String(o.v)}`);
  const { items: aggregates, rejected } = perCageElements(o, "aggregates", AGGS, cageAggregateFrom);
  return { aggregates, rejected };
}

/**
 * The elements of a per-cage list field, each checked on its own by `from`: a malformed element,
 * or one naming a cage an earlier element named, is rejected alone. The field must be an array.
 */
function perCageElements<T extends { cage: string }>(o: Record<string, unknown>, key: string, what: string, from: (item: Record<string, unknown>, what: string) => T): { items: T[]; rejected: ProtocolError[] } {
  const list = o[key];
  if (!Array.isArray(list)) throw new ProtocolError(`frame 2 (${what}) field ${key}`, "must be an array");
  const items: T[] = [];
  const rejected: ProtocolError[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < list.length; i++) {
    try {
      const item: unknown = list[i];
      if (!isPlainObject(item)) throw new ProtocolError(`frame 2 (${what}[${i}])`, "must be a JSON object");
      const checked = checkedElement(item, i, what, from);
      if (seen.has(checked.cage)) throw new ProtocolError(`frame 2 (${what}[${i}]) field cage`, `cage ${JSON.stringify(checked.cage)} appears twice in one message`);
      seen.add(checked.cage);
      items.push(checked);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      rejected.push(err);
    }
  }
  return { items, rejected };
}

/**
 * `from` on one element, named by the list alone while it passes: the element's own name
 * (`what[i]`) is a string per element per message, built only to name a rejected one. `from` is
 * pure, so checking a rejected element again under its own name throws the same error, named.
 */
function checkedElement<T>(item: Record<string, unknown>, i: number, what: string, from: (item: Record<string, unknown>, what: string) => T): T {
  try {
    return from(item, what);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    return from(item, `${what}[${i}]`);
  }
}

/** One cage's IDS memory as the pipeline holds it now: an element of `agg.memory`. */
export interface CageIdsMemory {
  cage: string;
  /** The same two figures, with the same meaning, as the cage aggregate's `ids.rssBytes` and `ids.pageCacheBytes`. */
  ids: { rssBytes: number; pageCacheBytes: number };
}

/** The `agg.memory` payload: the cages whose IDS memory moved since the pipeline's previous `agg.memory`. */
export interface CageIdsMemoryUpdate {
  v: 1;
  /** Wall clock when the pipeline took the figures, ms since the Unix epoch. */
  timeMs: number;
  cages: CageIdsMemory[];
}

export function encodeCageIdsMemoryUpdate(update: CageIdsMemoryUpdate): Buffer {
  return encodeJson(update);
}

const MEM = "cage IDS memory";

/** What a receiver may act on from one `agg.memory` message, and the elements it had to drop. */
export interface DecodedCageIdsMemoryUpdate {
  timeMs: number;
  cages: CageIdsMemory[];
  rejected: ProtocolError[];
}

/**
 * Decodes an `agg.memory` message: the envelope (JSON object, `v` 1, `timeMs`, `cages` an array)
 * or the whole message is rejected; then each element on its own, as in `agg.window`.
 */
export function decodeCageIdsMemoryUpdate(b: Buffer): DecodedCageIdsMemoryUpdate {
  const o = parseJsonObject(b, MEM);
  if (o.v !== 1) throw new ProtocolError(`frame 2 (${MEM}) field v`, `unsupported IDS memory version ${String(o.v)}`);
  const timeMs = numberField(o, "timeMs", AT_LEAST_0, MEM);
  const { items: cages, rejected } = perCageElements(o, "cages", MEM, (item, what) => {
    const ids = objectField(item, "ids", what);
    return {
      cage: stringField(item, "cage", what, true),
      ids: { rssBytes: numberField(ids, "rssBytes", AT_LEAST_0, what, "ids.rssBytes"), pageCacheBytes: numberField(ids, "pageCacheBytes", AT_LEAST_0, what, "ids.pageCacheBytes") },
    };
  });
  return { timeMs, cages, rejected };
}

/**
 * Decodes and fully checks an aggregate: every field's type and range, PIDs integers in
 * [1, PID_MAX], each with one start time (a non-negative integer). Actuators act on what this
 * returns, so nothing malformed gets past it. startTimes is required: a PID without its start
 * time could name a process that reused the number, and acting on it is what it exists to stop.
 */
export function decodeCageAggregate(b: Buffer): CageAggregate {
  return cageAggregateFrom(parseJsonObject(b, AGG), AGG);
}

/** Checks one parsed aggregate; errors name `what` (the payload, or the aggregate's index in a batch). */
function cageAggregateFrom(o: Record<string, unknown>, what: string): CageAggregate {
  if (o.v !== 1) throw new ProtocolError(`frame 2 (${what}) field v`, `unsupported aggregate version ${String(o.v)}`);
  const cage = stringField(o, "cage", what, true);
  const timeMs = numberField(o, "timeMs", AT_LEAST_0, what);
  const windowSeconds = numberField(o, "windowSeconds", ABOVE_0, what);
  const vm = objectField(o, "vm", what);
  const ids = objectField(o, "ids", what);
  const memory = objectField(o, "memory", what);
  const vmPids = pidsField(vm, "pids", what, "vm.pids");
  const idsPids = pidsField(ids, "pids", what, "ids.pids");
  // Added within version 1, optional: present only for QEMU VMs, and then complete.
  const vmCpuPct = numberField(vm, "cpuPct", AT_LEAST_0, what, "vm.cpuPct");
  const cpuPctByKind = vm.cpuPctByKind === undefined ? undefined : cpuPctByKindField(objectField(vm, "cpuPctByKind", what, "vm.cpuPctByKind"), vmCpuPct, what);
  const vmOut: CageAggregate["vm"] = {
    cpuPct: vmCpuPct,
    pids: vmPids,
    startTimes: startTimesField(vm, "startTimes", vmPids, what, "vm.startTimes"),
    rssBytes: numberField(vm, "rssBytes", AT_LEAST_0, what, "vm.rssBytes"),
  };
  if (cpuPctByKind !== undefined) vmOut.cpuPctByKind = cpuPctByKind;
  const idsOut: CageAggregate["ids"] = {
    cpuPct: numberField(ids, "cpuPct", AT_LEAST_0, what, "ids.cpuPct"),
    pids: idsPids,
    startTimes: startTimesField(ids, "startTimes", idsPids, what, "ids.startTimes"),
    rssBytes: numberField(ids, "rssBytes", AT_LEAST_0, what, "ids.rssBytes"),
    // Added within version 1: an aggregate from an older publisher lacks it and means "not measured".
    pageCacheBytes: ids.pageCacheBytes === undefined ? 0 : numberField(ids, "pageCacheBytes", AT_LEAST_0, what, "ids.pageCacheBytes"),
  };
  // Added within version 1, optional: present only for cages with a cr3From: helper IDS-VM.
  if (ids.idsVmOwnCpuPct !== undefined) idsOut.idsVmOwnCpuPct = numberField(ids, "idsVmOwnCpuPct", AT_LEAST_0, what, "ids.idsVmOwnCpuPct");
  return {
    v: 1,
    cage,
    timeMs,
    windowSeconds,
    vm: vmOut,
    ids: idsOut,
    totalPct: numberField(o, "totalPct", AT_LEAST_0, what),
    capPct: numberField(o, "capPct", ABOVE_0, what),
    idsCapPct: nullableNumberField(o, "idsCapPct", ABOVE_0, what),
    weight: nullableNumberField(o, "weight", ABOVE_0, what),
    memory: {
      baseBytes: nullableNumberField(memory, "baseBytes", AT_LEAST_0, what, "memory.baseBytes"),
      floorBytes: nullableNumberField(memory, "floorBytes", AT_LEAST_0, what, "memory.floorBytes"),
    },
  };
}

/**
 * Every kind present, each a finite number ≥ 0, and together no more than the VM's cpuPct (a
 * rounding's worth over is accepted). Other keys are ignored, so a kind added later does not
 * make older receivers reject the aggregate.
 */
function cpuPctByKindField(o: Record<string, unknown>, cpuPct: number, what: string): Record<VmCpuKind, number> {
  const out = {} as Record<VmCpuKind, number>;
  let sum = 0;
  for (const kind of VM_CPU_KINDS) {
    out[kind] = numberField(o, kind, AT_LEAST_0, what, `vm.cpuPctByKind.${kind}`);
    sum += out[kind];
  }
  if (sum > cpuPct + 1e-9 * Math.max(1, cpuPct)) {
    throw new ProtocolError(`frame 2 (${what}) field vm.cpuPctByKind`, `its kinds sum to ${sum}, more than vm.cpuPct ${cpuPct}`);
  }
  return out;
}

export function decodeCollectorStatus(b: Buffer): CollectorStatus {
  const o = parseJsonObject(b, "collector status");
  if (o.v !== 1) throw new ProtocolError("frame 2 (collector status) field v", `unsupported status version ${String(o.v)}`);
  if (typeof o.collector !== "string") throw new ProtocolError("frame 2 (collector status) field collector", "must be a string");
  if (typeof o.state !== "string") throw new ProtocolError("frame 2 (collector status) field state", "must be a string");
  return o as unknown as CollectorStatus;
}

/** The (PID, start time) pairs of one role of an aggregate. */
export function processesOf(role: { pids: readonly number[]; startTimes: readonly number[] }): { pid: number; startTime: number }[] {
  return role.pids.map((pid, i) => ({ pid, startTime: role.startTimes[i]! }));
}
