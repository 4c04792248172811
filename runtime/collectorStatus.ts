/**
 * The one way a collector publishes its health on the `status` topic (docs/protocol.md,
 * CollectorStatus): a typed state, sent when it changes and every `everyMs` while it holds.
 */
import type { Logger } from "pino";
import { encodeJson, type CollectorStatus } from "../protocol/cageAggregate.js";
import { Encoding, Topic, type EncodingId } from "../protocol/wireFormat.js";

/** What the status goes out through: a MessagePublisher, or a test's recorder. */
export interface StatusSink {
  publish(topic: string, encoding: EncodingId, payload: Buffer): Promise<void>;
}

export type CollectorState = "started" | "running" | "restarting" | "error" | "stopped";

export interface CollectorStatusOptions {
  /** The collector's name on the wire, e.g. "cpu". */
  collector: string;
  publisher: StatusSink;
  /** Cumulative counters, read at each publish. */
  counters: () => Record<string, number>;
  log: Logger;
}

export class CollectorStatusPublisher {
  private current: CollectorState = "started";
  private message: string | undefined;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: CollectorStatusOptions) {}

  get state(): CollectorState {
    return this.current;
  }

  /** Moves to `state` (with its reason); publishes when state or reason changed. */
  set(state: CollectorState, message?: string): void {
    const changed = state !== this.current || message !== this.message;
    this.current = state;
    this.message = message;
    if (changed) this.publish();
  }

  /** Publishes the current state with fresh counters. Never throws: status must not stop a collector. */
  publish(): void {
    try {
      const status: CollectorStatus = { v: 1, collector: this.opts.collector, state: this.current, counters: { ...this.opts.counters() }, timeMs: Date.now() };
      if (this.message !== undefined) status.message = this.message;
      this.opts.publisher.publish(Topic.status, Encoding.json, encodeJson(status)).catch((err: unknown) => this.opts.log.warn({ err }, "publishing status failed"));
    } catch (err) {
      this.opts.log.warn({ err }, "publishing status failed");
    }
  }

  /** Publishes the current state every `everyMs` until stopPeriodic(). */
  startPeriodic(everyMs: number): void {
    if (!Number.isInteger(everyMs) || everyMs <= 0) throw new Error(`collector status: everyMs must be a positive integer, got ${String(everyMs)}`);
    this.stopPeriodic();
    this.timer = setInterval(() => this.publish(), everyMs);
  }

  stopPeriodic(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
