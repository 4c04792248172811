import { test } from "node:test";
import assert from "node:assert/strict";
import { prng } from "../../../lab/common/prng.js";

void test("prng: a seed gives one sequence (replayable runs), another seed another", () => {
  const a = prng(42);
  const b = prng(42);
  const first = [a(), a(), a()];
  assert.deepEqual([b(), b(), b()], first);
  // mulberry32's sequence for 42: seeded runs recorded elsewhere replay only with this very one.
  assert.deepEqual(first, [0.6011037519201636, 0.44829055899754167, 0.8524657934904099]);
  assert.notEqual(prng(43)(), first[0]);
});

void test("prng: values in [0, 1), spread evenly", () => {
  const rand = prng(7);
  const buckets = new Array<number>(10).fill(0);
  for (let i = 0; i < 100_000; i++) {
    const v = rand();
    assert.ok(v >= 0 && v < 1, `value ${v}`);
    buckets[Math.floor(v * 10)]!++;
  }
  for (const n of buckets) assert.ok(n > 9_500 && n < 10_500, `bucket counts ${buckets.join(", ")}`);
});
