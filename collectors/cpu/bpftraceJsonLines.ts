/**
 * Parses the stdout of `bpftrace -f json` (0.17): one JSON object per line. Pure, no I/O.
 * The traps handled here (see ../shared/reference/platform-facts.md §4): blank lines around the
 * exit dump, map keys that are strings (multi-keys joined by ","), signed 64-bit values that may
 * exceed 2^53, and raw bytes >= 0x80 that can make a line invalid UTF-8 or invalid JSON.
 */

export interface MapEntry {
  /** The map key as bpftrace prints it ("" for a map without keys). */
  key: string;
  value: bigint;
}

export interface PrintedMap {
  /** "@name" as in the script ("@" for the unnamed map). */
  name: string;
  entries: MapEntry[];
  /** Entries whose value was not an integer (strings, tuples, hist buckets): left out. */
  nonIntegerEntries: number;
}

export type BpftraceLine =
  | { type: "attached_probes"; probes: number }
  | { type: "printf"; text: string }
  | { type: "map"; maps: PrintedMap[] }
  | { type: "lost_events"; events: number }
  /** Any other well-formed line (time, cat, value, hist, stats, helper_error, ...). */
  | { type: "other"; rawType: string };

export type LineResult =
  | { kind: "blank" }
  | { kind: "line"; line: BpftraceLine; invalidUtf8: boolean }
  | { kind: "invalid"; reason: string; invalidUtf8: boolean };

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const lossyUtf8 = new TextDecoder("utf-8");

/**
 * Parses one line (without its "\n"). Never throws. Invalid UTF-8 is decoded with U+FFFD
 * replacements (the JSON structure survives it) and flagged; a line that is still not valid
 * JSON of the expected shape comes back as `invalid`.
 */
export function parseBpftraceLine(raw: Buffer | string): LineResult {
  let text: string;
  let invalidUtf8 = false;
  if (typeof raw === "string") {
    text = raw;
  } else {
    try {
      text = strictUtf8.decode(raw);
    } catch {
      invalidUtf8 = true;
      text = lossyUtf8.decode(raw);
    }
  }
  if (text.trim() === "") return { kind: "blank" };
  let parsed: unknown;
  try {
    parsed = JSON.parse(quoteLargeIntegers(text));
  } catch (err) {
    return { kind: "invalid", reason: `not JSON: ${(err as Error).message}`, invalidUtf8 };
  }
  if (!isObject(parsed) || typeof parsed.type !== "string") {
    return { kind: "invalid", reason: "not an object with a string \"type\"", invalidUtf8 };
  }
  const line = toLine(parsed.type, parsed);
  if (typeof line === "string") return { kind: "invalid", reason: line, invalidUtf8 };
  return { kind: "line", line, invalidUtf8 };
}

function toLine(type: string, o: Record<string, unknown>): BpftraceLine | string {
  const data = o.data;
  switch (type) {
    case "attached_probes": {
      const probes = isObject(data) ? toBigInt(data.probes) : null;
      return probes === null ? "attached_probes without data.probes" : { type, probes: Number(probes) };
    }
    case "printf":
      return typeof data === "string" ? { type, text: data } : "printf data is not a string";
    case "lost_events": {
      const events = isObject(data) ? toBigInt(data.events) : null;
      return events === null ? "lost_events without data.events" : { type, events: Number(events) };
    }
    case "map": {
      if (!isObject(data)) return "map data is not an object";
      const maps: PrintedMap[] = [];
      for (const [name, body] of Object.entries(data)) maps.push(toPrintedMap(name, body));
      return { type, maps };
    }
    default:
      return { type: "other", rawType: type };
  }
}

function toPrintedMap(name: string, body: unknown): PrintedMap {
  const entries: MapEntry[] = [];
  let nonIntegerEntries = 0;
  const scalar = toBigInt(body);
  if (scalar !== null) {
    entries.push({ key: "", value: scalar });
  } else if (isObject(body)) {
    for (const [key, v] of Object.entries(body)) {
      const value = toBigInt(v);
      if (value === null) nonIntegerEntries++;
      else entries.push({ key, value });
    }
  } else {
    nonIntegerEntries++;
  }
  return { name, entries, nonIntegerEntries };
}

/** Marks an integer literal that JSON.parse would round; see quoteLargeIntegers. */
const BIG_MARK = "\u0001big:";

function toBigInt(v: unknown): bigint | null {
  if (typeof v === "number") return Number.isSafeInteger(v) ? BigInt(v) : null;
  if (typeof v === "string" && v.startsWith(BIG_MARK)) {
    const digits = v.slice(BIG_MARK.length);
    return /^-?\d+$/.test(digits) ? BigInt(digits) : null;
  }
  return null;
}

/**
 * Rewrites integer literals outside strings that are too long to be exact as doubles into
 * marked strings, so 64-bit values reach toBigInt without rounding. Scans the text once,
 * tracking string literals and their escapes; other tokens pass through unchanged.
 */
export function quoteLargeIntegers(text: string): string {
  let out = "";
  let copiedUpTo = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
      continue;
    }
    if (c === 0x22) {
      inString = true;
      continue;
    }
    if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      while (j < text.length && isDigit(text.charCodeAt(j))) j++;
      const next = j < text.length ? text.charCodeAt(j) : 0;
      const isInteger = next !== 0x2e /* . */ && next !== 0x65 /* e */ && next !== 0x45; /* E */
      const digits = text.slice(c === 0x2d ? i + 1 : i, j).length;
      if (isInteger && digits > 15) {
        out += text.slice(copiedUpTo, i) + JSON.stringify(BIG_MARK + text.slice(i, j));
        copiedUpTo = j;
      }
      i = j - 1;
    }
  }
  return copiedUpTo === 0 ? text : out + text.slice(copiedUpTo);
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Splits a byte stream into lines. Works on bytes, not text, so a multi-byte character split
 * across chunks is reassembled before decoding ("\n" never occurs inside a UTF-8 sequence).
 * A line longer than maxLineBytes is dropped whole and counted, so memory stays bounded.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private partBytes = 0;
  private discarding = false;
  /** Lines dropped because they exceeded maxLineBytes. */
  overlongLines = 0;

  constructor(private readonly maxLineBytes = 64 * 1024 * 1024) {
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) {
      throw new Error(`LineSplitter: maxLineBytes must be a positive integer, got ${maxLineBytes}`);
    }
  }

  push(chunk: Buffer): Buffer[] {
    const lines: Buffer[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      this.append(chunk.subarray(start, nl));
      if (!this.discarding) lines.push(this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partBytes));
      this.reset();
      start = nl + 1;
    }
    if (start < chunk.length) this.append(chunk.subarray(start));
    return lines;
  }

  /** The unterminated last line, if any (call at end of stream). */
  flush(): Buffer | null {
    const line = this.discarding || this.partBytes === 0 ? null : Buffer.concat(this.parts, this.partBytes);
    this.reset();
    return line;
  }

  private append(part: Buffer): void {
    if (this.discarding) return;
    if (this.partBytes + part.length > this.maxLineBytes) {
      this.overlongLines++;
      this.discarding = true;
      this.parts = [];
      this.partBytes = 0;
      return;
    }
    // Copy: the caller's chunk buffer may be reused.
    this.parts.push(Buffer.from(part));
    this.partBytes += part.length;
  }

  private reset(): void {
    this.parts = [];
    this.partBytes = 0;
    this.discarding = false;
  }
}
