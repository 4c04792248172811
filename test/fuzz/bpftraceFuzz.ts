/**
 * Fuzz targets for the two readers of `bpftrace -f json` output: the CPU collector's line parser
 * and window builder (collectors/cpu/bpftraceJsonLines.ts, cpuWindows.ts) and the page cache
 * collector's parser (collectors/pagecache/pageCacheOutput.ts). Each case feeds a mutated stream
 * of the lines bpftrace prints; the batches that come out must be what the collector can encode
 * on the wire (its next step), so a value that would throw there is counted as a crash.
 */
import { LineSplitter, parseBpftraceLine } from "../../collectors/cpu/bpftraceJsonLines.js";
import { CpuWindowBuilder, type CpuWindowCounters } from "../../collectors/cpu/cpuWindows.js";
import { PageCacheOutputParser, type PageCacheParserCounters } from "../../collectors/pagecache/pageCacheOutput.js";
import { decodeCpuBatch, decodePageCacheBatch, encodeCpuBatch, encodePageCacheBatch, type CpuBatch, type PageCacheBatch } from "../../protocol/rawBatches.js";
import { countRejection, crash, mutateBytes, mutateJson, newReport, type FuzzReport } from "./fuzzTargets.js";
import { SeededRandom } from "./seededRandom.js";

/** Number literals that broke 64-bit readers: past 2^53, past 2^64, negative, fractional, exponent. */
const NASTY_NUMBERS: readonly string[] = ["18446744073709551615", "18446744073709551616", "99999999999999999999999", "-1", "-9223372036854775808", "1.5", "1e308", "-0", "4294967296", "0"];

/** Replaces one number literal in a JSON line with a nasty one (the text, so big literals survive). */
function mutateNumber(rng: SeededRandom, line: string): string {
  const numbers = [...line.matchAll(/-?\d+(\.\d+)?([eE][-+]?\d+)?/g)];
  if (numbers.length === 0) return line;
  const m = rng.pick(numbers);
  return `${line.slice(0, m.index)}${rng.pick(NASTY_NUMBERS)}${line.slice(m.index + m[0].length)}`;
}

/** One mutated line: a structural JSON change, a number swapped, or its bytes damaged. */
function mutateLine(rng: SeededRandom, valid: unknown): Buffer {
  const op = rng.int(3);
  if (op === 0) return mutateJson(rng, valid);
  const text = mutateNumber(rng, JSON.stringify(valid));
  return op === 1 ? Buffer.from(text) : mutateBytes(rng, Buffer.from(text));
}

/** Why a batch the collector would publish is malformed, or null. Encoding it is the collector's next step. */
function cpuBatchViolation(b: CpuBatch): string | null {
  if (b.windowStartNs < 0n || b.windowEndNs < b.windowStartNs || b.windowEndNs >= 2n ** 64n) return `window ${b.windowStartNs}..${b.windowEndNs} ns`;
  for (const t of b.threads) {
    if (!Number.isSafeInteger(t.cpuNs) || t.cpuNs < 0) return `thread ${t.tid} cpuNs ${t.cpuNs}`;
    if (!Number.isInteger(t.pid) || t.pid < 0 || t.pid > 0xffff_ffff || !Number.isInteger(t.tid) || t.tid < 0 || t.tid > 0xffff_ffff) return `thread pid ${t.pid} tid ${t.tid}`;
  }
  try {
    decodeCpuBatch(encodeCpuBatch(b));
  } catch (err) {
    return `does not survive encodeCpuBatch/decodeCpuBatch: ${String(err)}`;
  }
  return null;
}

function pageCacheBatchViolation(b: PageCacheBatch): string | null {
  for (const p of b.processes) {
    if (!Number.isSafeInteger(p.insertedBytes) || p.insertedBytes < 0) return `pid ${p.pid} insertedBytes ${p.insertedBytes}`;
    if (!Number.isSafeInteger(p.residentBytes)) return `pid ${p.pid} residentBytes ${p.residentBytes}`;
  }
  if (!Number.isSafeInteger(b.untrackedInserts) || b.untrackedInserts < 0) return `untrackedInserts ${b.untrackedInserts}`;
  try {
    decodePageCacheBatch(encodePageCacheBatch(b));
  } catch (err) {
    return `does not survive encodePageCacheBatch/decodePageCacheBatch: ${String(err)}`;
  }
  return null;
}

/**
 * One case's lines through a collector's parsing (`parse` hands each batch it makes to
 * `published`): a batch `violation` finds fault with is a crash, and so is a throw. False when
 * it threw: the case is over.
 */
