/**
 * The OffloadCage wire format: the single source of truth for topics, the frame header and
 * payload encodings. docs/protocol.md describes the same thing for people writing their own
 * collectors or actuators; change both together.
 *
 * A message is a ZeroMQ multipart message of exactly three frames:
 *   [0] topic   UTF-8 string, e.g. "raw.cpu" (subscribers filter on this prefix)
 *   [1] header  24 bytes, little-endian (see encodeHeader)
 *   [2] payload its encoding is named in the header
 */

export const PROTOCOL_VERSION = 1;

/** Topics. `raw.*` are high-rate collector events, `agg.*` the pipeline's per-cage output; no topic is a prefix of another. */
export const Topic = {
  /** Per-process and per-thread on-CPU nanoseconds over one collector window (binary). */
  rawCpu: "raw.cpu",
  /** /proc/PID/status memory samples (binary). */
  rawMemory: "raw.mem",
  /** Page cache inserted / resident per process, attributed to the process that added it (binary). */
  rawPageCache: "raw.pagecache",
  /** Per-domain / per-vCPU on-CPU nanoseconds from xentrace (JSON). */
  rawXen: "raw.xen",
  /** Collector health: restarts, errors, kernel-side losses (JSON). */
  status: "status",
  /** Every cage's aggregate for one window, in one message (JSON): what the agent's own consumers read. */
  cageAggregates: "agg.window",
  /** One message per cage per window (JSON), published only while a subscriber asks for it. */
  cageAggregate: "agg.cage",
  /** The IDS memory of the cages whose IDS memory moved, between windows, published only while a subscriber asks for it (JSON). */
  cageIdsMemory: "agg.memory",
  /** Every cage's VM and IDS processes after each resolution (JSON), published only while a subscriber asks for it. */
  cageMembers: "agg.members",
  /** One message per change an actuator made or, in dry-run, would make (JSON). */
  actuatorDecision: "act.decision",
  /** Each actuator's per-cage state, about once a second (JSON). */
  actuatorState: "act.state",
} as const;
export type TopicName = (typeof Topic)[keyof typeof Topic];

/** Payload encodings, carried in header byte 3. */
export const Encoding = {
  cpuBatch: 1,
  memoryBatch: 2,
  json: 3,
  pageCacheBatch: 4,
} as const;
export type EncodingId = (typeof Encoding)[keyof typeof Encoding];

export const HEADER_BYTES = 24;
const MAGIC_0 = 0x4f; // 'O'
const MAGIC_1 = 0x43; // 'C'

export interface FrameHeader {
  version: number;
  encoding: EncodingId;
  /** Random per publisher process start; a new value means the publisher restarted. */
  publisherId: number;
  /** Per publisher and topic, starting at 0, +1 per message: gaps are lost messages. */
  sequence: bigint;
  /** Wall-clock send time, microseconds since the Unix epoch. */
  sentAtUs: bigint;
}

/** A frame that does not follow this format. `where` names the frame and byte offset. */
export class ProtocolError extends Error {
  override readonly name = "ProtocolError";
  constructor(
    readonly where: string,
    readonly reason: string,
  ) {
    super(`${where}: ${reason}`);
  }
}

export function isProtocolError(err: unknown): err is ProtocolError {
  return err instanceof ProtocolError;
}

export function encodeHeader(h: FrameHeader): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b.writeUInt8(MAGIC_0, 0);
  b.writeUInt8(MAGIC_1, 1);
  b.writeUInt8(h.version, 2);
  b.writeUInt8(h.encoding, 3);
  b.writeUInt32LE(h.publisherId >>> 0, 4);
  b.writeBigUInt64LE(h.sequence, 8);
  b.writeBigUInt64LE(h.sentAtUs, 16);
  return b;
}

export function decodeHeader(b: Buffer): FrameHeader {
  if (b.length !== HEADER_BYTES) {
    throw new ProtocolError("frame 1 (header)", `must be ${HEADER_BYTES} bytes, got ${b.length}`);
  }
  if (b.readUInt8(0) !== MAGIC_0 || b.readUInt8(1) !== MAGIC_1) {
    throw new ProtocolError("frame 1 (header) byte 0", `bad magic 0x${b.subarray(0, 2).toString("hex")}, expected 0x4f43 ("OC")`);
  }
  const version = b.readUInt8(2);
  if (version !== PROTOCOL_VERSION) {
    throw new ProtocolError("frame 1 (header) byte 2", `unsupported version ${version}, this build speaks ${PROTOCOL_VERSION}`);
  }
  const encoding = b.readUInt8(3);
  if (encoding !== Encoding.cpuBatch && encoding !== Encoding.memoryBatch && encoding !== Encoding.json && encoding !== Encoding.pageCacheBatch) {
    throw new ProtocolError("frame 1 (header) byte 3", `unknown encoding ${encoding}`);
  }
  return {
    version,
    encoding,
    publisherId: b.readUInt32LE(4),
    sequence: b.readBigUInt64LE(8),
    sentAtUs: b.readBigUInt64LE(16),
  };
}
