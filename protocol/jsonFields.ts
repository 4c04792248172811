/**
 * Field checks shared by the JSON payload decoders (aggregates, actuator messages). Each throws
 * a ProtocolError naming the payload and the field path, so a receiver can log exactly what was
 * wrong and drop the message before it changes anything.
 */
import { ProtocolError } from "./wireFormat.js";

/** The kernel's largest pid_max (PID_MAX_LIMIT on 64-bit): no real PID is above it. */
export const PID_MAX = 4_194_304;

export function parseJsonObject(b: Buffer, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(b.toString("utf8"));
  } catch (err) {
    throw new ProtocolError(`frame 2 (${what})`, `not JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(parsed)) throw new ProtocolError(`frame 2 (${what})`, "must be a JSON object");
  return parsed;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function fail(what: string, path: string, reason: string): never {
  throw new ProtocolError(`frame 2 (${what}) field ${path}`, reason);
}

export function objectField(o: Record<string, unknown>, key: string, what: string, path = key): Record<string, unknown> {
  const v = o[key];
  if (!isPlainObject(v)) fail(what, path, "must be an object");
  return v;
}

export function stringField(o: Record<string, unknown>, key: string, what: string, nonEmpty: boolean, path = key): string {
  const v = o[key];
  if (typeof v !== "string" || (nonEmpty && v === "")) fail(what, path, nonEmpty ? "must be a non-empty string" : "must be a string");
  return v;
}

export interface NumberRange {
  /** Inclusive lower bound. */
  min?: number;
  /** Exclusive lower bound. */
  above?: number;
  max?: number;
}

function describeRange(r: NumberRange): string {
  const parts: string[] = [];
  if (r.above !== undefined) parts.push(`> ${r.above}`);
  if (r.min !== undefined) parts.push(`≥ ${r.min}`);
  if (r.max !== undefined) parts.push(`≤ ${r.max}`);
  return parts.length === 0 ? "a finite number" : `a finite number ${parts.join(" and ")}`;
}

function checkNumber(v: unknown, range: NumberRange, what: string, path: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) fail(what, path, `must be ${describeRange(range)}, got ${show(v)}`);
  if ((range.min !== undefined && v < range.min) || (range.above !== undefined && v <= range.above) || (range.max !== undefined && v > range.max)) {
    fail(what, path, `must be ${describeRange(range)}, got ${show(v)}`);
  }
  return v;
}

export function numberField(o: Record<string, unknown>, key: string, range: NumberRange, what: string, path = key): number {
  return checkNumber(o[key], range, what, path);
}

export function nullableNumberField(o: Record<string, unknown>, key: string, range: NumberRange, what: string, path = key): number | null {
  const v = o[key];
  if (v === null) return null;
  if (v === undefined) fail(what, path, `must be ${describeRange(range)} or null, got undefined`);
  return checkNumber(v, range, what, path);
}

/** An array of PIDs: integers in [1, PID_MAX]. */
export function pidsField(o: Record<string, unknown>, key: string, what: string, path = key): number[] {
  const v = o[key];
  if (!Array.isArray(v)) fail(what, path, `must be an array of PIDs, got ${show(v)}`);
  for (let i = 0; i < v.length; i++) {
    const pid: unknown = v[i];
    if (typeof pid !== "number" || !Number.isInteger(pid) || pid < 1 || pid > PID_MAX) {
      fail(what, `${path}[${i}]`, `must be an integer PID in [1, ${PID_MAX}], got ${show(pid)}`);
    }
  }
  return v as number[];
}

/**
 * Start times (field 22 of /proc/PID/stat, clock ticks since boot) paired by index with `pids`:
 * non-negative safe integers, exactly one per PID. A PID listed twice would make the pairs
 * ambiguous, so that is rejected too.
 */
export function startTimesField(o: Record<string, unknown>, key: string, pids: readonly number[], what: string, path = key): number[] {
  const v = o[key];
  if (!Array.isArray(v)) fail(what, path, `must be an array of start times (one per PID), got ${show(v)}`);
  if (v.length !== pids.length) fail(what, path, `must hold one start time per PID: ${v.length} start times for ${pids.length} PIDs`);
  for (let i = 0; i < v.length; i++) {
    const t: unknown = v[i];
    if (typeof t !== "number" || !Number.isSafeInteger(t) || t < 0) fail(what, `${path}[${i}]`, `must be a non-negative integer (clock ticks since boot), got ${show(t)}`);
  }
  // Publishers list PIDs ascending, which rules out a repeat without a set.
  let ascending = true;
  for (let i = 1; i < pids.length && ascending; i++) ascending = (pids[i - 1] as number) < (pids[i] as number);
  if (ascending) return v as number[];
  const seen = new Set<number>();
  for (const pid of pids) {
    if (seen.has(pid)) fail(what, path, `PID ${pid} is listed twice, so its start time is ambiguous`);
    seen.add(pid);
  }
  return v as number[];
}

/** A short rendering of a rejected value for the error message (never the whole payload). */
function show(v: unknown): string {
  if (v === undefined) return "undefined";
  const s = typeof v === "number" ? String(v) : JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}
