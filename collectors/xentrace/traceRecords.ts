// Streaming parser for xentrace output (Xen 4.17, platform-facts §1.1–1.4). No I/O: feed it chunks.
//
// The stream is a sequence of windows: a 12-byte CPU-change header {0x2001f003, cpu, window_size}
// followed by window_size bytes of that CPU's records (record layout: traceFormat.ts). Records inside
// one CPU's windows are in time order; across CPUs they are not, so the parser keeps one queue per CPU
// and merges the queues by TSC the way xenalyze does (smallest head first; on equal TSCs the CPU
// emitted last goes first, so a record without a TSC directly follows the record it inherits its time
// from).
//
// Speed: a trace holds millions of records, so the hot path allocates nothing per record. Records are
// decoded with a DataView straight into per-CPU typed-array queues, and handed out through one reused
// TraceRecordView (`onRecordView`). `onRecord` builds a fresh TraceRecord object per record instead.

import {
  CPU_CHANGE_HEADER,
  CPU_CHANGE_HEADER_BYTES,
  EVENT_ID_MASK,
  EXTRA_WORDS_SHIFT,
  LOST_RECORDS_END,
  MAX_EXTRA_WORDS,
  TRC_LOST_RECORDS,
  TRC_TRACE_CPU_CHANGE,
  TRC_TRACE_WRAP_BUFFER,
  TSC_FLAG_SHIFT,
  isKnownEvent,
  recordBytes,
  recordEvent,
  recordExtraWords,
  recordHasTsc,
} from "./traceFormat.js";

export interface TraceRecord {
  /** Physical CPU whose window held the record. */
  readonly cpu: number;
  /** 28-bit event ID (LOST_RECORDS_END for the synthetic second pass of a lost-records record). */
  readonly event: number;
  /** True if the record carried its own TSC; otherwise `tsc` is inherited from the previous TSC record on the same CPU. */
  readonly hasTsc: boolean;
  /**
   * Cycles relative to the parser's TSC base (the first TSC in the stream; see `tscBase`). Exact while
   * the trace spans less than 2^53 cycles. NaN if no TSC has been seen on this CPU yet.
   */
  readonly tsc: number;
  /** Merge key: `tsc`, except a lost-records record is ordered at its first_tsc (as xenalyze does). */
  readonly orderTsc: number;
  /** The 32-bit data words. */
  readonly extra: readonly number[];
  /** Byte offset of the record header in the stream. */
  readonly offset: number;
}

/**
 * The record being delivered to `onRecordView`: the same fields as TraceRecord, in one object the
 * parser overwrites for every record. Valid only during the call; copy what must be kept.
 */
export interface TraceRecordView {
  readonly cpu: number;
  readonly event: number;
  readonly hasTsc: boolean;
  readonly tsc: number;
  readonly orderTsc: number;
  readonly offset: number;
  /** Number of data words: only `extra[0 .. extraCount-1]` belong to this record. */
  readonly extraCount: number;
  readonly extra: ArrayLike<number>;
}

export type ProblemKind =
  | "bad-window-header"
  | "record-overruns-window"
  | "cpu-change-inside-window"
  | "truncated"
  | "late-record";

export interface TraceProblem {
  readonly offset: number;
  readonly kind: ProblemKind;
  readonly detail: string;
}

export interface TraceParseStats {
  /** Bytes fed in. */
  bytes: number;
  /** CPU-change windows accepted. */
  windows: number;
  /** Records decoded from windows (known and unknown, not counting window headers). */
  records: number;
  /** Records handed to onRecord (known events; lost-records records count twice). */
  emitted: number;
  /** Records with an event ID outside the classes Xen defines; skipped. */
  unknown: number;
  /** Up to 32 distinct unknown IDs with their counts (for diagnosis). */
  unknownIds: Record<string, number>;
  /** Wrap-buffer (ring padding) records. */
  wrapRecords: number;
  /** Lost-records records seen, and the sum of the records the hypervisor says it dropped. */
  lostRecordEvents: number;
  lostRecords: number;
  /** Corruption events (bad window header, record overrunning its window, stray CPU-change record). */
  corrupt: number;
  /** Times the parser scanned forward for the next plausible window header. */
  resyncs: number;
  /** Bytes skipped while resynchronising. */
  skippedBytes: number;
  /** Bytes at the end of the stream that did not form a whole record or window. */
  truncatedBytes: number;
  /** Records that arrived older than a record already emitted (only possible after a forced flush). */
  lateRecords: number;
  /** Times the reorder buffer was full and records were emitted without waiting for every CPU. */
  forcedFlushes: number;
  /** High-water mark of records held in the per-CPU reorder queues. */
  maxBufferedRecords: number;
  /** First and last merge key of emitted records (relative cycles, NaN if none). */
  firstTsc: number;
  lastTsc: number;
  /** CPUs seen in window headers. */
  cpus: number[];
  /** First problems found (at most `maxProblems`); `problemsDropped` counts the rest. */
  problems: TraceProblem[];
  problemsDropped: number;
}

