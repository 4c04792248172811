/**
 * Thin ZeroMQ PUB/SUB wrappers that speak the wire format: they add and check headers and
 * sequence numbers, so no caller builds frames by hand.
 */
import { randomInt } from "node:crypto";
import * as zmq from "zeromq";
import { decodeHeader, encodeHeader, PROTOCOL_VERSION, ProtocolError, type EncodingId, type FrameHeader } from "./wireFormat.js";
import { SequenceTracker } from "./sequenceTracker.js";

export interface MessagePublisherOptions {
  /**
   * Keep track of what subscribers ask for (an XPUB socket), so wants() can tell whether a topic
   * has any subscriber and a message nobody would receive is never encoded.
   */
  trackSubscriptions?: boolean;
}

/** Publishes frames with this process's publisherId and a per-topic sequence. */
export class MessagePublisher {
  readonly publisherId = randomInt(1, 0xffff_ffff);
  private readonly socket: zmq.Publisher | zmq.XPublisher;
  private readonly sequences = new Map<string, bigint>();
  private queue: Promise<void> = Promise.resolve();
  /** The subscribed prefixes (XPUB reports each once, and its unsubscription when its last subscriber leaves). */
  private readonly prefixes: Set<string> | null;
  private watching: Promise<void> | null = null;
  /** Messages that could not be queued (socket closed or send failed). */
  failed = 0;
  sent = 0;

  constructor(options: MessagePublisherOptions = {}) {
    const socketOptions = { linger: 200, sendHighWaterMark: 10_000 };
    if (options.trackSubscriptions === true) {
      this.socket = new zmq.XPublisher(socketOptions);
      this.prefixes = new Set();
    } else {
      this.socket = new zmq.Publisher(socketOptions);
      this.prefixes = null;
    }
  }

  async bind(endpoint: string): Promise<void> {
    await this.socket.bind(endpoint);
    this.watchSubscriptions();
  }

  async connect(endpoint: string): Promise<void> {
    this.socket.connect(endpoint);
    this.watchSubscriptions();
    return Promise.resolve();
  }

  /**
   * Whether some subscriber's prefix matches `topic` (ZeroMQ's own matching). Always true
   * without trackSubscriptions. A subscriber that has just connected may be missed for a moment,
   * as with any ZeroMQ subscription.
   */
  wants(topic: string): boolean {
    if (this.prefixes === null) return true;
    for (const prefix of this.prefixes) if (topic.startsWith(prefix)) return true;
    return false;
  }

  private watchSubscriptions(): void {
    const socket = this.socket;
    const prefixes = this.prefixes;
    if (!(socket instanceof zmq.XPublisher) || prefixes === null || this.watching !== null) return;
    this.watching = (async () => {
      while (!socket.closed) {
        let frames: Buffer[];
        try {
          frames = await socket.receive();
        } catch {
          return; // closed (EAGAIN on close) or failed: wants() keeps what it knew
        }
        // Byte 0: 1 subscribe, 0 unsubscribe; the rest is the prefix.
        const frame = frames[0];
        if (frame === undefined || frame.length === 0) continue;
        const prefix = frame.subarray(1).toString("utf8");
        if (frame[0] === 1) prefixes.add(prefix);
        else if (frame[0] === 0) prefixes.delete(prefix);
      }
    })();
  }

  /**
   * Queues one message. Sends are serialised because a zeromq socket allows one pending send;
   * PUB never blocks (it drops at the high-water mark), so the chain stays short.
   */
  publish(topic: string, encoding: EncodingId, payload: Buffer): Promise<void> {
    const sequence = this.sequences.get(topic) ?? 0n;
    this.sequences.set(topic, sequence + 1n);
    const header = encodeHeader({
      version: PROTOCOL_VERSION,
      encoding,
      publisherId: this.publisherId,
      sequence,
      sentAtUs: BigInt(Date.now()) * 1000n,
    });
    this.queue = this.queue.then(
      () => this.socket.send([topic, header, payload]).then(() => { this.sent++; }),
    ).catch(() => {
      this.failed++;
    });
    return this.queue;
  }

  async close(): Promise<void> {
    await this.queue;
    this.socket.close();
    await this.watching;
  }
}

export interface ReceivedMessage {
  topic: string;
  header: FrameHeader;
  payload: Buffer;
  /** Messages from this publisher and topic missing just before this one. */
  lostBefore: number;
  /** The header's sequence jumped beyond what its publisher could have sent (not counted as lost). */
  sequenceAnomaly: boolean;
}

