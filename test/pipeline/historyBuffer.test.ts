import { test } from "node:test";
import assert from "node:assert/strict";
import { HistoryBuffer, RetryBackoff } from "../../pipeline/historyBuffer.js";

void test("batches leave the buffer only when written; a failed batch goes back to the front", () => {
  const b = new HistoryBuffer<number>(100);
  b.push([1, 2, 3, 4, 5]);
  assert.deepEqual(b.takeBatch(3), [1, 2, 3]);
  assert.equal(b.size, 5, "in flight still counts");
  assert.throws(() => b.takeBatch(1), /already in flight/);
  b.push([6]);
  assert.equal(b.failed(), 0);
  assert.deepEqual(b.takeBatch(10), [1, 2, 3, 4, 5, 6], "order kept after a failure");
  b.succeeded();
  assert.equal(b.size, 0);
  assert.equal(b.takeBatch(10), null);
  assert.deepEqual(b.counters, { written: 6, droppedFull: 0, droppedRejected: 0, droppedShutdown: 0, failedWrites: 1 });
});

void test("when full the oldest queued points are dropped and counted, never the batch in flight", () => {
  const b = new HistoryBuffer<number>(4);
  assert.equal(b.push([1, 2, 3]), 0);
  assert.deepEqual(b.takeBatch(2), [1, 2]);
  assert.equal(b.push([4, 5, 6]), 2, "3 and 4 make room");
  assert.equal(b.size, 4);
  assert.equal(b.failed(), 0, "1,2 back in front of 5,6: exactly 4");
  assert.equal(b.push([7]), 1);
  assert.deepEqual(b.takeBatch(10), [2, 5, 6, 7]);
  assert.equal(b.rejected(), 4);
  assert.deepEqual(b.counters, { written: 0, droppedFull: 3, droppedRejected: 4, droppedShutdown: 0, failedWrites: 1 });
  // Everything in flight and more than fits: only queued points can go.
  const c = new HistoryBuffer<number>(2);
  c.push([1, 2]);
  c.takeBatch(2);
  assert.equal(c.push([3]), 1);
  assert.equal(c.size, 2);
});

void test("a batch ends where the group changes; discardAll counts what is left", () => {
  const b = new HistoryBuffer<{ g: string; n: number }>(10);
  b.push([{ g: "raw", n: 1 }, { g: "raw", n: 2 }, { g: "long", n: 3 }, { g: "raw", n: 4 }]);
  assert.deepEqual(b.takeBatch(10, (p) => p.g)?.map((p) => p.n), [1, 2]);
  b.succeeded();
  assert.deepEqual(b.takeBatch(10, (p) => p.g)?.map((p) => p.n), [3]);
  assert.equal(b.discardAll(), 2, "the one in flight and the one queued");
  assert.equal(b.counters.droppedShutdown, 2);
  assert.throws(() => new HistoryBuffer(0), /capacity must be a positive integer, got 0/);
});

void test("many points through a small window keep FIFO order (compaction)", () => {
  const b = new HistoryBuffer<number>(100_000);
  const out: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    b.push([i]);
    if (i % 3 === 0) {
      out.push(...(b.takeBatch(2) ?? []));
      b.succeeded();
    }
  }
  for (let batch = b.takeBatch(1000); batch !== null; batch = b.takeBatch(1000)) {
    out.push(...batch);
    b.succeeded();
  }
  assert.deepEqual(out, Array.from({ length: 20_000 }, (_, i) => i));
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