export interface TraceParserOptions {
  /** Receives each record in merged (time) order, as a new object. Give this or `onRecordView`. */
  onRecord?: (record: TraceRecord) => void;
  /** Receives each record in merged (time) order, in one reused object (no allocation per record). */
  onRecordView?: (view: TraceRecordView) => void;
  /** Called once per CPU when its stream is known to have ended (at `end()`), with its last TSC. */
  onCpuEnd?: (cpu: number, lastTsc: number) => void;
  /**
   * The events the consumer acts on. Records of other events are not merged or delivered, only
   * counted and their TSC carried (records without one inherit it; stats.firstTsc/lastTsc and the
   * CPU's end still cover them). Lost-records records, and each CPU's first record with a TSC of a
   * known event (its first time), are delivered whatever this says. Default: every event.
   */
  delivers?: (event: number) => boolean;
  /** Window headers naming a CPU at or above this are treated as corrupt. Default 4096. */
  maxCpus?: number;
  /** Window headers larger than this are treated as corrupt. Default 64 MiB (far above any per-CPU trace buffer). */
  maxWindowBytes?: number;
  /** Reorder-buffer bound in records; past it records are emitted without waiting for silent CPUs. Default 65536. */
  maxBufferedRecords?: number;
  /** Problems kept in stats.problems. Default 100. */
  maxProblems?: number;
}

const HEADER_BYTES = Buffer.from([0x03, 0xf0, 0x01, 0x20]); // CPU_CHANGE_HEADER, little-endian
const MAX_UNKNOWN_IDS = 32;
const TWO_POW_32 = 4294967296;
const INITIAL_QUEUE_CAPACITY = 256;
/**
 * Bytes of a new chunk joined to the carried bytes. The carry is at most one partial unit (a record
 * of ≤ 40 bytes, or a window header plus the first record header a resync scan must judge: 16), so
 * joining 64 bytes always completes it.
 */
const STITCH_BYTES = 64;

/**
 * One CPU's FIFO of decoded records waiting to be merged: a ring of slots, each field a typed array
 * indexed by slot (data words at slot·7 .. slot·7+6), so queueing a record allocates nothing. The
 * live slots are head, head+1, … (modulo the capacity, a power of two), `size` of them.
 */
class CpuQueue {
  /** The record's header word (event ID, TSC flag, word count); LOST_RECORDS_END replaces the ID for the second pass. */
  header = new Uint32Array(INITIAL_QUEUE_CAPACITY);
  tsc = new Float64Array(INITIAL_QUEUE_CAPACITY);
  orderTsc = new Float64Array(INITIAL_QUEUE_CAPACITY);
  offset = new Float64Array(INITIAL_QUEUE_CAPACITY);
  extra = new Uint32Array(INITIAL_QUEUE_CAPACITY * MAX_EXTRA_WORDS);
  mask = INITIAL_QUEUE_CAPACITY - 1;
  head = 0;
  size = 0;
  /** Last TSC decoded on this CPU (relative), inherited by records without one. */
  lastTsc = NaN;
  /** Merge key for records without a TSC; -Infinity before the first TSC (xenalyze uses 0). */
  lastKey = -Infinity;
  inOrder = false;
  /** No record of a known event with a TSC delivered yet (the `delivers` option lets that one through). */
  awaitsFirstTsc = true;
  /** The last record decoded was one `delivers` turned away (so the CPU ends at its key, lastKey). */
  lastSkipped = false;
  constructor(readonly cpu: number) {}

  headKey(): number {
    return this.orderTsc[this.head] as number;
  }

  /** The first free slot, after making sure `n` slots are free. */
  freeSlot(n: number): number {
    if (this.size + n > this.mask + 1) this.grow(this.size + n);
    return (this.head + this.size) & this.mask;
  }

  private grow(needed: number): void {
    let capacity = (this.mask + 1) * 2;
    while (capacity < needed) capacity *= 2;
    this.header = unwrapRing(this.header, this.head, this.size, capacity, 1);
    this.tsc = unwrapRing(this.tsc, this.head, this.size, capacity, 1);
    this.orderTsc = unwrapRing(this.orderTsc, this.head, this.size, capacity, 1);
    this.offset = unwrapRing(this.offset, this.head, this.size, capacity, 1);
    this.extra = unwrapRing(this.extra, this.head, this.size, capacity, MAX_EXTRA_WORDS);
    this.mask = capacity - 1;
    this.head = 0;
  }
}

