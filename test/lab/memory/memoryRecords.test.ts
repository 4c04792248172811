import { test } from "node:test";
import assert from "node:assert/strict";
import { agreement, expectedMovedBytes, floorCheck, memoryPlotSpec, moveTiming, settledFlags, toleranceBytes, type MemoryRecord } from "../../../lab/memory/memoryRecords.js";

const MiB = 1024 * 1024;
const BASE = 1024 * MiB;
const FLOOR = 256 * MiB;

/** ids and moved in MiB per second; moved null = unknown. */
function records(ids: number[], moved: (number | null)[]): MemoryRecord[] {
  return ids.map((v, t) => {
    const m = moved[t] ?? null;
    return { t, idsBytes: v * MiB, movedBytes: m === null ? null : m * MiB, vmTargetBytes: m === null ? null : BASE - m * MiB, vmActualBytes: m === null ? null : BASE - m * MiB };
  });
}

void test("tolerance is 1 % of the IDS's memory or 4 MiB, whichever is larger", () => {
  assert.equal(toleranceBytes(100 * MiB), 4 * MiB);
  assert.equal(toleranceBytes(1000 * MiB), 10 * MiB);
});

void test("expected move is the IDS's memory, capped at base − floor", () => {
  assert.equal(expectedMovedBytes(300 * MiB, BASE, FLOOR), 300 * MiB);
  assert.equal(expectedMovedBytes(900 * MiB, BASE, FLOOR), 768 * MiB);
  assert.equal(expectedMovedBytes(-1, BASE, FLOOR), 0);
});

void test("a sample is settled only when no jump happened in the window and the last 2 s held still", () => {
  // Jump at t=3 (100 → 300): t=3 and t=4 are within 2 s of it; t=5 is not (the window is (3, 5]).
  const r = records([100, 100, 100, 300, 300, 300, 301, 300], []);
  assert.deepEqual(settledFlags(r, 2), [false, false, true, false, false, true, true, true]);
  // Drift of 1 MiB a second goes on for ever and is no jump: settled.
  assert.deepEqual(settledFlags(records([100, 101, 102, 103, 104, 105], []), 2), [false, false, true, true, true, true]);
  // 3 MiB a second: no jump (≤ 4 MiB), but more than half the tolerance within the last 2 s.
  assert.deepEqual(settledFlags(records([100, 103, 106, 109, 109, 109], []), 2), [false, false, false, false, false, true]);
  // A 5 MiB jump unsettles the whole window after it, here 3 s.
  assert.deepEqual(settledFlags(records([100, 100, 100, 105, 105, 105, 105, 105], []), 3), [false, false, false, false, false, false, true, true]);
});

void test("agreement counts settled samples within the tolerance of min(ids, base − floor)", () => {
  // t: 0..9; IDS steps 100 → 900 (past base − floor = 768) at t=5; moved follows one second late.
  const ids = [100, 100, 100, 100, 100, 900, 900, 900, 900, 900];
  const moved = [0, 100, 103, 100, 110, 100, 768, 768, 770, 768];
  const a = agreement(records(ids, moved), BASE, FLOOR, 2);
  // settled: t=2,3,4 (100) and t=7,8,9 (900, floor bound)
  assert.equal(a.settledSamples, 6);
  assert.equal(a.floorBoundSamples, 3);
  assert.equal(a.settledSamplesNeedingMove, 6, "every settled sample here needs more than 4 MiB moved");
  // t=4 is 10 MiB off (> 4 MiB): the only miss.
  assert.equal(a.matchingSamples, 5);
  assert.equal(a.maxSettledErrorBytes, 10 * MiB);
  assert.equal(a.passes, false);
  // From t=2 on: 8 samples, t=5 (900 vs 100) and t=4 miss.
  assert.equal(a.matchFractionAllSamples, 6 / 8);
  const good = agreement(records(ids, [0, 100, 100, 100, 100, 100, 768, 768, 768, 768]), BASE, FLOOR, 2);
  assert.equal(good.matchFraction, 1);
  assert.equal(good.passes, true);
});

