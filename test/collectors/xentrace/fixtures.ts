// Shared paths and helpers for the xentrace tests (not a test file itself).
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { DomainRunTimeAccounting, type RunTimeSnapshot } from "../../../collectors/xentrace/domainRunTime.js";
import { XentraceParser, type TraceParseStats, type TraceParserOptions } from "../../../collectors/xentrace/traceRecords.js";

/** The tests' random cases are seeded so that failures reproduce. */
export { prng } from "../../../lab/common/prng.js";

/** Compiled to dist/test/collectors/xentrace/: four levels up is the repo root. */
export const repoRoot = new URL("../../../../", import.meta.url);
export const fixtureDir = new URL("../../../../../shared/fixtures/xentrace/", import.meta.url);

/** The TSC rate of the fixture host, as the fixture README gives it for xenalyze. */
export const FIXTURE_CPU_HZ_ARG = "2596M";
export const FIXTURE_CPU_HZ = 2596e6;

export function fixturePath(name: string): string {
  return fileURLToPath(new URL(name, fixtureDir));
}

export function fixtureNames(): string[] {
  return readdirSync(fixtureDir)
    .filter((n) => n.endsWith(".bin"))
    .sort();
}

export function readFixture(name: string): Buffer {
  return readFileSync(new URL(name, fixtureDir));
}

export interface Accounted {
  stats: TraceParseStats;
  snapshot: RunTimeSnapshot;
  maxBuffered: number;
  maxCarried: number;
}

/** Parse chunks (in order) and account them, through the allocation-free record view as the CLI does. */
export function accountChunks(chunks: Iterable<Uint8Array>, options: Partial<TraceParserOptions> = {}): Accounted {
  const accounting = new DomainRunTimeAccounting();
  const parser = new XentraceParser({
    ...options,
    onRecordView: (r) => accounting.recordView(r),
    onCpuEnd: (cpu, tsc) => accounting.endCpu(cpu, tsc),
  });
  let maxBuffered = 0;
  let maxCarried = 0;
  for (const c of chunks) {
    parser.write(c);
    maxBuffered = Math.max(maxBuffered, parser.bufferedRecords);
    maxCarried = Math.max(maxCarried, parser.carriedBytes);
  }
  parser.end();
  return { stats: parser.stats, snapshot: accounting.snapshot(), maxBuffered, maxCarried };
}

/** One record for the synthetic trace builder. tsc undefined = record without a TSC. */
export interface SynthRecord {
  event: number;
  tsc?: bigint;
  extra?: number[];
}

export function encodeRecord(r: SynthRecord): Buffer {
  const extra = r.extra ?? [];
  const hasTsc = r.tsc !== undefined;
  const buf = Buffer.alloc(4 + (hasTsc ? 8 : 0) + 4 * extra.length);
  buf.writeUInt32LE(((hasTsc ? 0x80000000 : 0) | (extra.length << 28) | r.event) >>> 0, 0);
  let o = 4;
  if (r.tsc !== undefined) {
    buf.writeUInt32LE(Number(r.tsc & 0xffffffffn), 4);
    buf.writeUInt32LE(Number(r.tsc >> 32n), 8);
    o = 12;
  }
  for (const w of extra) {
    buf.writeUInt32LE(w >>> 0, o);
    o += 4;
  }
  return buf;
}

/** A window: CPU-change header {0x2001f003, cpu, size} then the records. */
export function encodeWindow(cpu: number, records: SynthRecord[]): Buffer {
  const body = Buffer.concat(records.map(encodeRecord));
  const header = Buffer.alloc(12);
  header.writeUInt32LE(0x2001f003, 0);
  header.writeUInt32LE(cpu, 4);
  header.writeUInt32LE(body.length, 8);
  return Buffer.concat([header, body]);
}

/** Runstate-change event ID for old -> new (0 running, 1 runnable, 2 blocked, 3 offline). */
export function runstate(oldState: number, newState: number): number {
  return 0x00021001 | (oldState << 8) | (newState << 4);
}

/** Runstate data word: {vcpu:16 low, dom:16 high}. */
export function dv(dom: number, vcpu: number): number {
  return ((dom << 16) | vcpu) >>> 0;
}