type Slots = Float64Array | Uint32Array;

/** A new array of `capacity` slots holding the ring's live slots in order from slot 0. */
function unwrapRing<T extends Slots>(array: T, head: number, size: number, capacity: number, stride: number): T {
  const grown = new (array.constructor as new (length: number) => T)(capacity * stride);
  const oldCapacity = array.length / stride;
  const firstPart = Math.min(size, oldCapacity - head);
  grown.set(array.subarray(head * stride, (head + firstPart) * stride));
  grown.set(array.subarray(0, (size - firstPart) * stride), firstPart * stride);
  return grown;
}

/** The reused object behind `onRecordView`. */
class RecordSlot implements TraceRecordView {
  cpu = 0;
  event = 0;
  hasTsc = false;
  tsc = NaN;
  orderTsc = NaN;
  offset = 0;
  extraCount = 0;
  readonly extra = new Uint32Array(MAX_EXTRA_WORDS);
}

type Mode = "header" | "window" | "resync";

/**
 * Incremental xentrace decoder and per-CPU merger. Never throws on bad input: it counts the problem,
 * records its byte offset and scans forward for the next plausible window header.
 *
 * Memory is bounded: at most a few dozen carried-over bytes between chunks, plus the reorder queues,
 * which never hold more than `maxBufferedRecords` records.
 *
 * Why a bounded reorder window is safe: xentrace drains every CPU's ring in each pass (CPU 0..N) and
 * writes one window per CPU with new data, so a record can only be preceded in the file by records at
 * most one pass newer than it. The merger emits eagerly as soon as every CPU seen so far has a queued
 * record (the exact k-way merge xenalyze does with unlimited look-ahead); it only has to buffer while
 * some CPU's next window has not arrived yet, i.e. about one pass (≤ one ring per CPU, 32 pages of
 * 4 KiB by default). Only a CPU that stays silent for longer than the buffer bound forces a flush,
 * and a silent CPU has no records for that period anyway; anything that does arrive late is still
 * emitted and counted in `lateRecords`.
 */
export class XentraceParser {
  private readonly onRecord: ((record: TraceRecord) => void) | undefined;
  private readonly onRecordView: ((view: TraceRecordView) => void) | undefined;
  private readonly onCpuEnd: ((cpu: number, lastTsc: number) => void) | undefined;
  private readonly delivers: ((event: number) => boolean) | undefined;
  private readonly maxCpus: number;
  private readonly maxWindowBytes: number;
  private readonly maxBuffered: number;
  private readonly maxProblems: number;

  private mode: Mode = "header";
  private carry: Buffer = Buffer.alloc(0);
  /** Stream offset of carry[0]. */
  private carryOffset = 0;
  private windowQueue: CpuQueue | undefined;
  private windowRemaining = 0;
  /** Offset where the current resync scan started (for skippedBytes). */
  private resyncStart = 0;
  /** Resync scan resumes here (stream offset). */
  private resyncFrom = 0;

  private readonly queues = new Map<number, CpuQueue>();
  /** CPUs with queued records, ordered by head key (xenalyze's record_order). */
  private readonly order: CpuQueue[] = [];
  /** Known CPUs whose queue is empty; the merge waits for them unless the buffer is full. */
  private waiting = 0;
  private buffered = 0;
  private lastEmittedKey = -Infinity;
  /** Smallest and largest merge key of the records `delivers` turned away. */
  private skippedMinKey = Infinity;
  private skippedMaxKey = -Infinity;
  /** During end()'s drain: CPUs whose last record was turned away, ended in order of its key. */
  private readonly pendingEnds: CpuQueue[] = [];
  private ended = false;
  /**
   * True until a second window for some CPU shows that the first xentrace pass (one window per CPU
   * with data) is over. Until then more CPUs may appear, so nothing is emitted (as xenalyze's
   * init_pcpus, which scans windows until it meets a CPU twice).
   */
  private discovering = true;
  private readonly slot = new RecordSlot();
  /** decodeWindow's scratch buffer for misaligned data. */
  private scratch = new Uint32Array(0);
  /** The last event ID of a turned-away record found known (isKnownEvent), so most are not checked again. */
  private knownEvent = -1;

  private baseHi = 0;
  private baseLo = 0;
  private haveBase = false;

  private readonly s: TraceParseStats = {
    bytes: 0,
    windows: 0,
    records: 0,
    emitted: 0,
    unknown: 0,
    unknownIds: {},
    wrapRecords: 0,
    lostRecordEvents: 0,
    lostRecords: 0,
    corrupt: 0,
    resyncs: 0,
    skippedBytes: 0,
    truncatedBytes: 0,
    lateRecords: 0,
    forcedFlushes: 0,
    maxBufferedRecords: 0,
    firstTsc: NaN,
    lastTsc: NaN,
    cpus: [],
    problems: [],
    problemsDropped: 0,
  };