void test("an unknown VM memory on a settled sample is a miss; nothing settled never passes", () => {
  const a = agreement(records([50, 50, 50, 50], [null, null, null, null]), BASE, FLOOR, 1);
  assert.equal(a.settledSamples, 2, "t = 2 and 3: the first 2 s are the loop's reaction time");
  assert.equal(a.matchingSamples, 0);
  assert.equal(agreement(records([50, 50], [50, 50]), BASE, FLOOR, 5).passes, false);
});

void test("a run whose settled samples never needed a move does not pass: the balloon was never tested", () => {
  // The IDS stays under the 4 MiB tolerance: an unmoved balloon matches every sample.
  const idle = agreement(records([3, 3, 3, 3, 3, 3], [0, 0, 0, 0, 0, 0]), BASE, FLOOR, 1);
  assert.equal(idle.matchFraction, 1);
  assert.equal(idle.settledSamplesNeedingMove, 0);
  assert.equal(idle.passes, false);
  const moved = agreement(records([3, 3, 3, 20, 20, 20, 20], [0, 0, 0, 3, 20, 20, 20]), BASE, FLOOR, 1);
  assert.equal(moved.settledSamplesNeedingMove, 2, "t = 5 and 6 (20 MiB, settled)");
  assert.equal(moved.passes, true);
});

void test("floor check: crossed by any target or actual below the floor, from records or states", () => {
  const r = records([100, 900], [100, 768]);
  const ok = floorCheck(r, [], BASE, FLOOR);
  assert.equal(ok.crossed, false);
  assert.equal(ok.idsExceededBaseMinusFloor, true);
  assert.equal(ok.minVmActualBytes, FLOOR);
  const bad = floorCheck(r, [{ timeMs: 1, targetBytes: FLOOR - 4096, actualBytes: FLOOR }], BASE, FLOOR);
  assert.equal(bad.crossed, true);
});

void test("move timing: time until the VM caught up with the target in force; stuck balloons are never reached", () => {
  const moves = [
    { timeMs: 1000, targetBytes: 500 * MiB },
    { timeMs: 5000, targetBytes: 400 * MiB },
    { timeMs: 6000, targetBytes: 300 * MiB },
    { timeMs: 8000, targetBytes: 200 * MiB },
  ];
  const states = [
    { timeMs: 1500, targetBytes: 500 * MiB, actualBytes: 600 * MiB },
    { timeMs: 3000, targetBytes: 500 * MiB, actualBytes: 500 * MiB + 512 * 1024 },
    { timeMs: 5500, targetBytes: 400 * MiB, actualBytes: 450 * MiB },
    // The actuator stepped on to 300 MiB before the guest reached 400: both moves end here.
    { timeMs: 7000, targetBytes: 300 * MiB, actualBytes: 300 * MiB },
    { timeMs: 9000, targetBytes: 200 * MiB, actualBytes: 250 * MiB },
    { timeMs: 30_000, targetBytes: 200 * MiB, actualBytes: 250 * MiB },
  ];
  const m = moveTiming(moves, states, 10, 30_000);
  assert.equal(m.moves, 4);
  assert.equal(m.reached, 3);
  assert.deepEqual([m.medianReachS, m.maxReachS], [2, 2]);
  assert.equal(m.unreached, 1, "the 200 MiB move never caught up");
  assert.equal(m.pendingAtEnd, 0);
  assert.equal(m.withinLimit, false);
  // The same last move 3 s before the end is pending, not a failure.
  const late = moveTiming(moves, states.slice(0, 5), 10, 11_000);
  assert.equal(late.unreached, 0);
  assert.equal(late.pendingAtEnd, 1);
  assert.equal(late.withinLimit, true);
  const slow = moveTiming([{ timeMs: 0, targetBytes: 1 }], [{ timeMs: 12_000, targetBytes: 1, actualBytes: 1 }], 10, 20_000);
  assert.equal(slow.slowerThanLimit, 1);
  assert.equal(slow.withinLimit, false);
  assert.equal(moveTiming([], [], 10, 0).withinLimit, true);
});

void test("plot spec: IDS, moved (gaps where unknown) and base − floor in MiB", () => {
  const spec = memoryPlotSpec("t", records([10, 20], [null, 20]), BASE, FLOOR);
  assert.deepEqual(spec.x, [0, 1]);
  assert.deepEqual(spec.series.map((s) => s.values), [[10, 20], [null, 20], [768, 768]]);
});
