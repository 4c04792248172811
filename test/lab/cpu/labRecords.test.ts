import { test } from "node:test";
import assert from "node:assert/strict";
import {
  averagePerSecond,
  buildRecords,
  crossCheck,
  lastPerSecond,
  limiterPrecision,
  parseProcStatBusyNs,
  percentPerSecond,
  phaseStats,
  workConserving,
  type LabCpuRecord,
} from "../../../lab/cpu/labRecords.js";

const T0 = 1_700_000_000_000;

void test("averagePerSecond weights each window by its length and buckets it by its end time", () => {
  const out = averagePerSecond(
    [
      { timeMs: T0 + 100, windowSeconds: 0.1, value: 10 },
      { timeMs: T0 + 400, windowSeconds: 0.3, value: 30 }, // (10*0.1 + 30*0.3) / 0.4 = 25
      { timeMs: T0 + 1000, windowSeconds: 0.1, value: 70 }, // second 1
      { timeMs: T0 - 1, windowSeconds: 0.1, value: 999 }, // before the run
      { timeMs: T0 + 3000, windowSeconds: 0.1, value: 999 }, // after it
      { timeMs: T0 + 1500, windowSeconds: 0, value: 999 }, // an empty window carries no weight
    ],
    T0,
    3,
  );
  assert.deepEqual(out, [25, 70, null]);
});

void test("percentPerSecond turns cumulative ns into % of one CPU; gaps and counter resets are null", () => {
  const out = percentPerSecond(
    [
      { atMs: 0, ns: 0 },
      { atMs: 1000, ns: 500_000_000 }, // 50%
      { atMs: 2000, ns: 2_000_000_000 }, // 150%
      null,
      { atMs: 4000, ns: 100 },
      { atMs: 5000, ns: 50 }, // went backwards
    ],
    5,
  );
  assert.deepEqual(out, [50, 150, null, null, null]);
});

void test("buildRecords sums VM and IDS into the total, rounds to 0.01 and marks the idle phase", () => {
  const r = buildRecords({
    seconds: 3,
    capPct: 50,
    idsCapPct: null,
    vmPct: [30.004, 40, null],
    idsPct: [20, 5.555, 1],
    kernelVmPct: [30, 41, 2],
    kernelIdsPct: [19, 5, 1],
    idleAfterS: 2,
  });
  assert.deepEqual(r[0], { t: 0, vmPct: 30, idsPct: 20, totalPct: 50, capPct: 50, idsCapPct: null, kernelVmPct: 30, kernelIdsPct: 19, idsIdle: false });
  assert.equal(r[1]?.totalPct, 45.56);
  assert.equal(r[2]?.totalPct, null, "no VM figure: no total");
  assert.equal(r[2]?.idsIdle, true);
  assert.equal("cpulimitIdsPct" in (r[0] as object), false, "no cpulimit fields without the comparison");
});

function rec(t: number, vm: number | null, ids: number | null, cap = 50, idsCap: number | null = null): LabCpuRecord {
  return { t, vmPct: vm, idsPct: ids, totalPct: vm === null || ids === null ? null : vm + ids, capPct: cap, idsCapPct: idsCap, kernelVmPct: null, kernelIdsPct: null, idsIdle: false };
}

void test("phaseStats counts total <= cap + 2 (inclusive) and > cap + 2 over the span only", () => {
  const records = [rec(0, 90, 90), rec(1, 40, 12), rec(2, 40, 12.5), rec(3, 30, 10), rec(4, null, 5)];
  const s = phaseStats(records, 1, 5);
  assert.equal(s.windows, 3, "t=0 is outside; t=4 has no total");
  assert.equal(s.fractionTotalWithinCap, 2 / 3, "52 is within cap + 2, 52.5 is not");
  assert.equal(s.fractionTotalOverCap, 1 / 3);
  assert.equal(s.fractionIdsWithinIdsCap, null, "no idsCap");
  assert.equal(s.meanVmPct, 36.67);
  assert.equal(s.meanIdsPct, 9.88);
  assert.equal(s.maxTotalPct, 52.5);
});

void test("phaseStats with an idsCap counts IDS <= idsCap + 2", () => {
  const records = [rec(0, 40, 31, 70, 30), rec(1, 40, 32, 70, 30), rec(2, 40, 32.01, 70, 30)];
  assert.equal(phaseStats(records, 0, 3).fractionIdsWithinIdsCap, 2 / 3);
});

void test("crossCheck compares CPU seconds over the seconds both sides have, and the per-second disagreement", () => {
  const c = crossCheck([50, 40, null, 10], [48, 44, 30, null]);
  assert.equal(c.windows, 2);
  assert.equal(c.agentCpuSeconds, 0.9);
  assert.equal(c.kernelCpuSeconds, 0.92);
  assert.equal(c.relativeDifference, -0.0217);
  assert.equal(c.meanAbsDifferencePoints, 3);
  assert.equal(c.maxAbsDifferencePoints, 4);
  assert.equal(crossCheck([1], [0]).relativeDifference, null, "no kernel time: no ratio");
});

void test("limiterPrecision: fraction within idsCap + 2 and mean distance from the cap over [from, to)", () => {
  const p = limiterPrecision([90, 29, 31, 33, 27, null], 30, 1, 6);
  assert.equal(p.windows, 4);
  assert.equal(p.fractionWithinIdsCap, 0.75);
  assert.equal(p.meanIdsPct, 30);
  assert.equal(p.meanAbsDeviationPoints, 2);
  assert.equal(p.maxIdsPct, 33);
});

void test("workConserving measures the VM from idle start + warm-up and compares it with 95% of the cap", () => {
  const records = [rec(0, 30, 20), rec(1, 30, 20), rec(2, 45, 0), rec(3, 46, 0), rec(4, 47, 0), rec(5, 48, 0), rec(6, 49, 0)];
  const w = workConserving(records, 2);
  assert.equal(w.windows, 2, "seconds 5 and 6: idle from 2, plus the 3 s warm-up");
  assert.equal(w.meanVmPct, 48.5);
  assert.equal(w.vmShareOfCap, 0.97);
  assert.equal(w.reaches95PctOfCap, true);
  assert.equal(workConserving([rec(0, 40, 0), rec(1, 40, 0), rec(2, 40, 0), rec(3, 40, 0)], 0).reaches95PctOfCap, false);
});

void test("lastPerSecond keeps the latest value reported in each second", () => {
  assert.deepEqual(
    lastPerSecond(
      [
        { timeMs: T0 + 900, value: 2 },
        { timeMs: T0 + 100, value: 1 },
        { timeMs: T0 + 2500, value: 3 },
      ],
      T0,
      3,
    ),
    [2, null, 3],
  );
});

void test("parseProcStatBusyNs sums the busy fields of /proc/stat's cpu line in ns", () => {
  // user nice system idle iowait irq softirq steal guest guest_nice
  assert.equal(parseProcStatBusyNs("cpu  100 2 30 5000 40 1 2 3 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"), (100 + 2 + 30 + 1 + 2 + 3) * 1e7);
  assert.throws(() => parseProcStatBusyNs("intr 1 2 3\n"), /\/proc\/stat: first line is not the "cpu" total/);
  assert.throws(() => parseProcStatBusyNs("cpu 1 2 x 4 5 6 7 8\n"), /non-numeric field/);
});