function parseCase<B>(r: FuzzReport, i: number, kind: string, violation: (batch: B) => string | null, parse: (published: (batch: B) => void) => void): boolean {
  try {
    parse((batch) => {
      const bad = violation(batch);
      if (bad !== null) crash(r, i, `a ${kind} the collector cannot publish: ${bad}`);
    });
    return true;
  } catch (err) {
    crash(r, i, `threw ${String(err)}`);
    return false;
  }
}

// ---- the CPU collector ---------------------------------------------------------------------

const INTERVAL_MS = 100;

/** One window as bpf/cpuTime.bt prints it: its maps, then its marker. */
function cpuWindowLines(rng: SeededRandom, slot: number): unknown[] {
  const set = slot % 3;
  const pid = 1000 + rng.int(50);
  const run: Record<string, number> = {};
  for (let k = 0; k < 1 + rng.int(4); k++) run[`${pid},${pid + k}`] = (slot + 1) * 50_000_000 + rng.int(1_000_000);
  const lines: unknown[] = [{ type: "map", data: { [`@run${set}`]: run } }];
  if (rng.chance(0.3)) lines.push({ type: "map", data: { [`@fork${set}`]: { [String(pid + 9)]: 1 } } });
  if (rng.chance(0.3)) lines.push({ type: "map", data: { [`@exit${set}`]: { [`${pid},${pid + 1}`]: 1 } } });
  if (rng.chance(0.1)) lines.push({ type: "lost_events", data: { events: 1 + rng.int(5) } });
  lines.push({ type: "printf", data: `cpu_window ${slot} ${slot * INTERVAL_MS * 1_000_000 + 5}\n` });
  return lines;
}

/** Windows in a row without output after which the builder counts as stuck. */
const STUCK_AFTER_WINDOWS = 20;

function newBuilder(): CpuWindowBuilder {
  const builder = new CpuWindowBuilder({ intervalMs: INTERVAL_MS, mapKeysMax: 16384 });
  builder.accept({ type: "attached_probes", probes: 6 });
  return builder;
}

const CPU_COUNTERS = ["unknownLines", "badEntries", "repeatedMarkers", "skippedWindows", "mapFull"] as const satisfies readonly (keyof CpuWindowCounters)[];

/**
 * Each case is one window's worth of lines through the collector's own chain (line splitter,
 * parseBpftraceLine, CpuWindowBuilder), one of them mutated. Rejected: the parser called a line
 * invalid, or a builder counter for what it did not understand rose; accepted: neither.
 */
export function fuzzBpftraceCpuLines(cases: number, seed: number): FuzzReport {
  const rng = new SeededRandom(seed);
  const r = newReport("bpftrace lines (cpu)", seed);
  const splitter = new LineSplitter(64 * 1024);
  let builder = newBuilder();
  let slot = 10;
  let casesWithoutWindow = 0;
  for (let i = 0; i < cases; i++) {
    r.cases++;
    const lines = cpuWindowLines(rng, slot++);
    const which = rng.int(lines.length);
    const chunks = lines.map((l, k) => (k === which ? mutateLine(rng, l) : Buffer.from(JSON.stringify(l))));
    const stream = Buffer.concat(chunks.flatMap((c) => [c, Buffer.from("\n")]));
    const before = { ...builder.counters };
    const overlongBefore = splitter.overlongLines;
    let invalid: string | null = null;
    const ran = parseCase(r, i, "window", cpuBatchViolation, (published) => {
      // Split the stream at a random point, as pipe reads do.
      const cut = rng.int(stream.length + 1);
      for (const raw of [...splitter.push(stream.subarray(0, cut)), ...splitter.push(stream.subarray(cut))]) {
        const parsed = parseBpftraceLine(raw);
        if (parsed.kind === "invalid") {
          invalid ??= parsed.reason.startsWith("not JSON") ? "parser: not JSON" : `parser: ${parsed.reason}`;
          continue;
        }
        if (parsed.kind === "blank") continue;
        const batch = builder.accept(parsed.line);
        if (batch !== null) {
          casesWithoutWindow = 0;
          published(batch);
        }
      }
    });
    if (!ran) continue;
    const rose = CPU_COUNTERS.find((k) => builder.counters[k] > before[k]);
    if (splitter.overlongLines > overlongBefore) countRejection(r, "splitter: overlong line");
    else if (invalid !== null) countRejection(r, invalid);
    else if (rose !== undefined) countRejection(r, `builder: ${rose}`);
    else r.accepted++;
    // Counters are what the collector exports: they must stay safe integers.
    const badCounter = Object.entries(builder.counters).find(([, v]) => !Number.isSafeInteger(v) || v < 0);
    if (badCounter !== undefined) crash(r, i, `builder counter ${badCounter[0]}: ${badCounter[1]}`);
    // One bad line may cost its window, not the ones after it: a builder that stays silent is stuck.
    if (++casesWithoutWindow >= STUCK_AFTER_WINDOWS) crash(r, i, `stuck: no window for ${STUCK_AFTER_WINDOWS} windows in a row`);
    if (badCounter !== undefined || casesWithoutWindow >= STUCK_AFTER_WINDOWS) {
      // Carry on from a fresh builder, as the collector's restart would, so later cases still test something.
      builder = newBuilder();
      casesWithoutWindow = 0;
    }
  }
  return r;
}

