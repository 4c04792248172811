/**
 * The on-disk spool that history points wait in until InfluxDB has them, so a pipeline SIGKILL,
 * an influxd outage or a reboot loses nothing within the bounds (agent.influx.bufferPoints,
 * bufferSize). It lives in STATE_DIR/influx-spool:
 *
 *   segment-NNNNNNNNNNNN.spool  append-only; each record = u32 LE payload length, u32 LE CRC-32
 *                               of the payload, payload (JSON: the retention policy and its points)
 *   acked.json                  where the oldest record not yet written (or dropped) starts
 *   lock                        "PID@STARTTIME" of the process using the spool
 *
 * Durability: every record is written with write(2) as it is appended (a SIGKILL loses nothing
 * that append() returned from); the active segment is fsynced every fsyncMs and before a roll,
 * so a power loss loses at most fsyncMs of points. A record cut short (or corrupted) is found by
 * its length or checksum at replay, counted in tornRecords, and the rest of its segment skipped.
 * A segment is deleted once every record in it was written or dropped; acked.json is rewritten
 * on the fsync interval, so after a crash a few written records may be sent again — InfluxDB
 * stores a point with the same series and time once.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import type { Logger } from "pino";
import { parseProcStat, processKey } from "../host/proc/processTable.js";
import { HistoryBuffer, type BufferBounds, type BufferCounters } from "./historyBuffer.js";
import type { HistoryPoint } from "./influxPoints.js";

/** The spool's directory below agent.stateDir. */
export const SPOOL_DIR_NAME = "influx-spool";
export const RECORD_HEADER_BYTES = 8;
/** Larger lengths are a corrupt header, not a record: one record is the points of one message. */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;
/** Segments roll at a sixteenth of the byte bound (within these limits), so deleting whole segments frees space steadily. */
const MIN_SEGMENT_BYTES = 64 * 1024;
const MAX_SEGMENT_BYTES = 16 * 1024 * 1024;
const SEGMENT_PATTERN = /^segment-(\d{12})\.spool$/;
const ACKED_FILE = "acked.json";
const LOCK_FILE = "lock";

/** Spool directories open in this process: a second writer on one spool would interleave records. */
const openHere = new Set<string>();

export interface SpoolOptions {
  /** The spool's directory (created, mode 0700). */
  dir: string;
  bounds: BufferBounds;
  fsyncMs: number;
  log: Logger;
}

export interface SpoolCounters extends BufferCounters {
  /** Points that could not be written to the spool or read back from it (disk full, I/O error). */
  droppedSpoolError: number;
  /** Records found torn or corrupt at replay, and skipped with the rest of their segment. */
  tornRecords: number;
  /** Points found in the spool at start (left by the previous run), queued before any new point. */
  replayedPoints: number;
}

export interface SpoolBatch {
  policy: string;
  points: HistoryPoint[];
}

interface RecordRef {
  segment: number;
  /** Where the record's header starts in its segment. */
  offset: number;
  /** Header plus payload. */
  bytes: number;
  points: number;
  /** The retention policy. */
  group: string;
}

interface Cursor {
  segment: number;
  offset: number;
}

export class HistorySpool {
  private readonly buffer: HistoryBuffer<RecordRef>;
  readonly counters: SpoolCounters;
  private readonly segmentBytes: number;
  /** Segment id → its size on disk; the last is the active one. */
  private readonly segments = new Map<number, number>();
  private readonly readFds = new Map<number, number>();
  private activeId = 0;
  private activeFd: number | null = null;
  private dirty = false;
  private fsyncTimer: NodeJS.Timeout | null = null;
  private savedCursor = "";
  private state: "new" | "open" | "closed" = "new";

  constructor(private readonly options: SpoolOptions) {
    if (!(options.fsyncMs >= 1)) throw new Error(`history spool: fsyncMs must be >= 1, got ${options.fsyncMs}`);
    this.buffer = new HistoryBuffer(options.bounds);
    this.counters = Object.assign(this.buffer.counters, { droppedSpoolError: 0, tornRecords: 0, replayedPoints: 0 });
    this.segmentBytes = Math.min(MAX_SEGMENT_BYTES, Math.max(MIN_SEGMENT_BYTES, Math.floor(options.bounds.bytes / 16)));
  }

  get dir(): string {
    return this.options.dir;
  }

