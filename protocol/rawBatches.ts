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
/** Whether typed arrays read the wire's little-endian words as they are. */
const LITTLE_ENDIAN_HOST = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

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

/**
 * A validated CpuBatch read in place: records are read from the frame's bytes on demand, so the
 * pipeline charges each one without building an object per record (bench/pipelineIngest).
 */
export class CpuBatchView {
  readonly windowStartNs: bigint;
  readonly windowEndNs: bigint;
  readonly processCount: number;
  readonly threadCount: number;
  private readonly view: DataView;
  private readonly threadsAt: number;
  /**
   * The frame as 32-bit words when they can be read directly (little-endian host, frame at a
   * 4-byte boundary: records are multiples of 4 bytes), else null and the DataView is used.
   */
  private readonly words: Uint32Array | null;

  constructor(b: Buffer) {
    if (b.length < CPU_HEADER) {
      throw new ProtocolError("frame 2 (cpu batch)", `needs at least ${CPU_HEADER} bytes, got ${b.length}`);
    }
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const windowStartNs = view.getBigUint64(0, true);
    const windowEndNs = view.getBigUint64(8, true);
    const np = view.getUint32(16, true);
    const nt = view.getUint32(20, true);
    const expected = CPU_HEADER + np * CPU_PROCESS + nt * CPU_THREAD;
    if (b.length !== expected) {
      throw new ProtocolError("frame 2 (cpu batch) byte 16", `counts say ${np} processes + ${nt} threads = ${expected} bytes, frame has ${b.length}`);
    }
    if (windowEndNs < windowStartNs) {
      throw new ProtocolError("frame 2 (cpu batch) byte 8", `window ends (${windowEndNs}) before it starts (${windowStartNs})`);
    }
    this.windowStartNs = windowStartNs;
    this.windowEndNs = windowEndNs;
    this.processCount = np;
    this.threadCount = nt;
    this.view = view;
    this.threadsAt = CPU_HEADER + np * CPU_PROCESS;
    this.words = LITTLE_ENDIAN_HOST && b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, b.byteLength >> 2) : null;
  }

  processPid(i: number): number {
    return this.u32(CPU_HEADER + i * CPU_PROCESS);
  }

  processCpuNs(i: number): number {
    return this.u64(CPU_HEADER + i * CPU_PROCESS + 4);
  }

  threadPid(i: number): number {
    return this.u32(this.threadsAt + i * CPU_THREAD);
  }

  threadTid(i: number): number {
    return this.u32(this.threadsAt + i * CPU_THREAD + 4);
  }

  threadCpuNs(i: number): number {
    return this.u64(this.threadsAt + i * CPU_THREAD + 8);
  }

  /** The little-endian u32 at byte `at` (a multiple of 4: every field of the batch is). */
  private u32(at: number): number {
    const w = this.words;
    return w !== null ? w[at >> 2]! : this.view.getUint32(at, true);
  }

  private u64(at: number): number {
    const w = this.words;
    return w !== null ? w[at >> 2]! + w[(at >> 2) + 1]! * 0x1_0000_0000 : readU64AsNumber(this.view, at);
  }
}

export function decodeCpuBatch(b: Buffer): CpuBatch {
  const v = new CpuBatchView(b);
  const processes: ProcessCpu[] = new Array<ProcessCpu>(v.processCount);
  for (let i = 0; i < v.processCount; i++) processes[i] = { pid: v.processPid(i), cpuNs: v.processCpuNs(i) };
  const threads: ThreadCpu[] = new Array<ThreadCpu>(v.threadCount);
  for (let i = 0; i < v.threadCount; i++) threads[i] = { pid: v.threadPid(i), tid: v.threadTid(i), cpuNs: v.threadCpuNs(i) };
  return { windowStartNs: v.windowStartNs, windowEndNs: v.windowEndNs, processes, threads };
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
  const d = dataViewOf(b);
  const processes: ProcessMemory[] = new Array<ProcessMemory>(n);
  let o = MEM_HEADER;
  for (let i = 0; i < n; i++) {
    processes[i] = {
      pid: b.readUInt32LE(o),
      vmRssBytes: readU64AsNumber(d, o + 4),
      rssAnonBytes: readU64AsNumber(d, o + 12),
      rssFileBytes: readU64AsNumber(d, o + 20),
      rssShmemBytes: readU64AsNumber(d, o + 28),
      vmHwmBytes: readU64AsNumber(d, o + 36),
    };
    o += MEM_PROCESS;
  }
  return { sampledAtNs: b.readBigUInt64LE(0), processes };
}

/** u64 as a JS number: exact below 2^53 (104 days of ns, 8 PiB of bytes), which these fields stay under. */
function readU64AsNumber(b: DataView, offset: number): number {
  return b.getUint32(offset, true) + b.getUint32(offset + 4, true) * 0x1_0000_0000;
}

function dataViewOf(b: Buffer): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
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
  const d = dataViewOf(b);
  const processes: ProcessPageCache[] = new Array<ProcessPageCache>(n);
  let o = PC_HEADER;
  for (let i = 0; i < n; i++) {
    processes[i] = { pid: b.readUInt32LE(o), insertedBytes: readU64AsNumber(d, o + 4), residentBytes: readU64AsNumber(d, o + 12) };
    o += PC_PROCESS;
  }
  return { sampledAtNs: b.readBigUInt64LE(0), untrackedInserts: readU64AsNumber(d, 8), processes };
}
