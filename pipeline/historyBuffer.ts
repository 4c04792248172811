/**
 * The history writer's bookkeeping, without I/O: a bounded FIFO of spooled records waiting for
 * InfluxDB (drops the oldest records when a bound is exceeded, and counts their points), the
 * batch in flight, and the retry backoff. pipeline/historySpool.ts keeps the records on disk.
 *
 * Records leave the buffer only when a write of them succeeded or was refused as bad input;
 * a failed batch goes back to the front, so an outage loses nothing that fits in the bounds.
 */

export interface BufferCounters {
  /** Points InfluxDB accepted. */
  written: number;
  /** Points of the oldest records, dropped because the spool was full (points or bytes). */
  droppedFull: number;
  /** Points InfluxDB refused as malformed (HTTP 400): retrying cannot help. */
  droppedRejected: number;
  /** Requests that failed and will be retried (the writer also counts failed database set-ups here). */
  failedWrites: number;
}

/** What the buffer needs to know of one record: its weight against each bound, and its group. */
export interface BufferedRecord {
  points: number;
  bytes: number;
  /** Records of one batch share a group (one write request per retention policy). */
  group: string;
}

export interface BufferBounds {
  points: number;
  bytes: number;
}

export class HistoryBuffer<T extends BufferedRecord> {
  readonly counters: BufferCounters = { written: 0, droppedFull: 0, droppedRejected: 0, failedWrites: 0 };
  /** Ring of queued records; `head` is the oldest. */
  private queue: T[] = [];
  private head = 0;
  private inFlight: T[] | null = null;
  private heldPoints = 0;
  private heldBytes = 0;

  constructor(readonly bounds: BufferBounds) {
    if (!Number.isInteger(bounds.points) || bounds.points < 1) throw new Error(`history buffer: points bound must be a positive integer, got ${bounds.points}`);
    if (!Number.isInteger(bounds.bytes) || bounds.bytes < 1) throw new Error(`history buffer: bytes bound must be a positive integer, got ${bounds.bytes}`);
  }

  /** Points held: queued plus in flight. */
  get size(): number {
    return this.heldPoints;
  }

  /** Bytes of the records held: queued plus in flight. */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Records queued (not in flight). */
  get queued(): number {
    return this.queue.length - this.head;
  }

  get queuedPoints(): number {
    return this.heldPoints - this.inFlightPoints;
  }

  get writing(): boolean {
    return this.inFlight !== null;
  }

  /** The oldest record held (in flight first), or undefined when empty. */
  oldest(): T | undefined {
    return this.inFlight?.[0] ?? this.queue[this.head];
  }

  /** Queues a record; returns how many points of the oldest records were dropped to make room. */
  push(record: T): number {
    this.queue.push(record);
    this.heldPoints += record.points;
    this.heldBytes += record.bytes;
    return this.enforceBounds();
  }

  /**
   * Takes the oldest queued records as the batch in flight (one at a time): at least one record,
   * then more while the batch stays within `maxPoints` and in the first record's group.
   */
  takeBatch(maxPoints: number): T[] | null {
    if (this.inFlight !== null) throw new Error("history buffer: a batch is already in flight");
    if (this.queued === 0) return null;
    const first = this.queue[this.head] as T;
    let points = first.points;
    let end = this.head + 1;
    while (end < this.queue.length) {
      const next = this.queue[end] as T;
      if (next.group !== first.group || points + next.points > maxPoints) break;
      points += next.points;
      end++;
    }
    const batch = this.queue.slice(this.head, end);
    this.head = end;
    this.compact();
    this.inFlight = batch;
    return batch;
  }

  /** The batch was written. */
  succeeded(): void {
    this.counters.written += this.release(this.takeInFlight());
  }

  /** The batch was refused as malformed; it is dropped (retrying would fail forever). Returns its points. */
  rejected(): number {
    const points = this.release(this.takeInFlight());
    this.counters.droppedRejected += points;
    return points;
  }

  /** The batch cannot be sent at all (the caller counts why); returns its points. */
  discardInFlight(): number {
    return this.release(this.takeInFlight());
  }

  /** The write failed; the batch goes back to the front. Returns the points dropped to stay in bounds. */
  failed(): number {
    const batch = this.takeInFlight();
    this.counters.failedWrites++;
    this.queue = [...batch, ...this.queue.slice(this.head)];
    this.head = 0;
    return this.enforceBounds();
  }

  private get inFlightPoints(): number {
    let n = 0;
    for (const r of this.inFlight ?? []) n += r.points;
    return n;
  }

  private takeInFlight(): T[] {
    const batch = this.inFlight;
    if (batch === null) throw new Error("history buffer: no batch in flight");
    this.inFlight = null;
    return batch;
  }

  /** Forgets records that left the buffer; returns their points. */
  private release(records: readonly T[]): number {
    let points = 0;
    for (const r of records) {
      points += r.points;
      this.heldBytes -= r.bytes;
    }
    this.heldPoints -= points;
    return points;
  }

  private enforceBounds(): number {
    let dropped = 0;
    // Only queued records can go: the in-flight batch may be being written right now.
    while ((this.heldPoints > this.bounds.points || this.heldBytes > this.bounds.bytes) && this.queued > 0) {
      const oldest = this.queue[this.head] as T;
      this.head++;
      dropped += this.release([oldest]);
    }
    this.counters.droppedFull += dropped;
    this.compact();
    return dropped;
  }

  private compact(): void {
    // Shift the array only now and then, so taking from the front stays O(1) amortised.
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}

/** Exponential backoff: min, 2×min, 4×min … capped at max; jitter spreads retries by up to ±jitter. */
export class RetryBackoff {
  private failures = 0;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
    private readonly jitter = 0.2,
  ) {
    if (!(minMs > 0) || !(maxMs >= minMs)) throw new Error(`retry backoff: need 0 < minMs <= maxMs, got ${minMs}, ${maxMs}`);
  }

  /** Consecutive failures so far. */
  get failureCount(): number {
    return this.failures;
  }

  /** Records a failure and returns how long to wait before the next attempt. */
  nextDelayMs(): number {
    const base = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    const spread = base * this.jitter * (2 * this.random() - 1);
    return Math.max(this.minMs, Math.min(this.maxMs, Math.round(base + spread)));
  }

  reset(): void {
    this.failures = 0;
  }
}
