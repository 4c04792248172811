// XentraceParser's `delivers` option with DomainRunTimeAccounting's accountedEvent, as
// `cage xentrace summarize` runs them: the same results as merging every record, on the fixtures
// and on mutated traces, fed whole or in chunks cut at any byte (so misaligned data too).
import { test } from "node:test";
import assert from "node:assert/strict";
import { DomainRunTimeAccounting, accountedEvent } from "../../../collectors/xentrace/domainRunTime.js";
import { TRC_SCHED_SWITCH } from "../../../collectors/xentrace/traceFormat.js";
import { XentraceParser, type TraceParserOptions } from "../../../collectors/xentrace/traceRecords.js";
import { encodeWindow, fixtureNames, prng, readFixture } from "./fixtures.js";

/** Parse and account as summarizeTraceFile does; the snapshot is taken at the trace's last time. */
function summarize(chunks: Uint8Array[], options: Partial<TraceParserOptions> = {}): { stats: unknown; snapshot: unknown; emitted: number; lateRecords: number } {
  const accounting = new DomainRunTimeAccounting();
  const parser = new XentraceParser({ ...options, onRecordView: (r) => accounting.recordView(r), onCpuEnd: (cpu, tsc) => accounting.endCpu(cpu, tsc) });
  for (const c of chunks) parser.write(c);
  parser.end();
  // emitted differs by design (fewer records are handed over), and with it the merge's bookkeeping.
  const { emitted, forcedFlushes: _forced, maxBufferedRecords: _max, ...stats } = parser.stats;
  const { atTsc: _at, ...snapshot } = accounting.snapshot(parser.stats.lastTsc);
  return { stats, snapshot, emitted, lateRecords: parser.stats.lateRecords };
}

function chunksOf(data: Buffer, rand: () => number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let o = 0; o < data.length; ) chunks.push(data.subarray(o, (o += 1 + Math.floor(rand() * 300))));
  return chunks;
}

void test("on every fixture, delivering only accounted events gives the same stats and times", () => {
  const rand = prng(7);
  for (const name of fixtureNames()) {
    const data = readFixture(name);
    const all = summarize([data]);
    const some = summarize([data], { delivers: accountedEvent });
    assert.deepEqual(some.stats, all.stats, name);
    assert.deepEqual(some.snapshot, all.snapshot, name);
    assert.ok(some.emitted < all.emitted, `${name}: ${some.emitted} of ${all.emitted} records delivered`);
    if (data.length < 2_000_000) {
      const chunked = summarize(chunksOf(data, rand), { delivers: accountedEvent });
      assert.deepEqual([chunked.stats, chunked.snapshot], [all.stats, all.snapshot], `${name} in chunks`);
    }
  }
});

void test("mutated traces: the same stats and times unless records go back in time", () => {
  const rand = prng(20251205);
  const int = (n: number): number => Math.floor(rand() * n);
  const sources = ["trace-sched.bin", "trace-all-2dom.bin", "trace-sched-pvh.bin", "trace-all.bin"].map(readFixture);
  let inOrder = 0;
  let late = 0;
  for (let i = 0; i < 2000; i++) {
    const src = sources[i % sources.length] as Buffer;
    const start = int(4) === 0 ? 0 : int(src.length - 64);
    let data = Buffer.from(src.subarray(start, start + 512 + int(8192)));
    for (let m = int(3); m > 0; m--) {
      const at = int(Math.max(1, data.length));
      const kind = int(3);
      if (kind === 0 && data.length > 0) data[at] = (data[at] as number) ^ (1 << int(8));
      else if (kind === 1) data = Buffer.concat([data.subarray(0, at), Buffer.from([int(256)]), data.subarray(at)]);
      else data = Buffer.concat([data.subarray(0, at), data.subarray(at + 1 + int(16))]);
    }
    const all = summarize([data]);
    const some = summarize(int(2) === 0 ? [data] : chunksOf(data, rand), { delivers: accountedEvent });
    if (all.lateRecords > 0) {
      // Records older than ones already emitted (corrupt TSCs): which of them count as late, the first
      // time and so the merged order depend on the records merged, which here are fewer.
      late++;
      continue;
    }
    inOrder++;
    assert.deepEqual(some.stats, all.stats, `case ${i}`);
    assert.deepEqual(some.snapshot, all.snapshot, `case ${i}`);
  }
  assert.ok(inOrder > 1000 && late > 100, `${inOrder} cases in time order, ${late} with late records`);
});

void test("a CPU whose last record is turned away ends where that record falls in time", () => {
  // CPU 1's last record (an event the accounting does not act on) comes after CPU 0's last switch
  // record, so CPU 1 ends after that switch, as when every record is merged.
  const other = 0x00802001;
  const data = Buffer.concat([
    encodeWindow(0, [{ event: TRC_SCHED_SWITCH, tsc: 1000n, extra: [0, 0, 1, 0] }]),
    encodeWindow(1, [
      { event: TRC_SCHED_SWITCH, tsc: 1100n, extra: [0x7fff, 1, 1, 0] },
      { event: other, tsc: 5000n, extra: [] },
    ]),
    encodeWindow(0, [{ event: TRC_SCHED_SWITCH, tsc: 3000n, extra: [1, 0, 0, 0] }]),
  ]);
  const ends: string[] = [];
  for (const delivers of [undefined, accountedEvent]) {
    const order: string[] = [];
    const parser = new XentraceParser({
      ...(delivers !== undefined ? { delivers } : {}),
      onRecordView: (r) => {
        if (accountedEvent(r.event)) order.push(`cpu ${r.cpu} at ${r.tsc}`);
      },
      onCpuEnd: (cpu, tsc) => order.push(`cpu ${cpu} ends at ${tsc}`),
    });
    parser.write(data);
    parser.end();
    ends.push(order.join(", "));
  }
  assert.equal(ends[1], ends[0]);
  assert.match(ends[0] as string, /cpu 0 at 2000, cpu 0 ends at 2000, cpu 1 ends at 4000$/);
});
