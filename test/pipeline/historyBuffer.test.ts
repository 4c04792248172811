import { test } from "node:test";
import assert from "node:assert/strict";
import { HistoryBuffer, RetryBackoff, type BufferedRecord } from "../../pipeline/historyBuffer.js";

interface Rec extends BufferedRecord {
  n: number;
}

/** A record of one point and 10 bytes unless told otherwise. */
function rec(n: number, over: Partial<Rec> = {}): Rec {
  return { n, points: 1, bytes: 10, group: "raw", ...over };
}

const roomy = { points: 100, bytes: 1_000_000 };

void test("batches leave the buffer only when written; a failed batch goes back to the front", () => {
  const b = new HistoryBuffer<Rec>(roomy);
  for (const n of [1, 2, 3, 4, 5]) b.push(rec(n));
  assert.deepEqual(b.takeBatch(3)?.map((r) => r.n), [1, 2, 3]);
  assert.equal(b.size, 5, "in flight still counts");
  assert.equal(b.queuedPoints, 2);
  assert.equal(b.oldest()?.n, 1, "the oldest held is in flight");
  assert.throws(() => b.takeBatch(1), /already in flight/);
  b.push(rec(6));
  assert.equal(b.failed(), 0);
  assert.deepEqual(b.takeBatch(10)?.map((r) => r.n), [1, 2, 3, 4, 5, 6], "order kept after a failure");
  b.succeeded();
  assert.equal(b.size, 0);
  assert.equal(b.bytes, 0);
  assert.equal(b.oldest(), undefined);
  assert.equal(b.takeBatch(10), null);
  assert.deepEqual(b.counters, { written: 6, droppedFull: 0, droppedRejected: 0, failedWrites: 1 });
});

void test("beyond the points bound the oldest queued records are dropped and counted, never the batch in flight", () => {
  const b = new HistoryBuffer<Rec>({ points: 4, bytes: 1_000_000 });
  for (const n of [1, 2, 3]) assert.equal(b.push(rec(n)), 0);
  assert.deepEqual(b.takeBatch(2)?.map((r) => r.n), [1, 2]);
  assert.equal(b.push(rec(4)), 0);
  assert.equal(b.push(rec(5)), 1, "3 makes room");
  assert.equal(b.push(rec(6)), 1, "4 makes room");
  assert.equal(b.size, 4);
  assert.equal(b.failed(), 0, "1,2 back in front of 5,6: exactly 4");
  assert.equal(b.push(rec(7)), 1);
  assert.deepEqual(b.takeBatch(10)?.map((r) => r.n), [2, 5, 6, 7]);
  assert.equal(b.rejected(), 4);
  assert.deepEqual(b.counters, { written: 0, droppedFull: 3, droppedRejected: 4, failedWrites: 1 });
  // Everything in flight and more than fits: only queued records can go.
  const c = new HistoryBuffer<Rec>({ points: 2, bytes: 1_000_000 });
  c.push(rec(1));
  c.push(rec(2));
  c.takeBatch(2);
  assert.equal(c.push(rec(3)), 1);
  assert.equal(c.size, 2);
});

void test("the bytes bound drops whole records, counted in points", () => {
  const b = new HistoryBuffer<Rec>({ points: 1000, bytes: 100 });
  b.push(rec(1, { points: 3, bytes: 40 }));
  b.push(rec(2, { points: 3, bytes: 40 }));
  assert.equal(b.push(rec(3, { points: 5, bytes: 40 })), 3, "record 1 (3 points) goes: 120 bytes > 100");
  assert.equal(b.bytes, 80);
  assert.equal(b.size, 8);
  assert.equal(b.counters.droppedFull, 3);
  assert.throws(() => new HistoryBuffer({ points: 1, bytes: 0 }), { message: "history buffer: bytes bound must be a positive integer, got 0" });
  assert.throws(() => new HistoryBuffer({ points: 0, bytes: 1 }), { message: "history buffer: points bound must be a positive integer, got 0" });
});

void test("a batch is at least one record, stays within maxPoints and ends where the group changes", () => {
  const b = new HistoryBuffer<Rec>(roomy);
  b.push(rec(1, { points: 5 }));
  b.push(rec(2, { points: 3 }));
  b.push(rec(3, { points: 3 }));
  b.push(rec(4, { group: "longterm" }));
  b.push(rec(5));
  assert.deepEqual(b.takeBatch(2)?.map((r) => r.n), [1], "one record even when larger than maxPoints");
  b.succeeded();
  assert.deepEqual(b.takeBatch(6)?.map((r) => r.n), [2, 3]);
  b.succeeded();
  assert.deepEqual(b.takeBatch(100)?.map((r) => r.n), [4], "the group changes after 4");
  assert.equal(b.discardInFlight(), 1);
  assert.deepEqual(b.counters, { written: 11, droppedFull: 0, droppedRejected: 0, failedWrites: 0 }, "discardInFlight counts nothing itself");
  assert.deepEqual(b.takeBatch(100)?.map((r) => r.n), [5]);
});

void test("many records through a small window keep FIFO order (compaction)", () => {
  const b = new HistoryBuffer<Rec>({ points: 100_000, bytes: 10_000_000 });
  const out: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    b.push(rec(i));
    if (i % 3 === 0) {
      out.push(...(b.takeBatch(2) ?? []).map((r) => r.n));
      b.succeeded();
    }
  }
  for (let batch = b.takeBatch(1000); batch !== null; batch = b.takeBatch(1000)) {
    out.push(...batch.map((r) => r.n));
    b.succeeded();
  }
  assert.deepEqual(out, Array.from({ length: 20_000 }, (_, i) => i));
  assert.equal(b.bytes, 0);
});

void test("backoff doubles from min to max, jitter stays within bounds, reset starts over", () => {
  const noJitter = new RetryBackoff(100, 1000, () => 0.5);
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => noJitter.nextDelayMs()), [100, 200, 400, 800, 1000, 1000]);
  noJitter.reset();
  assert.equal(noJitter.nextDelayMs(), 100);
  const low = new RetryBackoff(100, 1000, () => 0);
  const high = new RetryBackoff(100, 1000, () => 0.999999);
  low.nextDelayMs();
  high.nextDelayMs();
  assert.equal(low.nextDelayMs(), 160, "200 - 20%");
  assert.equal(high.nextDelayMs(), 240, "200 + 20%");
  assert.throws(() => new RetryBackoff(0, 10), /need 0 < minMs <= maxMs, got 0, 10/);
  assert.throws(() => new RetryBackoff(20, 10), /got 20, 10/);
});