  constructor(options: TraceParserOptions) {
    if ((options.onRecord === undefined) === (options.onRecordView === undefined)) {
      throw new Error("XentraceParser needs exactly one of the options onRecord and onRecordView");
    }
    this.onRecord = options.onRecord;
    this.onRecordView = options.onRecordView;
    this.onCpuEnd = options.onCpuEnd;
    this.delivers = options.delivers;
    this.maxCpus = positiveInteger(options.maxCpus, 4096, "maxCpus");
    this.maxWindowBytes = positiveInteger(options.maxWindowBytes, 64 * 1024 * 1024, "maxWindowBytes");
    this.maxBuffered = positiveInteger(options.maxBufferedRecords, 65536, "maxBufferedRecords");
    this.maxProblems = positiveInteger(options.maxProblems, 100, "maxProblems");
  }

  /** Absolute TSC that relative `tsc` values count from (undefined until the first TSC is seen). */
  get tscBase(): bigint | undefined {
    return this.haveBase ? (BigInt(this.baseHi) << 32n) | BigInt(this.baseLo) : undefined;
  }

  /** Records currently held in the reorder queues. */
  get bufferedRecords(): number {
    return this.buffered;
  }

  /** Bytes carried over between chunks (a partial record or header; always small). */
  get carriedBytes(): number {
    return this.carry.length;
  }

  /** A copy of the counters. */
  get stats(): TraceParseStats {
    // The largest merge key, emitted (lastEmittedKey is their running maximum) or turned away; the
    // first emitted, unless a record turned away was earlier.
    const lastKey = Math.max(this.lastEmittedKey, this.skippedMaxKey);
    const first = this.s.firstTsc;
    return {
      ...this.s,
      firstTsc: this.skippedMinKey !== Infinity && !(first <= this.skippedMinKey) ? this.skippedMinKey : first,
      lastTsc: lastKey === -Infinity ? NaN : lastKey,
      unknownIds: { ...this.s.unknownIds },
      cpus: [...this.queues.keys()].sort((a, b) => a - b),
      problems: [...this.s.problems],
    };
  }

  /** Absolute TSC (as a bigint) of a relative value from this parser. */
  absoluteTsc(relative: number): bigint | undefined {
    const base = this.tscBase;
    if (base === undefined || !Number.isFinite(relative)) return undefined;
    return base + BigInt(relative);
  }

  /** Feed the next chunk; records that can be placed in time order are passed to onRecord. */
  write(chunk: Uint8Array): void {
    if (this.ended) throw new Error("XentraceParser.write called after end()");
    if (chunk.length === 0) return;
    this.s.bytes += chunk.length;
    let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    const carried = this.carry.length;
    if (carried > 0) {
      if (buf.length <= STITCH_BYTES) {
        buf = Buffer.concat([this.carry, buf]);
      } else {
        // Finish the carried partial unit on a small joined buffer instead of copying the whole chunk.
        const stitched = Buffer.concat([this.carry, buf.subarray(0, STITCH_BYTES)]);
        const consumed = this.parse(stitched, this.carryOffset);
        this.carryOffset += consumed;
        // STITCH_BYTES covers any unit the carry can start, so parsing gets past the carry.
        buf = consumed >= carried ? buf.subarray(consumed - carried) : Buffer.concat([this.carry.subarray(consumed), buf]);
      }
    }
    const consumed = this.parse(buf, this.carryOffset);
    // Copy the tail so a large chunk is not kept alive by a few carried bytes.
    this.carry = Buffer.from(buf.subarray(consumed));
    this.carryOffset += consumed;
    this.merge(false);
  }

  /** Signal end of input: reports any truncated tail and flushes every queue in merged order. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    const tailOffset = this.carryOffset;
    if (this.mode === "resync") {
      this.s.skippedBytes += this.carry.length;
    } else if (this.carry.length > 0 || (this.mode === "window" && this.windowRemaining > 0)) {
      this.s.truncatedBytes += this.carry.length;
      const what = this.mode === "window" ? `window of CPU ${this.windowQueue?.cpu ?? "?"} ends early` : "partial window header";
      this.problem(tailOffset, "truncated", `${what}; ${this.carry.length} trailing bytes`);
    }
    this.carry = Buffer.alloc(0);
    // CPUs with nothing queued ended when their last record was emitted (xenalyze deactivates a CPU
    // right after its last record), so report them first, then drain the rest in merged order. A CPU
    // whose last record was turned away (`delivers`) ends where that record would have been emitted.
    for (const q of [...this.queues.values()].sort((a, b) => a.cpu - b.cpu)) {
      if (q.size === 0) this.cpuDrained(q);
    }
    this.merge(true);
    for (const q of this.pendingEnds) this.onCpuEnd?.(q.cpu, q.lastTsc);
    this.pendingEnds.length = 0;
  }

  /** During end(): q has no more records to emit. */
  private cpuDrained(q: CpuQueue): void {
    if (!q.lastSkipped) {
      this.onCpuEnd?.(q.cpu, q.lastTsc);
      return;
    }
    const pending = this.pendingEnds;
    let i = pending.length;
    while (i > 0 && (pending[i - 1] as CpuQueue).lastKey > q.lastKey) i--;
    pending.splice(i, 0, q);
  }

