/**
 * Counts lost messages from header sequence numbers, per publisher and topic.
 * A new publisherId means the publisher restarted: its sequence starts again at 0 and nothing
 * is counted lost for the switch (we cannot know what it sent before we connected).
 */
export interface SequenceVerdict {
  /** Messages missing just before this one. */
  lost: number;
  /** The publisher restarted (first message from a new publisherId for this topic). */
  newPublisher: boolean;
}

const MAX_TRACKED = 1024;

export class SequenceTracker {
  private readonly last = new Map<string, { publisherId: number; sequence: bigint }>();
  lostTotal = 0;

  observe(topic: string, publisherId: number, sequence: bigint): SequenceVerdict {
    const key = `${topic}\u0000${publisherId}`;
    const prev = this.last.get(key);
    if (prev === undefined && this.last.size >= MAX_TRACKED) {
      // Restarted publishers leave old ids behind; forget the oldest so memory stays bounded.
      const oldest = this.last.keys().next().value;
      if (oldest !== undefined) this.last.delete(oldest);
    }
    this.last.set(key, { publisherId, sequence });
    if (prev === undefined) return { lost: 0, newPublisher: true };
    if (sequence <= prev.sequence) return { lost: 0, newPublisher: false }; // duplicate or reordering: nothing lost
    const lost = Number(sequence - prev.sequence - 1n);
    this.lostTotal += lost;
    return { lost, newPublisher: false };
  }
}
