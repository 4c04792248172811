/**
 * Binary batch encodings for the high-rate collector topics (raw.cpu, raw.mem).
 * Fixed-size little-endian records after a small fixed header; docs/protocol.md has the tables.
 */
import { ProtocolError } from "./wireFormat.js";

export interface ProcessCpu {
  pid: number;
  /** On-CPU nanoseconds of all the process's threads within the window. */
  cpuNs: number;
}

export interface ThreadCpu {
  pid: number;
  tid: number;
  cpuNs: number;
}

/** On-CPU time per process and per thread over one window of the CPU collector. */
export interface CpuBatch {
  /** CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns) at the window's start and end. */
  windowStartNs: bigint;
  windowEndNs: bigint;
  processes: ProcessCpu[];
  threads: ThreadCpu[];
}

const CPU_HEADER = 24;
const CPU_PROCESS = 12;
const CPU_THREAD = 16;

export function encodeCpuBatch(batch: CpuBatch): Buffer {
  const b = Buffer.alloc(CPU_HEADER + batch.processes.length * CPU_PROCESS + batch.threads.length * CPU_THREAD);
  b.writeBigUInt64LE(batch.windowStartNs, 0);
  b.writeBigUInt64LE(batch.windowEndNs, 8);
  b.writeUInt32LE(batch.processes.length, 16);
  b.writeUInt32LE(batch.threads.length, 20);
  let o = CPU_HEADER;
  for (const p of batch.processes) {
    b.writeUInt32LE(p.pid, o);
    b.writeBigUInt64LE(BigInt(Math.round(p.cpuNs)), o + 4);
    o += CPU_PROCESS;
  }
  for (const t of batch.threads) {
    b.writeUInt32LE(t.pid, o);
    b.writeUInt32LE(t.tid, o + 4);
    b.writeBigUInt64LE(BigInt(Math.round(t.cpuNs)), o + 8);
    o += CPU_THREAD;
  }
  return b;
}

export function decodeCpuBatch(b: Buffer): CpuBatch {
  if (b.length < CPU_HEADER) {
    throw new ProtocolError("frame 2 (cpu batch)", `needs at least ${CPU_HEADER} bytes, got ${b.length}`);
  }
  const windowStartNs = b.readBigUInt64LE(0);
  const windowEndNs = b.readBigUInt64LE(8);
  const np = b.readUInt32LE(16);
  const nt = b.readUInt32LE(20);
  const expected = CPU_HEADER + np * CPU_PROCESS + nt * CPU_THREAD;
  if (b.length !== expected) {
    throw new ProtocolError("frame 2 (cpu batch) byte 16", `counts say ${np} processes + ${nt} threads = ${expected} bytes, frame has ${b.length}`);
  }
  if (windowEndNs < windowStartNs) {
    throw new ProtocolError("frame 2 (cpu batch) byte 8", `window ends (${windowEndNs}) before it starts (${windowStartNs})`);
  }
  // Plain loops over fixed offsets: this is the pipeline's hot path (bench/pipelineIngest).
  const processes: ProcessCpu[] = new Array<ProcessCpu>(np);
  let o = CPU_HEADER;
  for (let i = 0; i < np; i++) {
    processes[i] = { pid: b.readUInt32LE(o), cpuNs: readU64AsNumber(b, o + 4) };
    o += CPU_PROCESS;
  }
  const threads: ThreadCpu[] = new Array<ThreadCpu>(nt);
  for (let i = 0; i < nt; i++) {
    threads[i] = { pid: b.readUInt32LE(o), tid: b.readUInt32LE(o + 4), cpuNs: readU64AsNumber(b, o + 8) };
    o += CPU_THREAD;
  }
  return { windowStartNs, windowEndNs, processes, threads };
}

/** /proc/PID/status memory figures, in bytes. Absent fields (kernel threads) are 0. */
export interface ProcessMemory {
  pid: number;
  vmRssBytes: number;
  rssAnonBytes: number;
  rssFileBytes: number;
  rssShmemBytes: number;
  vmHwmBytes: number;
}

export interface MemoryBatch {
  /** CLOCK_MONOTONIC nanoseconds when the sample was taken. */
  sampledAtNs: bigint;
  processes: ProcessMemory[];
}

const MEM_HEADER = 12;
const MEM_PROCESS = 44;

