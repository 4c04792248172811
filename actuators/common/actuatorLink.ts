/**
 * An actuator's two sockets: a SUB on the pipeline's aggregates (`agg.window`, every cage's
 * aggregate for one window in one message; with onIdsMemory also `agg.memory`, the IDS memory of
 * the cages whose IDS memory moved between windows) and a PUB for its decisions and state
 * (`act.decision`, `act.state`). The actuator gets one aggregate at a time. A malformed
 * aggregate is counted, logged (at most WARN_BURST a second) and skipped before the actuator sees
 * it, so it never refreshes staleness nor reaches a back end; the well-formed aggregates of the
 * same message still go through, and the loop never ends on one bad frame.
 */
import type { Logger } from "pino";
import { decodeCageAggregates, decodeCageIdsMemoryUpdate, encodeJson, type CageAggregate, type CageIdsMemory } from "../../protocol/cageAggregate.js";
import type { ActuatorDecision, ActuatorState } from "../../protocol/actuatorMessages.js";
import { MessagePublisher, MessageSubscriber, type ReceivedMessage } from "../../protocol/messageBus.js";
import { Encoding, isProtocolError, Topic } from "../../protocol/wireFormat.js";
import { bindPublisher } from "../../runtime/processEntry.js";

/** How often the CPU actuator and the limiter publish act.state ("about once a second", docs/protocol.md). */
export const STATE_EVERY_MS = 1000;

/** Warnings about malformed input per second before the rest are only counted (a flood must not flood the log). */
const WARN_BURST = 5;

export interface ActuatorLinkOptions {
  /** The pipeline's aggregates endpoint to connect to. */
  aggregates: string;
  /** Where to bind this actuator's PUB socket; null: publish nothing (tests, embedded use). */
  publish: string | null;
  logger: Logger;
  onAggregate: (aggregate: CageAggregate) => void;
  /** Given: also subscribe to `agg.memory` and hand over each cage's IDS memory as it moves. */
  onIdsMemory?: (memory: CageIdsMemory) => void;
}

export class ActuatorLink {
  private readonly subscriber = new MessageSubscriber();
  private readonly publisher = new MessagePublisher();
  private consuming: Promise<void> | null = null;
  /** Messages on the aggregates socket rejected as malformed (wire format or aggregate fields). */
  invalidFrames = 0;
  lostAggregates = 0;
  handlerErrors = 0;
  private warnWindowStartMs = 0;
  private warnsInWindow = 0;
  private suppressedWarnings = 0;

  constructor(private readonly options: ActuatorLinkOptions) {}

  async start(): Promise<void> {
    if (this.options.publish !== null) await bindPublisher(this.publisher, this.options.publish);
    this.subscriber.connect(this.options.aggregates);
    this.subscriber.subscribe(Topic.cageAggregates);
    if (this.options.onIdsMemory !== undefined) this.subscriber.subscribe(Topic.cageIdsMemory);
    this.consuming = this.consume();
  }

  /** Handed each message as it arrives: no async generator between the socket and the decode. */
  private consume(): Promise<void> {
    return this.subscriber.receiveEach(
      (msg) => this.onMessage(msg),
      (err) => this.reject(err.message, "malformed message on the aggregates socket, skipped"),
    );
  }

  private onMessage(msg: ReceivedMessage): void {
    this.lostAggregates += msg.lostBefore;
    if (msg.topic === Topic.cageAggregates) {
      this.dispatch(() => {
        const d = decodeCageAggregates(msg.payload);
        return { items: d.aggregates, rejected: d.rejected };
      }, { message: "aggregates message", element: "aggregate", handled: "aggregate" }, this.options.onAggregate);
    } else if (msg.topic === Topic.cageIdsMemory && this.options.onIdsMemory !== undefined) {
      this.dispatch(() => {
        const d = decodeCageIdsMemoryUpdate(msg.payload);
        return { items: d.cages, rejected: d.rejected };
      }, { message: "IDS memory message", element: "IDS memory element", handled: "IDS memory" }, this.options.onIdsMemory);
    }
  }

  /**
   * Decodes one message and hands each well-formed per-cage element to `handler`: a malformed
   * message or element is counted and skipped, and a handler that throws does not stop the others.
   */
  private dispatch<T extends { cage: string }>(decode: () => { items: readonly T[]; rejected: readonly Error[] }, names: { message: string; element: string; handled: string }, handler: (item: T) => void): void {
    let decoded;
    try {
      decoded = decode();
    } catch (err) {
      if (!isProtocolError(err)) throw err;
      this.reject(err.message, `malformed ${names.message}, skipped`);
      return;
    }
    for (const err of decoded.rejected) this.reject(err.message, `malformed ${names.element}, skipped`);
    for (const item of decoded.items) {
      try {
        handler(item);
      } catch (err) {
        this.handlerErrors++;
        this.options.logger.error({ err, cage: item.cage }, `${names.handled} handler failed; continuing with the next cage`);
      }
    }
  }

  private reject(reason: string, message: string): void {
    this.invalidFrames++;
    const now = Date.now();
    if (now - this.warnWindowStartMs >= 1000) {
      this.warnWindowStartMs = now;
      this.warnsInWindow = 0;
    }
    if (this.warnsInWindow >= WARN_BURST) {
      this.suppressedWarnings++;
      return;
    }
    this.warnsInWindow++;
    const suppressed = this.suppressedWarnings;
    this.suppressedWarnings = 0;
    this.options.logger.warn({ err: reason, invalidTotal: this.invalidFrames, ...(suppressed > 0 ? { suppressedSinceLastWarning: suppressed } : {}) }, message);
  }

  publishDecision(decision: ActuatorDecision): void {
    if (this.options.publish === null) return;
    void this.publisher.publish(Topic.actuatorDecision, Encoding.json, encodeJson(decision));
  }

  publishState(state: ActuatorState): void {
    if (this.options.publish === null) return;
    // The link's own count goes with every cage's state: a malformed aggregate may name no valid cage.
    const withCounts: ActuatorState = { ...state, values: { ...state.values, invalidAggregates: this.invalidFrames } };
    void this.publisher.publish(Topic.actuatorState, Encoding.json, encodeJson(withCounts));
  }

  async close(): Promise<void> {
    this.subscriber.close();
    await this.consuming?.catch(() => undefined);
    await this.publisher.close();
  }
}