/** Subscribes to prefixes on one or more endpoints, checks frames and counts losses. */
export class MessageSubscriber {
  private readonly socket = new zmq.Subscriber({ linger: 0, receiveHighWaterMark: 100_000 });
  readonly sequences = new SequenceTracker();
  /** Frames rejected as malformed. */
  invalid = 0;

  connect(endpoint: string): void {
    this.socket.connect(endpoint);
  }

  async bind(endpoint: string): Promise<void> {
    await this.socket.bind(endpoint);
  }

  subscribe(...prefixes: string[]): void {
    this.socket.subscribe(...prefixes);
  }

  /**
   * Yields well-formed messages until the socket is closed. A malformed message is passed to
   * `onInvalid` and skipped: one bad frame never ends the stream.
   */
  async *messages(onInvalid: (err: ProtocolError, frames: Buffer[]) => void): AsyncGenerator<ReceivedMessage> {
    while (!this.socket.closed) {
      const frames = await this.receiveFrames();
      if (frames === null) return;
      const msg = this.check(frames, onInvalid);
      if (msg !== null) yield msg;
    }
  }

  /**
   * The same stream as messages(), handed to `onMessage` as each arrives, until the socket is
   * closed. Without a generator between socket and handler, a message costs one await instead
   * of three (the pipeline's receive loop, bench/pipelineIngest).
   */
  async receiveEach(onMessage: (msg: ReceivedMessage) => void, onInvalid: (err: ProtocolError, frames: Buffer[]) => void): Promise<void> {
    const socket = this.socket;
    while (!socket.closed) {
      // The socket's promise awaited here, not through receiveFrames(): one promise per message, not two.
      let frames: Buffer[];
      try {
        frames = await socket.receive();
      } catch (err) {
        if (this.closedBy(err)) return;
        throw err;
      }
      const msg = this.check(frames, onInvalid);
      if (msg !== null) onMessage(msg);
    }
  }

  /** The next message's frames, or null once the socket is closed. */
  private async receiveFrames(): Promise<Buffer[] | null> {
    try {
      return await this.socket.receive();
    } catch (err) {
      if (this.closedBy(err)) return null;
      throw err;
    }
  }

  /** Whether a failed receive means the socket was closed (the stream ends) rather than a fault. */
  private closedBy(err: unknown): boolean {
    return this.socket.closed || (err as { code?: string }).code === "EAGAIN";
  }

  private lastTopicFrame: Buffer | null = null;
  private lastTopic = "";

  /** Parses and sequence-checks one message; a malformed one goes to onInvalid and gives null. */
  private check(frames: Buffer[], onInvalid: (err: ProtocolError, frames: Buffer[]) => void): ReceivedMessage | null {
    let msg: ReceivedMessage;
    try {
      // Consecutive messages mostly share a topic: reuse the checked string when the bytes match.
      const topicFrame = frames[0];
      if (frames.length === 3 && topicFrame !== undefined && this.lastTopicFrame !== null && topicFrame.equals(this.lastTopicFrame)) {
        msg = { topic: this.lastTopic, header: decodeHeader(frames[1]!), payload: frames[2]!, lostBefore: 0, sequenceAnomaly: false };
      } else {
        msg = parseFrames(frames);
        this.lastTopicFrame = Buffer.from(frames[0]!);
        this.lastTopic = msg.topic;
      }
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.invalid++;
      onInvalid(err, frames);
      return null;
    }
    const verdict = this.sequences.observe(msg.topic, msg.header.publisherId, msg.header.sequence);
    msg.lostBefore = verdict.lost;
    msg.sequenceAnomaly = verdict.anomaly;
    return msg;
  }

  close(): void {
    if (!this.socket.closed) this.socket.close();
  }
}

export function parseFrames(frames: Buffer[]): ReceivedMessage {
  if (frames.length !== 3) throw new ProtocolError("message", `expected 3 frames (topic, header, payload), got ${frames.length}`);
  const [topicFrame, headerFrame, payload] = frames as [Buffer, Buffer, Buffer];
  const topic = topicFrame.toString("utf8");
  if (!/^[a-z][a-z0-9._-]{0,63}$/.test(topic)) throw new ProtocolError("frame 0 (topic)", `not a valid topic: ${JSON.stringify(topic.slice(0, 64))}`);
  return { topic, header: decodeHeader(headerFrame), payload, lostBefore: 0, sequenceAnomaly: false };
}