// ---- the page cache collector --------------------------------------------------------------

function pageCacheTickLines(rng: SeededRandom, tick: number): unknown[] {
  const perPid = (): Record<string, number> => {
    const m: Record<string, number> = {};
    for (let k = 0; k < 1 + rng.int(3); k++) m[String(2000 + rng.int(100))] = 4096 * (1 + rng.int(1000));
    return m;
  };
  const lines: unknown[] = [
    { type: "map", data: { "@inserted": perPid() } },
    { type: "map", data: { "@resident": perPid() } },
    { type: "map", data: { "@untrackedInserts": rng.int(10) } },
    { type: "map", data: { "@ownedFolios": rng.int(10_000) } },
  ];
  if (rng.chance(0.1)) lines.push({ type: "lost_events", data: { events: 1 + rng.int(5) } });
  if (rng.chance(0.05)) lines.push({ type: "helper_error", msg: "map full", helper: "map_update_elem", retcode: -7 });
  lines.push({ type: "printf", data: `pc_tick ${tick * 250_000_000}\n` });
  return lines;
}

const PC_COUNTERS = ["invalidLines", "helperErrors"] as const satisfies readonly (keyof PageCacheParserCounters)[];

/** The parser's counters are exported as they are: each must stay a safe integer ≥ 0. */
function counterViolation(parser: PageCacheOutputParser): string | null {
  for (const [k, v] of [...Object.entries(parser.counters), ...Object.entries(parser.kernel)]) {
    if (!Number.isSafeInteger(v) || v < 0) return `counter ${k}: ${v}`;
  }
  return null;
}

/** As fuzzBpftraceCpuLines, for bpf/pageCache.bt's lines through PageCacheOutputParser. */
export function fuzzBpftracePageCacheLines(cases: number, seed: number): FuzzReport {
  const rng = new SeededRandom(seed);
  const r = newReport("bpftrace lines (page cache)", seed);
  let parser = new PageCacheOutputParser();
  parser.feed(JSON.stringify({ type: "attached_probes", data: { probes: 5 } }));
  parser.feed(JSON.stringify({ type: "printf", data: "pc_start 1000\n" }));
  for (let i = 0; i < cases; i++) {
    r.cases++;
    const lines = pageCacheTickLines(rng, i + 1);
    const which = rng.int(lines.length);
    const before = { ...parser.counters };
    const ran = parseCase(r, i, "batch", pageCacheBatchViolation, (published) => {
      // The collector reads lines as text (its splitter decodes UTF-8 leniently); a mutated line may hold a "\n".
      const text = lines.map((l, k) => (k === which ? mutateLine(rng, l).toString("utf8") : JSON.stringify(l))).join("\n");
      for (const line of text.split("\n")) {
        const batch = parser.feed(line);
        if (batch !== null) published(batch);
      }
    });
    if (!ran) continue;
    const rose = PC_COUNTERS.find((k) => parser.counters[k] > before[k]);
    if (rose !== undefined) countRejection(r, `parser: ${rose}`);
    else if (parser.ended) countRejection(r, "parser: stream ended (pc_end)");
    else r.accepted++;
    const bad = counterViolation(parser);
    if (bad !== null) crash(r, i, bad);
    if (parser.ended || bad !== null) {
      // A mutated line that reads as pc_end ends the stream: a new run starts, as after the collector's restart.
      parser = new PageCacheOutputParser();
      parser.feed(JSON.stringify({ type: "printf", data: "pc_start 1000\n" }));
    }
  }
  return r;
}
