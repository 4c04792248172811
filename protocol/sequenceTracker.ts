/**
 * Counts lost messages from header sequence numbers, per publisher and topic.
 * A new publisherId means the publisher restarted: its sequence starts again at 0 and nothing
 * is counted lost for the switch (we cannot know what it sent before we connected).
 *
 * A sequence that jumps further than the publisher could have sent since its last message is a
 * corrupt or forged header, not a loss: it is counted as an anomaly and leaves the publisher's
 * last sequence as it was, so its next genuine message is judged against the real one.
 *
 * Across a restart of the subscriber: snapshot() is what to persist, restore() loads it into a
 * new tracker (one per source socket, where one publisher sends each topic). A restored
 * publisher's next message counts what it sent while the subscriber was down. A new publisherId
 * on a topic whose restored publisher has not been heard from again is that publisher restarted
 * while the subscriber was down: its sequence restarted at 0, so everything before its first
 * message seen here (sequence N: N messages) was lost, and the old id is forgotten.
 */
export interface SequenceVerdict {
  /** Messages missing just before this one. */
  lost: number;
  /** The publisher restarted (first message from a new publisherId for this topic). */
  newPublisher: boolean;
  /** The loss happened while the subscriber was down (judged against restored state). */
  whileDown: boolean;
  /** The jump was beyond what the publisher could have sent: counted in anomalyTotal, not lost. */
  anomaly: boolean;
}

const MAX_TRACKED = 1024;

/**
 * Most messages one publisher could send on one topic per millisecond. A ZeroMQ PUB socket tops
 * out well below a million small messages a second, so a larger jump cannot be real loss.
 */
export const MAX_MESSAGES_PER_MS = 1000;
/** Jump always plausible whatever the elapsed time: a full PUB high-water mark (10,000) of drops. */
export const SEQUENCE_SLACK = 10_000;

/** One publisher's last sequence on one topic, as persisted between runs. */
export interface SequenceEntry {
  topic: string;
  publisherId: number;
  sequence: bigint;
  /** When that message arrived, ms since the epoch. */
  atMs: number;
}

interface Tracked {
  topic: string;
  publisherId: number;
  sequence: bigint;
  atMs: number;
  /** Loaded by restore() and not heard from since. */
  restored: boolean;
}

export class SequenceTracker {
  private readonly last = new Map<string, Tracked>();
  lostTotal = 0;
  anomalyTotal = 0;
  /** Of lostTotal, the messages lost while the subscriber was down (judged against restored state). */
  lostWhileDownTotal = 0;

  /** `nowMs`: when the message arrived (a monotonic-enough wall clock; tests pass their own). */
  observe(topic: string, publisherId: number, sequence: bigint, nowMs = Date.now()): SequenceVerdict {
    const key = trackKey(topic, publisherId);
    const prev = this.last.get(key);
    if (prev === undefined) return this.firstFrom(key, topic, publisherId, sequence, nowMs);
    const whileDown = prev.restored;
    prev.restored = false;
    // Duplicate or reordering: nothing lost, and the newest sequence stays the reference.
    if (sequence <= prev.sequence) return { lost: 0, newPublisher: false, anomaly: false, whileDown: false };
    const gap = sequence - prev.sequence - 1n;
    if (!this.plausible(gap, prev.atMs, nowMs)) {
      this.anomalyTotal++;
      return { lost: 0, newPublisher: false, anomaly: true, whileDown: false };
    }
    prev.sequence = sequence;
    prev.atMs = nowMs;
    return this.countLost(Number(gap), false, whileDown);
  }

  /** Every publisher's last sequence, oldest first: what to persist. */
  snapshot(): SequenceEntry[] {
    return [...this.last.values()].map(({ topic, publisherId, sequence, atMs }) => ({ topic, publisherId, sequence, atMs }));
  }

  /** Loads a previous run's snapshot; call before the first observe(). */
  restore(entries: readonly SequenceEntry[]): void {
    for (const e of entries.slice(-MAX_TRACKED)) {
      this.last.set(trackKey(e.topic, e.publisherId), { ...e, restored: true });
    }
  }

  private firstFrom(key: string, topic: string, publisherId: number, sequence: bigint, nowMs: number): SequenceVerdict {
    let replaced: Tracked | null = null;
    for (const [k, t] of this.last) {
      if (t.restored && t.topic === topic) {
        this.last.delete(k);
        if (replaced === null || t.atMs > replaced.atMs) replaced = t;
      }
    }
    if (this.last.size >= MAX_TRACKED) {
      // Restarted publishers leave old ids behind; forget the oldest so memory stays bounded.
      const oldest = this.last.keys().next().value;
      if (oldest !== undefined) this.last.delete(oldest);
    }
    this.last.set(key, { topic, publisherId, sequence, atMs: nowMs, restored: false });
    // Without restored state we joined mid-stream: we cannot know what was sent before we connected.
    if (replaced === null) return { lost: 0, newPublisher: true, anomaly: false, whileDown: false };
    // The restarted publisher's sequence began at 0 after the restored one's last message.
    if (!this.plausible(sequence, replaced.atMs, nowMs)) {
      this.anomalyTotal++;
      return { lost: 0, newPublisher: true, anomaly: true, whileDown: false };
    }
    return this.countLost(Number(sequence), true, true);
  }

  private plausible(gap: bigint, sinceMs: number, nowMs: number): boolean {
    return gap <= BigInt(SEQUENCE_SLACK + Math.ceil(Math.max(0, nowMs - sinceMs) * MAX_MESSAGES_PER_MS));
  }

  private countLost(lost: number, newPublisher: boolean, whileDown: boolean): SequenceVerdict {
    this.lostTotal += lost;
    if (whileDown) this.lostWhileDownTotal += lost;
    return { lost, newPublisher, anomaly: false, whileDown: whileDown && lost > 0 };
  }
}

function trackKey(topic: string, publisherId: number): string {
  return `${topic}\u0000${publisherId}`;
}