export function encodeMemoryBatch(batch: MemoryBatch): Buffer {
  const b = Buffer.alloc(MEM_HEADER + batch.processes.length * MEM_PROCESS);
  b.writeBigUInt64LE(batch.sampledAtNs, 0);
  b.writeUInt32LE(batch.processes.length, 8);
  let o = MEM_HEADER;
  for (const p of batch.processes) {
    b.writeUInt32LE(p.pid, o);
    b.writeBigUInt64LE(BigInt(p.vmRssBytes), o + 4);
    b.writeBigUInt64LE(BigInt(p.rssAnonBytes), o + 12);
    b.writeBigUInt64LE(BigInt(p.rssFileBytes), o + 20);
    b.writeBigUInt64LE(BigInt(p.rssShmemBytes), o + 28);
    b.writeBigUInt64LE(BigInt(p.vmHwmBytes), o + 36);
    o += MEM_PROCESS;
  }
  return b;
}

export function decodeMemoryBatch(b: Buffer): MemoryBatch {
  if (b.length < MEM_HEADER) {
    throw new ProtocolError("frame 2 (memory batch)", `needs at least ${MEM_HEADER} bytes, got ${b.length}`);
  }
  const n = b.readUInt32LE(8);
  const expected = MEM_HEADER + n * MEM_PROCESS;
  if (b.length !== expected) {
    throw new ProtocolError("frame 2 (memory batch) byte 8", `count says ${n} processes = ${expected} bytes, frame has ${b.length}`);
  }
  const processes: ProcessMemory[] = new Array<ProcessMemory>(n);
  let o = MEM_HEADER;
  for (let i = 0; i < n; i++) {
    processes[i] = {
      pid: b.readUInt32LE(o),
      vmRssBytes: readU64AsNumber(b, o + 4),
      rssAnonBytes: readU64AsNumber(b, o + 12),
      rssFileBytes: readU64AsNumber(b, o + 20),
      rssShmemBytes: readU64AsNumber(b, o + 28),
      vmHwmBytes: readU64AsNumber(b, o + 36),
    };
    o += MEM_PROCESS;
  }
  return { sampledAtNs: b.readBigUInt64LE(0), processes };
}

/** u64 as a JS number: exact below 2^53 (104 days of ns, 8 PiB of bytes), which these fields stay under. */
function readU64AsNumber(b: Buffer, offset: number): number {
  return b.readUInt32LE(offset) + b.readUInt32LE(offset + 4) * 0x1_0000_0000;
}

/** Page cache charged to the process that inserted it (cumulative since the collector started). */
export interface ProcessPageCache {
  pid: number;
  /** Bytes this process added to the page cache, ever. */
  insertedBytes: number;
  /** Bytes it added that are still cached (inserted − evicted by anyone). */
  residentBytes: number;
}

export interface PageCacheBatch {
  /** CLOCK_MONOTONIC nanoseconds when the kernel maps were read. */
  sampledAtNs: bigint;
  /** Page insertions by tracked processes that did not fit the kernel's ownership map, ever. */
  untrackedInserts: number;
  processes: ProcessPageCache[];
}

const PC_HEADER = 20;
const PC_PROCESS = 20;

export function encodePageCacheBatch(batch: PageCacheBatch): Buffer {
  const b = Buffer.alloc(PC_HEADER + batch.processes.length * PC_PROCESS);
  b.writeBigUInt64LE(batch.sampledAtNs, 0);
  b.writeBigUInt64LE(BigInt(batch.untrackedInserts), 8);
  b.writeUInt32LE(batch.processes.length, 16);
  let o = PC_HEADER;
  for (const p of batch.processes) {
    b.writeUInt32LE(p.pid, o);
    b.writeBigUInt64LE(BigInt(p.insertedBytes), o + 4);
    // Resident can dip below zero transiently (eviction seen before insertion): clamp on the wire.
    b.writeBigUInt64LE(BigInt(Math.max(0, p.residentBytes)), o + 12);
    o += PC_PROCESS;
  }
  return b;
}

export function decodePageCacheBatch(b: Buffer): PageCacheBatch {
  if (b.length < PC_HEADER) {
    throw new ProtocolError("frame 2 (page cache batch)", `needs at least ${PC_HEADER} bytes, got ${b.length}`);
  }
  const n = b.readUInt32LE(16);
  const expected = PC_HEADER + n * PC_PROCESS;
  if (b.length !== expected) {
    throw new ProtocolError("frame 2 (page cache batch) byte 16", `count says ${n} processes = ${expected} bytes, frame has ${b.length}`);
  }
  const processes: ProcessPageCache[] = new Array<ProcessPageCache>(n);
  let o = PC_HEADER;
  for (let i = 0; i < n; i++) {
    processes[i] = { pid: b.readUInt32LE(o), insertedBytes: readU64AsNumber(b, o + 4), residentBytes: readU64AsNumber(b, o + 12) };
    o += PC_PROCESS;
  }
  return { sampledAtNs: b.readBigUInt64LE(0), untrackedInserts: readU64AsNumber(b, 8), processes };
}