  /**
   * During end()'s drain, before a record with merge key `key` is emitted: end the CPUs whose last
   * (turned away) record comes before it. On equal keys the CPU ends first, as its record would have
   * gone first when it inherited the key from the CPU's record emitted last.
   */
  private endPendingBefore(key: number): void {
    const pending = this.pendingEnds;
    let n = 0;
    while (n < pending.length && (pending[n] as CpuQueue).lastKey <= key) n++;
    if (n === 0) return;
    for (const q of pending.splice(0, n)) this.onCpuEnd?.(q.cpu, q.lastTsc);
  }

  // ---- decoding ----

  /** Decode as much of buf as possible; returns bytes consumed. */
  private parse(buf: Buffer, base: number): number {
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let pos = 0;
    const len = buf.length;
    for (;;) {
      if (this.mode === "header") {
        if (len - pos < CPU_CHANGE_HEADER_BYTES) return pos;
        const header = view.getUint32(pos, true);
        const cpu = view.getUint32(pos + 4, true);
        const size = view.getUint32(pos + 8, true);
        if (header === CPU_CHANGE_HEADER && this.plausibleWindow(cpu, size)) {
          this.openWindow(cpu, size);
          pos += CPU_CHANGE_HEADER_BYTES;
          continue;
        }
        this.problem(
          base + pos,
          "bad-window-header",
          header === CPU_CHANGE_HEADER
            ? `implausible window header cpu ${cpu} size ${size}`
            : `expected window header 0x2001f003, found 0x${header.toString(16).padStart(8, "0")}`,
        );
        this.startResync(base + pos, base + pos + 1);
        continue;
      }

      if (this.mode === "window") {
        pos = this.decodeWindow(buf, pos, base);
        if (this.mode === "window") {
          if (this.windowRemaining > 0) return pos; // the rest of the window is in a later chunk
          this.mode = "header";
          // Merge at every window boundary so one huge chunk does not fill the queues.
          this.merge(false);
        }
        continue;
      }

      // resync: look for the next plausible window header at or after resyncFrom.
      let from = Math.max(pos, this.resyncFrom - base);
      for (;;) {
        const at = buf.indexOf(HEADER_BYTES, from);
        if (at < 0) {
          // Keep the last 3 bytes: they may be the start of a header split across chunks.
          const keep = Math.max(from, len - 3);
          this.resyncFrom = base + keep;
          return keep;
        }
        if (len - at < CPU_CHANGE_HEADER_BYTES + 4) {
          // Need the header and the first record header to judge; wait for more data.
          this.resyncFrom = base + at;
          return at;
        }
        const cpu = view.getUint32(at + 4, true);
        const size = view.getUint32(at + 8, true);
        if (this.plausibleWindow(cpu, size) && this.plausibleFirstRecord(view, at, size)) {
          this.s.skippedBytes += base + at - this.resyncStart;
          pos = at;
          this.mode = "header";
          break;
        }
        from = at + 1;
      }
    }
  }

