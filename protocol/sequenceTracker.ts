/**
 * Counts lost messages from header sequence numbers, per publisher and topic.
 * A new publisherId means the publisher restarted: its sequence starts again at 0 and nothing
 * is counted lost for the switch (we cannot know what it sent before we connected).
 *
 * A sequence that jumps further than the publisher could have sent since its last message is a
 * corrupt or forged header, not a loss: it is counted as an anomaly and leaves the publisher's
 * last sequence as it was, so its next genuine message is judged against the real one.
 */
export interface SequenceVerdict {
  /** Messages missing just before this one. */
  lost: number;
  /** The publisher restarted (first message from a new publisherId for this topic). */
  newPublisher: boolean;
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

export class SequenceTracker {
  private readonly last = new Map<string, { sequence: bigint; atMs: number }>();
  lostTotal = 0;
  anomalyTotal = 0;

  /** `nowMs`: when the message arrived (a monotonic-enough wall clock; tests pass their own). */
  observe(topic: string, publisherId: number, sequence: bigint, nowMs = Date.now()): SequenceVerdict {
    const key = `${topic}\u0000${publisherId}`;
    const prev = this.last.get(key);
    if (prev === undefined) {
      if (this.last.size >= MAX_TRACKED) {
        // Restarted publishers leave old ids behind; forget the oldest so memory stays bounded.
        const oldest = this.last.keys().next().value;
        if (oldest !== undefined) this.last.delete(oldest);
      }
      this.last.set(key, { sequence, atMs: nowMs });
      return { lost: 0, newPublisher: true, anomaly: false };
    }
    // Duplicate or reordering: nothing lost, and the newest sequence stays the reference.
    if (sequence <= prev.sequence) return { lost: 0, newPublisher: false, anomaly: false };
    const gap = sequence - prev.sequence - 1n;
    const plausible = BigInt(SEQUENCE_SLACK + Math.ceil(Math.max(0, nowMs - prev.atMs) * MAX_MESSAGES_PER_MS));
    if (gap > plausible) {
      this.anomalyTotal++;
      return { lost: 0, newPublisher: false, anomaly: true };
    }
    prev.sequence = sequence;
    prev.atMs = nowMs;
    const lost = Number(gap);
    this.lostTotal += lost;
    return { lost, newPublisher: false, anomaly: false };
  }
}
