/**
 * The history writer's bookkeeping, without I/O: a bounded FIFO of points waiting for InfluxDB
 * (drops the oldest when full, and counts them), the batch in flight, and the retry backoff.
 *
 * Points leave the buffer only when a write of them succeeded or was refused as bad input;
 * a failed batch goes back to the front, so an outage loses nothing that fits in the bound.
 */

export interface BufferCounters {
  /** Points InfluxDB accepted. */
  written: number;
  /** Oldest points dropped because the buffer was full. */
  droppedFull: number;
  /** Points InfluxDB refused as malformed (HTTP 400): retrying cannot help. */
  droppedRejected: number;
  /** Points still buffered when the writer stopped. */
  droppedShutdown: number;
  /** Requests that failed and will be retried (the writer also counts failed database set-ups here). */
  failedWrites: number;
}

export class HistoryBuffer<T> {
  readonly counters: BufferCounters = { written: 0, droppedFull: 0, droppedRejected: 0, droppedShutdown: 0, failedWrites: 0 };
  /** Ring of queued points; `head` is the oldest. */
  private queue: T[] = [];
  private head = 0;
  private inFlight: T[] | null = null;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`history buffer: capacity must be a positive integer, got ${capacity}`);
  }

  /** Points held: queued plus in flight. */
  get size(): number {
    return this.queue.length - this.head + (this.inFlight?.length ?? 0);
  }

  get queued(): number {
    return this.queue.length - this.head;
  }

  get writing(): boolean {
    return this.inFlight !== null;
  }

  /** Queues points; returns how many of the oldest were dropped to make room. */
  push(points: readonly T[]): number {
    for (const p of points) this.queue.push(p);
    return this.enforceBound();
  }

  /**
   * Takes up to `max` of the oldest queued points as the batch in flight (one at a time). With
   * `groupOf`, the batch ends where the group changes (one write request per retention policy).
   */
  takeBatch(max: number, groupOf?: (point: T) => string): T[] | null {
    if (this.inFlight !== null) throw new Error("history buffer: a batch is already in flight");
    if (this.queued === 0) return null;
    let end = Math.min(this.queue.length, this.head + max);
    if (groupOf !== undefined) {
      const group = groupOf(this.queue[this.head] as T);
      for (let i = this.head + 1; i < end; i++) {
        if (groupOf(this.queue[i] as T) !== group) {
          end = i;
          break;
        }
      }
    }
    const batch = this.queue.slice(this.head, end);
    this.head += batch.length;
    this.compact();
    this.inFlight = batch;
    return batch;
  }

  /** The batch was written. */
  succeeded(): void {
    const batch = this.takeInFlight();
    this.counters.written += batch.length;
  }

  /** The batch was refused as malformed; it is dropped (retrying would fail forever). */
  rejected(): number {
    const batch = this.takeInFlight();
    this.counters.droppedRejected += batch.length;
    return batch.length;
  }

  /** The write failed; the batch goes back to the front. Returns the points dropped to stay in bound. */
  failed(): number {
    const batch = this.takeInFlight();
    this.counters.failedWrites++;
    this.queue = [...batch, ...this.queue.slice(this.head)];
    this.head = 0;
    return this.enforceBound();
  }

  /** Drops everything left (the writer is stopping); returns how many. */
  discardAll(): number {
    const n = this.size;
    this.queue = [];
    this.head = 0;
    this.inFlight = null;
    this.counters.droppedShutdown += n;
    return n;
  }

  private takeInFlight(): T[] {
    const batch = this.inFlight;
    if (batch === null) throw new Error("history buffer: no batch in flight");
    this.inFlight = null;
    return batch;
  }

  private enforceBound(): number {
    const excess = this.size - this.capacity;
    if (excess <= 0) return 0;
    // Only queued points can go: the in-flight batch may be being written right now.
    const drop = Math.min(excess, this.queued);
    this.head += drop;
    this.counters.droppedFull += drop;
    this.compact();
    return drop;
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
