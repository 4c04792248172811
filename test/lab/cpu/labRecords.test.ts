import { test } from "node:test";
import assert from "node:assert/strict";
import {
  averagePerSecond,
  buildRecords,
  cpuSecondsOverSpans,
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

void test("crossCheck takes CPU seconds from the spans and the per-second disagreement over the seconds both sides have", () => {
  const c = crossCheck([50, 40, null, 10], [48, 44, 30, null], { agentCpuSeconds: 0.9, kernelCpuSeconds: 0.92 });
  assert.equal(c.windows, 2);
  assert.equal(c.agentCpuSeconds, 0.9);
  assert.equal(c.kernelCpuSeconds, 0.92);
  assert.equal(c.relativeDifference, -0.0217);
  assert.equal(c.meanAbsDifferencePoints, 3);
  assert.equal(c.maxAbsDifferencePoints, 4);
  assert.equal(crossCheck([1], [0], { agentCpuSeconds: 0.01, kernelCpuSeconds: 0 }).relativeDifference, null, "no kernel time: no ratio");
});

/** 100 ms windows at `pct` % from `fromMs` to `toMs` after T0. */
function steadyWindows(fromMs: number, toMs: number, pct: number): { timeMs: number; windowSeconds: number; value: number }[] {
  const out = [];
  for (let end = fromMs + 100; end <= toMs; end += 100) out.push({ timeMs: T0 + end, windowSeconds: 0.1, value: pct });
  return out;
}

void test("cpuSecondsOverSpans: a reading taken 1.5 s late (the lab waiting on a process) changes neither side", () => {
  // 30% for 17.5 s, then nothing; readings at 0..16 s on time, then 17.5 s (late), 18 s, 19 s.
  const windows = steadyWindows(0, 17_500, 30).concat(steadyWindows(17_500, 19_000, 0));
  const at = [...Array.from({ length: 17 }, (_, k) => k * 1000), 17_500, 18_000, 19_000];
  const readings = at.map((ms) => ({ atMs: T0 + ms, ns: Math.min(ms, 17_500) * 0.3 * 1e6 }));
  const c = cpuSecondsOverSpans(windows, readings, 3, 19);
  assert.ok(Math.abs(c.kernelCpuSeconds - 14.5 * 0.3) < 1e-9, `kernel ${c.kernelCpuSeconds}`);
  assert.ok(Math.abs(c.agentCpuSeconds - 14.5 * 0.3) < 1e-9, `agent ${c.agentCpuSeconds}`);
  // What summing per-second rates made of the same run: the late step counted as one second.
  const perSecondAgent = averagePerSecond(windows, T0, 19).slice(3).reduce<number>((a, v) => a + (v ?? 0) / 100, 0);
  const perSecondKernel = percentPerSecond(readings, 19).slice(3).reduce<number>((a, v) => a + (v ?? 0) / 100, 0);
  assert.ok(perSecondAgent - perSecondKernel > 0.14, `per-second sums: agent ${perSecondAgent} vs kernel ${perSecondKernel}`);
});

void test("cpuSecondsOverSpans: windows are cut at the span's ends; a missing or backwards step is left out of both sides", () => {
  const windows = [
    { timeMs: T0 + 1050, windowSeconds: 0.1, value: 100 }, // half before the span: 0.05 s
    { timeMs: T0 + 1500, windowSeconds: 0.1, value: 50 }, // 0.05 s
    { timeMs: T0 + 2500, windowSeconds: 0.1, value: 100 }, // [2 s, 4 s) has no reading at 3 s: left out
    { timeMs: T0 + 4000, windowSeconds: 0.2, value: 100 }, // left out likewise
    { timeMs: T0 + 5800, windowSeconds: 0.1, value: 100 }, // in the backwards step [5 s, 6 s): left out
    { timeMs: T0 + 4500, windowSeconds: 0, value: 999 }, // empty window
    { timeMs: T0 + 5050, windowSeconds: 0.1, value: 100 }, // half in [4 s, 5 s): 0.05 s; its other half is in the backwards step
  ];
  const readings = [
    { atMs: T0, ns: 0 },
    { atMs: T0 + 1000, ns: 0 },
    { atMs: T0 + 2000, ns: 0.1e9 },
    null,
    { atMs: T0 + 4000, ns: 0.05e9 },
    { atMs: T0 + 5000, ns: 0.1e9 },
    { atMs: T0 + 6000, ns: 0.01e9 }, // the counter restarted
    { atMs: T0 + 7000, ns: 0.06e9 },
  ];
  const c = cpuSecondsOverSpans(windows, readings, 1, 6);
  assert.ok(Math.abs(c.kernelCpuSeconds - 0.15) < 1e-9, `kernel ${c.kernelCpuSeconds}`);
  assert.ok(Math.abs(c.agentCpuSeconds - 0.15) < 1e-9, `agent ${c.agentCpuSeconds}`);
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

void test("parseProcStatBusyNs sums the busy fields of /proc/stat's cpu line, steal included, in ns", () => {
  // user nice system idle iowait irq softirq steal guest guest_nice
  assert.equal(parseProcStatBusyNs("cpu  100 2 30 5000 40 1 2 3 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"), (100 + 2 + 30 + 1 + 2 + 3) * 1e7);
});