  /** Points waiting (queued and in flight). */
  get size(): number {
    return this.buffer.size;
  }

  get queuedPoints(): number {
    return this.buffer.queuedPoints;
  }

  /** Bytes of the segment files on disk. */
  get diskBytes(): number {
    let n = 0;
    for (const size of this.segments.values()) n += size;
    return n;
  }

  /**
   * Takes the directory (throws if another live process holds it), replays what the previous
   * run left, and opens a fresh segment for appends. Throws with the path when the disk refuses.
   */
  open(): void {
    if (this.state !== "new") throw new Error(`history spool ${this.dir}: open() called when ${this.state}`);
    const { dir } = this;
    if (openHere.has(dir)) throw new Error(`history spool ${dir}: already open in this process`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.lock();
    openHere.add(dir);
    this.state = "open";
    try {
      this.replay();
      this.startSegment(Math.max(0, ...this.segments.keys()) + 1);
      this.deleteAckedSegments();
      this.saveCursor();
    } catch (err) {
      this.close();
      throw err;
    }
    this.fsyncTimer = setInterval(() => this.sync(), this.options.fsyncMs);
    this.fsyncTimer.unref();
  }

  /**
   * Appends the points of one message as one record. Returns the points of the oldest records
   * dropped to stay within the bounds. Points the disk refused are logged and counted here.
   */
  append(policy: string, points: readonly HistoryPoint[]): number {
    if (this.state !== "open" || this.activeFd === null) throw new Error(`history spool ${this.dir}: append() when not open`);
    if (points.length === 0) return 0;
    const payload = Buffer.from(JSON.stringify({ policy, points }), "utf8");
    if (payload.length > MAX_RECORD_BYTES) throw new Error(`history spool: a record of ${payload.length} bytes exceeds ${MAX_RECORD_BYTES}`);
    const frame = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length);
    frame.writeUInt32LE(payload.length, 0);
    frame.writeUInt32LE(crc32(payload), 4);
    payload.copy(frame, RECORD_HEADER_BYTES);
    let activeSize = this.segments.get(this.activeId) ?? 0;
    if (activeSize > 0 && activeSize + frame.length > this.segmentBytes) {
      this.roll();
      activeSize = 0;
    }
    const offset = activeSize;
    try {
      let done = 0;
      while (done < frame.length) done += writeSync(this.activeFd, frame, done, frame.length - done);
    } catch (err) {
      // A partial record may now end this segment; later records go to a new one, where replay finds them.
      this.counters.droppedSpoolError += points.length;
      this.options.log.error({ err, dir: this.dir, points: points.length }, "history spool: writing a record failed; its points are dropped");
      this.tryRoll();
      return 0;
    }
    this.segments.set(this.activeId, offset + frame.length);
    this.dirty = true;
    const dropped = this.buffer.push({ segment: this.activeId, offset, bytes: frame.length, points: points.length, group: policy });
    if (dropped > 0) this.deleteAckedSegments();
    return dropped;
  }

  /**
   * Reads the oldest records (one policy, up to maxPoints, at least one record) back as the batch
   * in flight; null when nothing is queued. Records that cannot be read back are dropped and counted.
   */
  takeBatch(maxPoints: number): SpoolBatch | null {
    for (;;) {
      const refs = this.buffer.takeBatch(maxPoints);
      if (refs === null) return null;
      try {
        const points: HistoryPoint[] = [];
        for (const ref of refs) points.push(...this.readRecord(ref).points);
        return { policy: (refs[0] as RecordRef).group, points };
      } catch (err) {
        const n = this.buffer.discardInFlight();
        this.counters.droppedSpoolError += n;
        this.options.log.error({ err, dir: this.dir, points: n }, "history spool: reading records back failed; their points are dropped");
        this.deleteAckedSegments();
      }
    }
  }

  /** The batch in flight was written. */
  succeeded(): void {
    this.buffer.succeeded();
    this.deleteAckedSegments();
  }

  /** The batch in flight was refused as malformed; returns its points, dropped. */
  rejected(): number {
    const n = this.buffer.rejected();
    this.deleteAckedSegments();
    return n;
  }

  /** The write failed; the batch goes back to the front. Returns the points dropped to stay in bounds. */
  failed(): number {
    const dropped = this.buffer.failed();
    if (dropped > 0) this.deleteAckedSegments();
    return dropped;
  }

