/**
 * The per-cage aggregate the pipeline publishes on `agg.cage` (JSON, encoding 3), and the
 * collector status message on `status`. Actuators and third-party consumers read these;
 * docs/protocol.md documents every field. Add fields, never change the meaning of one
 * (bump PROTOCOL_VERSION for that).
 */
import { nullableNumberField, numberField, objectField, parseJsonObject, pidsField, startTimesField, stringField } from "./jsonFields.js";
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

export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}

const AGG = "cage aggregate";

/**
 * Decodes and fully checks an aggregate: every field's type and range, PIDs integers in
 * [1, PID_MAX], each with one start time (a non-negative integer). Actuators act on what this
 * returns, so nothing malformed gets past it. startTimes is required: a PID without its start
 * time could name a process that reused the number, and acting on it is what it exists to stop.
 */
export function decodeCageAggregate(b: Buffer): CageAggregate {
  const o = parseJsonObject(b, AGG);
  if (o.v !== 1) throw new ProtocolError(`frame 2 (${AGG}) field v`, `unsupported aggregate version ${String(o.v)}`);
  const cage = stringField(o, "cage", AGG, true);
  const timeMs = numberField(o, "timeMs", { min: 0 }, AGG);
  const windowSeconds = numberField(o, "windowSeconds", { above: 0 }, AGG);
  const vm = objectField(o, "vm", AGG);
  const ids = objectField(o, "ids", AGG);
  const memory = objectField(o, "memory", AGG);
  const vmPids = pidsField(vm, "pids", AGG, "vm.pids");
  const idsPids = pidsField(ids, "pids", AGG, "ids.pids");
  // Added within version 1, optional: present only for QEMU VMs, and then complete.
  const vmCpuPct = numberField(vm, "cpuPct", { min: 0 }, AGG, "vm.cpuPct");
  const cpuPctByKind = vm.cpuPctByKind === undefined ? undefined : cpuPctByKindField(objectField(vm, "cpuPctByKind", AGG, "vm.cpuPctByKind"), vmCpuPct);
  return {
    v: 1,
    cage,
    timeMs,
    windowSeconds,
    vm: {
      cpuPct: vmCpuPct,
      pids: vmPids,
      startTimes: startTimesField(vm, "startTimes", vmPids, AGG, "vm.startTimes"),
      rssBytes: numberField(vm, "rssBytes", { min: 0 }, AGG, "vm.rssBytes"),
      ...(cpuPctByKind === undefined ? {} : { cpuPctByKind }),
    },
    ids: {
      cpuPct: numberField(ids, "cpuPct", { min: 0 }, AGG, "ids.cpuPct"),
      pids: idsPids,
      startTimes: startTimesField(ids, "startTimes", idsPids, AGG, "ids.startTimes"),
      rssBytes: numberField(ids, "rssBytes", { min: 0 }, AGG, "ids.rssBytes"),
      // Added within version 1: an aggregate from an older publisher lacks it and means "not measured".
      pageCacheBytes: ids.pageCacheBytes === undefined ? 0 : numberField(ids, "pageCacheBytes", { min: 0 }, AGG, "ids.pageCacheBytes"),
      // Added within version 1, optional: present only for cages with a cr3From: helper IDS-VM.
      ...(ids.idsVmOwnCpuPct === undefined ? {} : { idsVmOwnCpuPct: numberField(ids, "idsVmOwnCpuPct", { min: 0 }, AGG, "ids.idsVmOwnCpuPct") }),
    },
    totalPct: numberField(o, "totalPct", { min: 0 }, AGG),
    capPct: numberField(o, "capPct", { above: 0 }, AGG),
    idsCapPct: nullableNumberField(o, "idsCapPct", { above: 0 }, AGG),
    weight: nullableNumberField(o, "weight", { above: 0 }, AGG),
    memory: {
      baseBytes: nullableNumberField(memory, "baseBytes", { min: 0 }, AGG, "memory.baseBytes"),
      floorBytes: nullableNumberField(memory, "floorBytes", { min: 0 }, AGG, "memory.floorBytes"),
    },
  };
}

/**
 * Every kind present, each a finite number ≥ 0, and together no more than the VM's cpuPct (a
 * rounding's worth over is accepted). Other keys are ignored, so a kind added later does not
 * make older receivers reject the aggregate.
 */
function cpuPctByKindField(o: Record<string, unknown>, cpuPct: number): Record<VmCpuKind, number> {
  const out = {} as Record<VmCpuKind, number>;
  let sum = 0;
  for (const kind of VM_CPU_KINDS) {
    out[kind] = numberField(o, kind, { min: 0 }, AGG, `vm.cpuPctByKind.${kind}`);
    sum += out[kind];
  }
  if (sum > cpuPct + 1e-9 * Math.max(1, cpuPct)) {
    throw new ProtocolError(`frame 2 (${AGG}) field vm.cpuPctByKind`, `its kinds sum to ${sum}, more than vm.cpuPct ${cpuPct}`);
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