  /**
   * The hot loop: decode the current window's whole records from `pos` into its CPU's queue. Returns
   * the position after the last record decoded; stops at the window's end, at the end of the data,
   * or on corruption (then the mode is "resync").
   *
   * Records are read as 32-bit words from a Uint32Array: a DataView read is a call into the runtime
   * until the optimizing compiler has inlined it, and a one-shot `cage xentrace summarize` spends
   * most of its run before that. Every record is a whole number of words from its window header, so
   * the words are in place when the data sits at a 4-byte-aligned address; otherwise (a chunk cut
   * at any byte) the window's bytes in this chunk are copied to an aligned scratch buffer first.
   */
  private decodeWindow(buf: Buffer, pos: number, base: number): number {
    const q = this.windowQueue as CpuQueue;
    // Whole words of this window in buf (windowRemaining is a multiple of 4).
    const available = Math.min(buf.length - pos, this.windowRemaining) & ~3;
    const address = buf.byteOffset + pos;
    let words: Uint32Array;
    let first: number;
    if ((address & 3) === 0) {
      // The length from buf, not buf.buffer.byteLength: the CLI's reads and the joined buffers have
      // ArrayBuffers of different shapes, and reading a property of both deoptimizes the loop.
      words = new Uint32Array(buf.buffer, 0, (buf.byteOffset + buf.length) >>> 2);
      first = address >>> 2;
    } else {
      words = this.scratchWords(available >>> 2);
      new Uint8Array(words.buffer, 0, available).set(buf.subarray(pos, pos + available));
      first = 0;
    }
    const end = first + (available >>> 2);
    const delivers = this.delivers;
    let remaining = this.windowRemaining;
    let w = first;
    // The header's fields are taken apart here rather than with traceFormat's helpers, and a record
    // that is turned away is handled inline: until the optimizing compiler has inlined them, each
    // call costs more than the rest of the loop, for every record.
    while (remaining > 0 && w < end) {
      const header = words[w] as number;
      const event = header & EVENT_ID_MASK;
      const hasTsc = header >>> TSC_FLAG_SHIFT;
      const size = 4 * (1 + 2 * hasTsc + ((header >>> EXTRA_WORDS_SHIFT) & MAX_EXTRA_WORDS));
      if (event === TRC_TRACE_CPU_CHANGE || size > remaining) {
        this.windowRemaining = remaining;
        this.badRecord(base + pos + 4 * (w - first), event, size, q);
        return pos + 4 * (w - first);
      }
      if (w + (size >>> 2) > end) break; // the rest of the record is in a later chunk
      if (delivers === undefined || event === TRC_LOST_RECORDS || delivers(event) || (hasTsc === 1 && q.awaitsFirstTsc && isKnownEvent(event))) {
        this.decodeRecord(q, words, w, base + pos + 4 * (w - first));
      } else {
        // Turned away: counted, its TSC carried, its merge key kept in the range.
        this.s.records++;
        if (hasTsc === 1) {
          const lo = words[w + 1] as number;
          const hi = words[w + 2] as number;
          if (!this.haveBase) this.setBase(hi, lo);
          const tsc = (hi - this.baseHi) * TWO_POW_32 + (lo - this.baseLo);
          q.lastTsc = tsc;
          q.lastKey = tsc;
        }
        const key = q.lastKey;
        if (key < this.skippedMinKey && key !== -Infinity) this.skippedMinKey = key;
        if (key > this.skippedMaxKey) this.skippedMaxKey = key;
        q.lastSkipped = true;
        // Without a branch: wrap records may first turn up after the loop was optimized.
        this.s.wrapRecords += event === TRC_TRACE_WRAP_BUFFER ? 1 : 0;
        if (event !== this.knownEvent) {
          if (isKnownEvent(event)) this.knownEvent = event;
          else this.unknownEvent(event);
        }
      }
      w += size >>> 2;
      remaining -= size;
    }
    this.windowRemaining = remaining;
    return pos + 4 * (w - first);
  }

  /** A record that cannot be in this window: report it and look for the next window header. */
  private badRecord(at: number, event: number, size: number, q: CpuQueue): void {
    if (event === TRC_TRACE_CPU_CHANGE) {
      // Xen never writes this ID; a window header here means the previous header's size was wrong.
      this.problem(at, "cpu-change-inside-window", `${this.windowRemaining} bytes of the window were still expected`);
      this.startResync(at, at);
    } else {
      this.problem(at, "record-overruns-window", `record of ${size} bytes, ${this.windowRemaining} left in the window of CPU ${q.cpu}`);
      this.startResync(at, at + 1);
    }
  }

  /** The aligned scratch buffer for misaligned data, at least `n` words long. */
  private scratchWords(n: number): Uint32Array {
    if (this.scratch.length < n) this.scratch = new Uint32Array(Math.max(n, 2 * this.scratch.length));
    return this.scratch;
  }

  private plausibleWindow(cpu: number, size: number): boolean {
    return cpu < this.maxCpus && size % 4 === 0 && size <= this.maxWindowBytes;
  }

  /** During resync: the window's first record must fit inside it and must not be another header. */
  private plausibleFirstRecord(view: DataView, at: number, size: number): boolean {
    if (size === 0) return true;
    const header = view.getUint32(at + CPU_CHANGE_HEADER_BYTES, true);
    return recordBytes(header) <= size && recordEvent(header) !== TRC_TRACE_CPU_CHANGE;
  }

  private startResync(problemOffset: number, scanFrom: number): void {
    this.s.corrupt++;
    this.s.resyncs++;
    this.mode = "resync";
    this.resyncStart = problemOffset;
    this.resyncFrom = scanFrom;
    this.windowRemaining = 0;
    this.windowQueue = undefined;
  }