  /** fsyncs the active segment and saves where the oldest record starts. Idempotent; records stay for the next open. */
  close(): void {
    if (this.state === "closed") return;
    const wasOpen = this.state === "open";
    this.state = "closed";
    if (this.fsyncTimer !== null) clearInterval(this.fsyncTimer);
    this.fsyncTimer = null;
    try {
      if (wasOpen) {
        if (this.activeFd !== null && this.dirty) fsyncSync(this.activeFd);
        this.saveCursor();
      }
    } catch (err) {
      this.options.log.error({ err, dir: this.dir }, "history spool: final fsync failed");
    } finally {
      if (this.activeFd !== null) closeSync(this.activeFd);
      this.activeFd = null;
      for (const fd of this.readFds.values()) closeSync(fd);
      this.readFds.clear();
      if (wasOpen) {
        try {
          unlinkSync(join(this.dir, LOCK_FILE));
        } catch {
          // already gone: nothing to release
        }
        openHere.delete(this.dir);
      }
    }
  }

  /** The fsync interval's work; a failure is logged, and tried again next interval. */
  private sync(): void {
    try {
      if (this.activeFd !== null && this.dirty) {
        fsyncSync(this.activeFd);
        this.dirty = false;
      }
      this.saveCursor();
    } catch (err) {
      this.options.log.error({ err, dir: this.dir }, "history spool: fsync failed");
    }
  }

