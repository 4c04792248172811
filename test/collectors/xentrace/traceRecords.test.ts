import { test } from "node:test";
import assert from "node:assert/strict";
import { LOST_RECORDS_END, TRC_LOST_RECORDS } from "../../../collectors/xentrace/traceFormat.js";
import { XentraceParser, parseTrace, toTraceRecord, type TraceRecord } from "../../../collectors/xentrace/traceRecords.js";
import { accountChunks, dv, encodeWindow, fixtureNames, prng, readFixture, runstate } from "./fixtures.js";

function collect(data: Uint8Array): { records: TraceRecord[]; stats: ReturnType<typeof parseTrace> } {
  const records: TraceRecord[] = [];
  const stats = parseTrace(data, (r) => records.push(r));
  return { records, stats };
}

const T0 = 0x1_0000_0000n; // a base above 2^32 exercises the hi word

void test("decodes records, inherits the TSC for records without one, and merges CPUs by TSC", () => {
  const data = Buffer.concat([
    encodeWindow(0, [
      { event: 0x00028004, tsc: T0 + 100n, extra: [1, 0] },
      { event: 0x00082009, extra: [3, 0x1000] }, // no TSC: inherits T0+100
      { event: 0x00028004, tsc: T0 + 300n, extra: [1, 0] },
    ]),
    encodeWindow(1, [
      { event: 0x00028004, tsc: T0 + 200n, extra: [2, 0] },
      { event: 0x00028004, tsc: T0 + 400n, extra: [2, 0] },
    ]),
  ]);
  const { records, stats } = collect(data);
  assert.deepEqual(
    records.map((r) => [r.cpu, r.tsc, r.hasTsc]),
    [
      [0, 0, true],
      [0, 0, false],
      [1, 100, true],
      [0, 200, true],
      [1, 300, true],
    ],
  );
  assert.deepEqual(records[1]?.extra, [3, 0x1000]);
  assert.equal(records[0]?.offset, 12);
  assert.equal(stats.records, 5);
  assert.equal(stats.windows, 2);
  assert.deepEqual(stats.cpus, [0, 1]);
  assert.equal(stats.lastTsc - stats.firstTsc, 300);
});

void test("wrap-buffer records are counted, unknown IDs skipped and counted, lost records handled twice", () => {
  const data = Buffer.concat([
    encodeWindow(0, [
      { event: 0x00028004, tsc: T0 + 10n, extra: [0, 0] },
      { event: 0x0001f002, tsc: T0 + 11n, extra: [0xdead, 0xbeef] }, // wrap padding
      { event: 0x00300001, tsc: T0 + 12n }, // two class bits: unknown
      { event: 0x0001f0aa, tsc: T0 + 13n }, // undefined TRC_GEN id: unknown
      { event: TRC_LOST_RECORDS, tsc: T0 + 50n, extra: [7, 0x00020001, Number(T0 + 20n), 1] },
    ]),
    encodeWindow(1, [{ event: 0x00028004, tsc: T0 + 30n, extra: [0, 0] }]),
  ]);
  const { records, stats } = collect(data);
  assert.equal(stats.wrapRecords, 1);
  assert.equal(stats.unknown, 2);
  assert.deepEqual(stats.unknownIds, { "0x00300001": 1, "0x0001f0aa": 1 });
  assert.equal(stats.lostRecordEvents, 1);
  assert.equal(stats.lostRecords, 7);
  // Lost record at first_tsc (T0+20), CPU 1's record at +30, then the lost record's end at +50.
  assert.deepEqual(
    records.map((r) => [r.event, r.orderTsc]),
    [
      [0x00028004, 0],
      [0x0001f002, 1],
      [TRC_LOST_RECORDS, 10],
      [0x00028004, 20],
      [LOST_RECORDS_END, 40],
    ],
  );
});

void test("chunks of random sizes give exactly the same records and results as one buffer", () => {
  const rand = prng(42);
  for (const name of ["trace-all-2dom.bin", "trace-sched-pvh.bin", "bench-all-20s.bin"]) {
    const data = readFixture(name);
    const whole = collect(data);
    for (let round = 0; round < 5; round++) {
      const records: TraceRecord[] = [];
      const parser = new XentraceParser({ onRecord: (r) => records.push(r) });
      for (let o = 0; o < data.length; ) {
        const n = 1 + Math.floor(rand() * (round % 2 === 0 ? 17 : 70000));
        parser.write(data.subarray(o, o + n));
        o += n;
      }
      parser.end();
      assert.deepEqual(records, whole.records, `${name} round ${round}`);
      const stats = parser.stats;
      assert.deepEqual({ ...stats, maxBufferedRecords: 0 }, { ...whole.stats, maxBufferedRecords: 0 });
    }
  }
});

void test("accounting results are identical whether the trace is fed whole or byte by byte", () => {
  const data = readFixture("trace-sched-2dom.bin");
  const whole = accountChunks([data]);
  const bytes = accountChunks((function* () {
    for (let i = 0; i < data.length; i++) yield data.subarray(i, i + 1);
  })());
  assert.deepEqual(bytes.snapshot, whole.snapshot);
  assert.ok(bytes.maxCarried < 32, `carried ${bytes.maxCarried} bytes`);
});