  private openWindow(cpu: number, size: number): void {
    let q = this.queues.get(cpu);
    if (q !== undefined) this.discovering = false;
    if (q === undefined) {
      q = new CpuQueue(cpu);
      this.queues.set(cpu, q);
      this.waiting++;
    }
    this.windowQueue = q;
    this.windowRemaining = size;
    this.s.windows++;
    this.mode = "window";
  }

  /**
   * Decode the record at word `w` of `words` (the whole record is there) into a free slot of q. The
   * header is read again here rather than passed in: a word with bit 31 set is no small integer, and
   * passing it to a call that is not inlined would allocate.
   */
  private decodeRecord(q: CpuQueue, words: Uint32Array, w: number, offset: number): void {
    const header = words[w] as number;
    const event = recordEvent(header);
    const slot = q.freeSlot(2); // a lost-records record takes two slots
    const hasTsc = recordHasTsc(header);
    const nExtra = recordExtraWords(header);
    let data = w + 1;
    let tsc: number;
    if (hasTsc) {
      const lo = words[w + 1] as number;
      const hi = words[w + 2] as number;
      if (!this.haveBase) this.setBase(hi, lo);
      // Inline, not relativeTsc(): a double returned from a call that is not inlined costs an allocation.
      tsc = (hi - this.baseHi) * TWO_POW_32 + (lo - this.baseLo);
      q.lastTsc = tsc;
      data += 2;
    } else {
      tsc = q.lastTsc;
    }
    const extra = q.extra;
    const first = slot * MAX_EXTRA_WORDS;
    for (let i = 0; i < nExtra; i++) extra[first + i] = words[data + i] as number;
    q.header[slot] = header;
    q.tsc[slot] = tsc;
    q.offset[slot] = offset;
    this.s.records++;
    q.lastSkipped = false;
    if (hasTsc && q.awaitsFirstTsc && isKnownEvent(event)) q.awaitsFirstTsc = false;

    const orderTsc = hasTsc ? tsc : q.lastKey;
    if (event === TRC_LOST_RECORDS) {
      this.s.lostRecordEvents++;
      this.s.lostRecords += nExtra > 0 ? (extra[first] as number) : 0;
      if (hasTsc && nExtra === 4) {
        // First pass at first_tsc, second (LOST_RECORDS_END) at the record's own TSC.
        const firstTsc = this.relativeTsc(extra[first + 3] as number, extra[first + 2] as number);
        q.orderTsc[slot] = Math.min(firstTsc, tsc);
        this.enqueued(q, slot);
        const end = (slot + 1) & q.mask;
        q.header[end] = header - event + LOST_RECORDS_END; // same TSC flag and word count
        q.tsc[end] = tsc;
        q.orderTsc[end] = tsc;
        q.offset[end] = offset;
        extra.copyWithin(end * MAX_EXTRA_WORDS, first, first + MAX_EXTRA_WORDS);
        this.enqueued(q, end);
        q.lastKey = tsc;
        return;
      }
    } else if (event === TRC_TRACE_WRAP_BUFFER) {
      this.s.wrapRecords++;
    }
    if (hasTsc) q.lastKey = tsc;
    q.orderTsc[slot] = orderTsc;
    this.enqueued(q, slot);
  }

  private setBase(hi: number, lo: number): void {
    this.haveBase = true;
    this.baseHi = hi;
    this.baseLo = lo;
  }

  private relativeTsc(hi: number, lo: number): number {
    if (!this.haveBase) this.setBase(hi, lo);
    // Exact in a double while |difference| < 2^53.
    return (hi - this.baseHi) * TWO_POW_32 + (lo - this.baseLo);
  }

  // ---- merging ----

  /** The free slot q.freeSlot() gave is filled in: make it part of the queue. */
  private enqueued(q: CpuQueue, slot: number): void {
    const key = q.orderTsc[slot] as number;
    q.size++;
    this.buffered++;
    if (this.buffered > this.s.maxBufferedRecords) this.s.maxBufferedRecords = this.buffered;
    if (!q.inOrder) {
      // Insert before the first CPU whose head is not smaller (xenalyze's record_order_insert), by
      // hand: splice would allocate the array of removed elements each time.
      const order = this.order;
      let i = 0;
      while (i < order.length && (order[i] as CpuQueue).headKey() < key) i++;
      order.push(q);
      for (let j = order.length - 1; j > i; j--) order[j] = order[j - 1] as CpuQueue;
      order[i] = q;
      q.inOrder = true;
      this.waiting--;
    }
  }