  private lock(): void {
    const path = join(this.dir, LOCK_FILE);
    const me = processKey(process.pid, ownStartTime());
    let holder = "";
    try {
      holder = readFileSync(path, "utf8").trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    if (holder !== "" && holder !== me && isLiveProcess(holder)) {
      throw new Error(`history spool ${this.dir}: in use by process ${holder} (one pipeline per agent.stateDir)`);
    }
    writeFileSync(path, `${me}\n`, { mode: 0o600 });
  }

  private replay(): void {
    const cursor = this.loadCursor();
    const ids = readdirSync(this.dir)
      .map((name) => SEGMENT_PATTERN.exec(name)?.[1])
      .filter((id): id is string => id !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    let records = 0;
    for (const id of ids) {
      const data = readFileSync(this.segmentPath(id));
      this.segments.set(id, data.length);
      if (id < cursor.segment) continue; // written before the last run saved its cursor
      let offset = id === cursor.segment ? Math.min(cursor.offset, data.length) : 0;
      while (offset < data.length) {
        const parsed = parseRecord(data, offset);
        if (parsed === null) {
          this.counters.tornRecords++;
          this.options.log.warn({ segment: this.segmentPath(id), offset, skippedBytes: data.length - offset }, "history spool: torn or corrupt record; skipped the rest of the segment");
          break;
        }
        const ref: RecordRef = { segment: id, offset, bytes: RECORD_HEADER_BYTES + parsed.payloadBytes, points: parsed.batch.points.length, group: parsed.batch.policy };
        this.counters.replayedPoints += ref.points;
        records++;
        this.buffer.push(ref);
        offset += ref.bytes;
      }
    }
    if (records > 0 || this.counters.tornRecords > 0) {
      this.options.log.info(
        { dir: this.dir, records, points: this.counters.replayedPoints, tornRecords: this.counters.tornRecords, droppedFull: this.counters.droppedFull },
        "history spool: replaying what the previous run left",
      );
    }
  }

  private readRecord(ref: RecordRef): SpoolBatch {
    let fd = this.readFds.get(ref.segment);
    if (fd === undefined) {
      fd = openSync(this.segmentPath(ref.segment), "r");
      this.readFds.set(ref.segment, fd);
    }
    const frame = Buffer.allocUnsafe(ref.bytes);
    let done = 0;
    while (done < ref.bytes) {
      const n = readSync(fd, frame, done, ref.bytes - done, ref.offset + done);
      if (n === 0) throw new Error(`history spool: ${this.segmentPath(ref.segment)} ends inside the record at ${ref.offset}`);
      done += n;
    }
    const parsed = parseRecord(frame, 0);
    if (parsed === null) throw new Error(`history spool: the record at ${ref.offset} of ${this.segmentPath(ref.segment)} no longer matches its checksum`);
    return parsed.batch;
  }

  private startSegment(id: number): void {
    const fd = openSync(this.segmentPath(id), "wx", 0o600);
    this.activeFd = fd;
    this.activeId = id;
    this.segments.set(id, 0);
    this.dirty = false;
    // The new name must survive a power loss too, or its records would vanish with it.
    const dirFd = openSync(this.dir, "r");
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  }

  private roll(): void {
    if (this.activeFd !== null) {
      fsyncSync(this.activeFd);
      closeSync(this.activeFd);
      this.activeFd = null;
    }
    this.startSegment(this.activeId + 1);
  }

  private tryRoll(): void {
    try {
      this.roll();
    } catch (err) {
      this.options.log.error({ err, dir: this.dir }, "history spool: starting a new segment failed; appending to the current one");
      if (this.activeFd === null) this.activeFd = openSync(this.segmentPath(this.activeId), "a");
    }
  }

  /** Where the oldest record still held starts; the end of the active segment when none is. */
  private cursor(): Cursor {
    const oldest = this.buffer.oldest();
    return oldest !== undefined ? { segment: oldest.segment, offset: oldest.offset } : { segment: this.activeId, offset: this.segments.get(this.activeId) ?? 0 };
  }

  private deleteAckedSegments(): void {
    const keepFrom = this.cursor().segment;
    for (const id of [...this.segments.keys()]) {
      if (id >= keepFrom || id === this.activeId) continue;
      const fd = this.readFds.get(id);
      if (fd !== undefined) closeSync(fd);
      this.readFds.delete(id);
      try {
        unlinkSync(this.segmentPath(id));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
          this.options.log.error({ err, segment: this.segmentPath(id) }, "history spool: deleting a written segment failed");
          continue;
        }
      }
      this.segments.delete(id);
    }
  }

  private saveCursor(): void {
    const text = JSON.stringify(this.cursor());
    if (text === this.savedCursor) return;
    const path = join(this.dir, ACKED_FILE);
    writeFileSync(`${path}.tmp`, `${text}\n`, { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
    this.savedCursor = text;
  }

  private loadCursor(): Cursor {
    const path = join(this.dir, ACKED_FILE);
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { segment: 0, offset: 0 };
      throw err;
    }
    try {
      const c = JSON.parse(text) as Partial<Cursor>;
      if (Number.isSafeInteger(c.segment) && Number.isSafeInteger(c.offset) && (c.segment as number) >= 0 && (c.offset as number) >= 0) {
        return { segment: c.segment as number, offset: c.offset as number };
      }
    } catch {
      // reported below
    }
    // Replaying from the start sends some points twice; InfluxDB stores each once.
    this.options.log.warn({ path, text: text.slice(0, 200) }, "history spool: unreadable cursor; replaying every segment");
    return { segment: 0, offset: 0 };
  }

  private segmentPath(id: number): string {
    return join(this.dir, `segment-${String(id).padStart(12, "0")}.spool`);
  }
}

/** The record at `offset`, or null when it is torn or corrupt (short, oversized, bad checksum or content). */
export function parseRecord(data: Buffer, offset: number): { payloadBytes: number; batch: SpoolBatch } | null {
  if (data.length - offset < RECORD_HEADER_BYTES) return null;
  const length = data.readUInt32LE(offset);
  if (length === 0 || length > MAX_RECORD_BYTES || data.length - offset - RECORD_HEADER_BYTES < length) return null;
  const payload = data.subarray(offset + RECORD_HEADER_BYTES, offset + RECORD_HEADER_BYTES + length);
  if (crc32(payload) !== data.readUInt32LE(offset + 4)) return null;
  let value: unknown;
  try {
    value = JSON.parse(payload.toString("utf8"));
  } catch {
    return null;
  }
  const v = value as Partial<SpoolBatch> | null;
  if (v === null || typeof v !== "object" || typeof v.policy !== "string" || !Array.isArray(v.points) || v.points.length === 0) return null;
  return { payloadBytes: length, batch: { policy: v.policy, points: v.points } };
}

function ownStartTime(): number {
  return parseProcStat(readFileSync("/proc/self/stat", "utf8")).startTime;
}

/** True when "PID@STARTTIME" names a process that is still running (PIDs get reused). */
function isLiveProcess(key: string): boolean {
  const m = /^(\d+)@(\d+)$/.exec(key);
  if (m === null) return false;
  try {
    const stat = parseProcStat(readFileSync(`/proc/${m[1]}/stat`, "utf8"));
    return processKey(stat.pid, stat.startTime) === key;
  } catch {
    return false;
  }
}
