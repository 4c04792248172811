/**
 * The pipeline's sequence state across its own restarts: each source socket's publishers and
 * their last sequence per topic (protocol/sequenceTracker.ts), saved to STATE_DIR/pipeline-sequences.json
 * every SEQUENCE_SAVE_MS and at stop, loaded at start. Messages a collector or actuator sent
 * while the pipeline was down are then counted as lost, not silently skipped.
 *
 * The file is an aid to counting, not data: an unreadable one is logged and ignored.
 */
import { closeSync, constants, fstatSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import type { SequenceEntry } from "../protocol/sequenceTracker.js";

export const SEQUENCE_STATE_FILE = "pipeline-sequences.json";
/** How often the state is saved while running: at most this much of a killed run's last messages is counted again as lost. */
export const SEQUENCE_SAVE_MS = 250;
const FORMAT_VERSION = 1;

/** Source endpoint → its publishers' last sequences. */
export type SequenceState = ReadonlyMap<string, readonly SequenceEntry[]>;

export function sequenceStatePath(stateDir: string): string {
  return join(stateDir, SEQUENCE_STATE_FILE);
}

export function formatSequenceState(state: SequenceState, savedAtMs: number): string {
  const sources: Record<string, { topic: string; publisherId: number; sequence: string; atMs: number }[]> = {};
  for (const [endpoint, entries] of state) {
    sources[endpoint] = entries.map((e) => ({ topic: e.topic, publisherId: e.publisherId, sequence: e.sequence.toString(), atMs: e.atMs }));
  }
  return `${JSON.stringify({ version: FORMAT_VERSION, savedAtMs, sources })}\n`;
}

/** The state in `text`; throws naming the first thing that is wrong. */
export function parseSequenceState(text: string): Map<string, SequenceEntry[]> {
  const doc = JSON.parse(text) as unknown;
  if (!isObject(doc)) throw new Error("not a JSON object");
  if (doc.version !== FORMAT_VERSION) throw new Error(`version must be ${FORMAT_VERSION}, got ${JSON.stringify(doc.version)}`);
  if (!isObject(doc.sources)) throw new Error("sources must be an object");
  const out = new Map<string, SequenceEntry[]>();
  for (const [endpoint, list] of Object.entries(doc.sources)) {
    if (!Array.isArray(list)) throw new Error(`sources[${JSON.stringify(endpoint)}] must be an array`);
    out.set(
      endpoint,
      list.map((e: unknown, i) => {
        const where = `sources[${JSON.stringify(endpoint)}][${i}]`;
        if (!isObject(e)) throw new Error(`${where} must be an object`);
        const { topic, publisherId, sequence, atMs } = e;
        if (typeof topic !== "string" || topic === "") throw new Error(`${where}.topic must be a non-empty string`);
        if (typeof publisherId !== "number" || !Number.isInteger(publisherId) || publisherId < 0 || publisherId > 0xffff_ffff) {
          throw new Error(`${where}.publisherId must be an integer in [0, 4294967295]`);
        }
        if (typeof sequence !== "string" || !/^[0-9]{1,20}$/.test(sequence)) throw new Error(`${where}.sequence must be a decimal string`);
        if (typeof atMs !== "number" || !Number.isFinite(atMs) || atMs < 0) throw new Error(`${where}.atMs must be a finite time`);
        return { topic, publisherId, sequence: BigInt(sequence), atMs };
      }),
    );
  }
  return out;
}

/** The saved state, or null when there is none; throws (with the path) when it is unreadable. */
export function loadSequenceState(stateDir: string): Map<string, SequenceEntry[]> | null {
  const path = sequenceStatePath(stateDir);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  try {
    return parseSequenceState(text);
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The state file, rewritten in place through one descriptor kept open: a save is one write at
 * offset 0, padded with spaces to the longest text written so far (JSON allows trailing
 * whitespace), so it needs no truncate. A write-rename-close per save, four times a second, was
 * some 8% of the pipeline's busy time. A SIGKILL cannot split one write of a text within a page
 * (the usual size); a longer text, or a power loss (no fsync), can leave a torn file, which the
 * next start logs and ignores, as the file is only an aid to counting.
 */
export class SequenceStateFile {
  private fd: number | null = null;
  /** Bytes the file holds: what a shorter text must cover with padding. */
  private size = 0;

  constructor(private readonly stateDir: string) {}

  save(state: SequenceState, nowMs = Date.now()): void {
    if (this.fd === null) {
      const path = sequenceStatePath(this.stateDir);
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // Not truncated at open: a kill before the first save keeps the last run's state.
      this.fd = openSync(path, constants.O_WRONLY | constants.O_CREAT, 0o600);
      this.size = fstatSync(this.fd).size;
    }
    const text = formatSequenceState(state, nowMs);
    const bytes = Buffer.byteLength(text);
    writeSync(this.fd, bytes < this.size ? text + " ".repeat(this.size - bytes) : text, 0);
    this.size = Math.max(this.size, bytes);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