  private merge(final: boolean): void {
    const order = this.order;
    const slot = this.slot;
    let forced = false;
    while (order.length > 0) {
      if (!final && (this.waiting > 0 || this.discovering)) {
        if (this.buffered <= this.maxBuffered) break;
        if (!forced) {
          forced = true;
          this.s.forcedFlushes++;
        }
      }
      const q = order[0] as CpuQueue;
      if (final && this.pendingEnds.length > 0) this.endPendingBefore(q.orderTsc[q.head] as number);
      this.take(q, slot);
      this.buffered--;
      const drained = q.size === 0;
      if (drained) {
        order.shift();
        q.inOrder = false;
        if (!final) this.waiting++;
      } else {
        // Bubble past CPUs with strictly smaller heads, so ties favour the CPU just emitted.
        const key = q.orderTsc[q.head] as number;
        let i = 0;
        while (i + 1 < order.length) {
          const next = order[i + 1] as CpuQueue;
          if (!((next.orderTsc[next.head] as number) < key)) break;
          order[i] = next;
          i++;
        }
        order[i] = q;
      }
      this.emit(slot);
      // The CPU ends after its last record, not before it: otherwise whether that record is timed
      // would depend on whether the merge happened to emit it before end().
      if (final && drained) this.cpuDrained(q);
      // After a forced flush, stop once comfortably below the bound again.
      if (forced && this.buffered <= (this.maxBuffered * 3) >>> 2) forced = false;
    }
  }

  /** Move q's head record into the reused slot. */
  private take(q: CpuQueue, slot: RecordSlot): void {
    const i = q.head;
    slot.cpu = q.cpu;
    const header = q.header[i] as number;
    slot.event = recordEvent(header);
    slot.hasTsc = recordHasTsc(header);
    slot.tsc = q.tsc[i] as number;
    slot.orderTsc = q.orderTsc[i] as number;
    slot.offset = q.offset[i] as number;
    const n = recordExtraWords(header);
    slot.extraCount = n;
    const words = q.extra;
    const first = i * MAX_EXTRA_WORDS;
    for (let k = 0; k < n; k++) slot.extra[k] = words[first + k] as number;
    q.head = (i + 1) & q.mask;
    q.size--;
  }

  private emit(r: RecordSlot): void {
    const key = r.orderTsc;
    if (Number.isFinite(key)) {
      // lastEmittedKey is the running maximum, so it is also stats.lastTsc (see the stats getter): one
      // number read per record, which counts before V8 optimizes this path (each read boxes a double).
      const last = this.lastEmittedKey;
      if (key < last) {
        this.s.lateRecords++;
        this.problem(r.offset, "late-record", `CPU ${r.cpu} record is ${last - key} cycles older than one already emitted`);
      } else {
        if (last === -Infinity) this.s.firstTsc = key;
        this.lastEmittedKey = key;
      }
    }
    if (r.event !== LOST_RECORDS_END && !isKnownEvent(r.event)) {
      this.unknownEvent(r.event);
      return;
    }
    this.s.emitted++;
    if (this.onRecordView !== undefined) this.onRecordView(r);
    else (this.onRecord as (record: TraceRecord) => void)(toTraceRecord(r));
  }

  private unknownEvent(event: number): void {
    this.s.unknown++;
    const id = `0x${event.toString(16).padStart(8, "0")}`;
    const ids = this.s.unknownIds;
    if (ids[id] !== undefined) ids[id]++;
    else if (Object.keys(ids).length < MAX_UNKNOWN_IDS) ids[id] = 1;
  }

  private problem(offset: number, kind: ProblemKind, detail: string): void {
    if (this.s.problems.length < this.maxProblems) this.s.problems.push({ offset, kind, detail });
    else this.s.problemsDropped++;
  }
}

/** A TraceRecord of its own for a record view. */
export function toTraceRecord(view: TraceRecordView): TraceRecord {
  const extra: number[] = new Array<number>(view.extraCount);
  for (let i = 0; i < view.extraCount; i++) extra[i] = view.extra[i] as number;
  return { cpu: view.cpu, event: view.event, hasTsc: view.hasTsc, tsc: view.tsc, orderTsc: view.orderTsc, extra, offset: view.offset };
}

function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0) throw new Error(`XentraceParser option ${name} must be a positive integer, got ${value}`);
  return value;
}

/** Parse a whole in-memory trace (convenience for tests and the CLI). */
export function parseTrace(
  data: Uint8Array,
  onRecord: (record: TraceRecord) => void,
  options: Omit<TraceParserOptions, "onRecord" | "onRecordView"> = {},
): TraceParseStats {
  const parser = new XentraceParser({ ...options, onRecord });
  parser.write(data);
  parser.end();
  return parser.stats;
}