void test("fixtures parse cleanly with small reorder buffers", () => {
  for (const name of fixtureNames()) {
    const { stats } = collect(readFixture(name));
    assert.equal(stats.corrupt, 0, name);
    assert.equal(stats.truncatedBytes, 0, name);
    assert.equal(stats.lateRecords, 0, name);
    assert.equal(stats.forcedFlushes, 0, name);
    assert.ok(stats.maxBufferedRecords < 2000, `${name}: ${stats.maxBufferedRecords} buffered`);
  }
});

void test("a bad window header is reported with its offset and the parser resynchronises", () => {
  const w1 = encodeWindow(0, [{ event: 0x00028004, tsc: T0 + 1n, extra: [0, 0] }]);
  const w2 = encodeWindow(1, [{ event: 0x00028004, tsc: T0 + 2n, extra: [0, 0] }]);
  const garbage = Buffer.from([1, 2, 3, 4, 5, 6, 7]);
  const { records, stats } = collect(Buffer.concat([w1, garbage, w2]));
  assert.equal(records.length, 2);
  assert.equal(stats.corrupt, 1);
  assert.equal(stats.skippedBytes, 7);
  assert.deepEqual(stats.problems[0]?.offset, w1.length);
  assert.equal(stats.problems[0]?.kind, "bad-window-header");
});

void test("a record that overruns its window is reported and the rest is recovered", () => {
  const w1 = encodeWindow(0, [
    { event: 0x00028004, tsc: T0 + 1n, extra: [0, 0] },
    { event: 0x00028004, tsc: T0 + 2n, extra: [0, 0] },
  ]);
  // Claim 7 extra words in the second record: it no longer fits the window.
  w1.writeUInt32LE((w1.readUInt32LE(12 + 20) | 0x70000000) >>> 0, 12 + 20);
  const w2 = encodeWindow(1, [{ event: 0x00028004, tsc: T0 + 3n, extra: [0, 0] }]);
  const { records, stats } = collect(Buffer.concat([w1, w2]));
  assert.equal(records.length, 2);
  assert.equal(stats.problems[0]?.kind, "record-overruns-window");
  assert.equal(stats.problems[0]?.offset, 32);
});

void test("a truncated trace reports the truncated tail and keeps what came before", () => {
  const data = readFixture("trace-sched.bin");
  const cut = data.subarray(0, data.length - 5);
  const { stats } = collect(cut);
  assert.equal(stats.truncatedBytes > 0, true);
  assert.equal(stats.problems.at(-1)?.kind, "truncated");
  assert.ok(stats.records > 1000);
});

void test("the reorder buffer is bounded even if a CPU goes silent", () => {
  const windows: Buffer[] = [encodeWindow(1, [{ event: 0x00028004, tsc: T0, extra: [0, 0] }])];
  for (let i = 0; i < 200; i++) {
    windows.push(encodeWindow(0, Array.from({ length: 50 }, (_, j) => ({ event: 0x00028004, tsc: T0 + BigInt(i * 50 + j + 1), extra: [0, 0] }))));
  }
  const records: TraceRecord[] = [];
  const parser = new XentraceParser({ onRecord: (r) => records.push(r), maxBufferedRecords: 1000 });
  let max = 0;
  for (const w of windows) {
    parser.write(w);
    max = Math.max(max, parser.bufferedRecords);
  }
  parser.end();
  assert.ok(max <= 1050, `buffered ${max}`);
  assert.equal(records.length, 10001);
  assert.ok(parser.stats.forcedFlushes > 0);
  assert.equal(parser.stats.lateRecords, 0);
});

void test("option validation throws at once with the option's name", () => {
  assert.throws(() => new XentraceParser({ onRecord: () => {}, maxBufferedRecords: 0 }), /maxBufferedRecords must be a positive integer, got 0/);
  assert.throws(() => new XentraceParser({}), /needs exactly one of the options onRecord and onRecordView/);
  assert.throws(() => new XentraceParser({ onRecord: () => {}, onRecordView: () => {} }), /needs exactly one of the options onRecord and onRecordView/);
});

void test("the reused record view carries exactly what onRecord gives, in chunks of any size", () => {
  const rand = prng(7);
  for (const name of fixtureNames()) {
    const data = readFixture(name);
    const whole = collect(data);
    const viewed: TraceRecord[] = [];
    let view: unknown;
    const parser = new XentraceParser({
      onRecordView: (r) => {
        if (view === undefined) view = r;
        assert.equal(r, view, "the same object every time");
        viewed.push(toTraceRecord(r));
      },
    });
    for (let o = 0; o < data.length; ) {
      const n = 1 + Math.floor(rand() * 5000);
      parser.write(data.subarray(o, o + n));
      o += n;
    }
    parser.end();
    assert.deepEqual(viewed, whole.records, name);
    assert.deepEqual({ ...parser.stats, maxBufferedRecords: 0 }, { ...whole.stats, maxBufferedRecords: 0 }, name);
  }
});

void test("runstate helper sanity", () => {
  assert.equal(runstate(0, 1), 0x00021011);
  assert.equal(dv(0x7fff, 0), 0x7fff0000);
});
