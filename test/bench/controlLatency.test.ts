// The control-latency bench's arithmetic: percentiles and where a CPU toggle's latency goes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpuStages, distribution } from "../../bench/controlLatency.js";

void test("distribution: nearest-rank percentiles and the misses", () => {
  assert.deepEqual(distribution([30, 10, 20, 40], 1), { n: 4, p50Ms: 20, p95Ms: 40, maxMs: 40, missed: 1 });
  assert.deepEqual(distribution([]), { n: 0, p50Ms: null, p95Ms: null, maxMs: null, missed: 0 });
});

void test("cpuStages: the window a toggle fell in, its batch, its aggregate and the first write toward the new level", () => {
  // 100 ms windows ending at 100, 200, 300, 400; each batch 4 ms after the end, each aggregate 2 ms after that.
  const windows = [100, 200, 300, 400].map((endMs) => ({ endMs, rawAtMs: endMs + 4, aggAtMs: endMs + 6 }));
  const writes = [
    { atMs: 50, from: null, to: 100 },
    // After the rising toggle at 130: a write up (noise) is not the answer, the next one down is.
    { atMs: 206, from: 100, to: 100.5 },
    { atMs: 207, from: 100.5, to: 60 },
    // After the falling toggle at 290 (window ending 300): the first write up acted on the next window.
    { atMs: 408, from: 60, to: 90 },
  ];
  const toggles = [
    { atMs: 130, rising: true },
    { atMs: 290, rising: false },
    { atMs: 480, rising: true }, // no window ends after it: missed
  ];
  const { stages, missed } = cpuStages(toggles, windows, writes, 100);
  assert.equal(missed, 1);
  assert.deepEqual(stages, [
    { toWindowEndMs: 70, windowsAfter: 0, collectorMs: 4, pipelineMs: 2, actuatorMs: 1, loopMs: 7, totalMs: 77, withinOneWindow: true },
    // Written after the aggregate of the window ending at 400 arrived: that window's stages.
    { toWindowEndMs: 10, windowsAfter: 1, collectorMs: 4, pipelineMs: 2, actuatorMs: 2, loopMs: 8, totalMs: 118, withinOneWindow: false },
  ]);
  // A window whose raw batch the bench did not see: the collector and pipeline stages are unknown.
  const unseen = cpuStages([{ atMs: 130, rising: true }], [{ endMs: 200, rawAtMs: null, aggAtMs: 230 }], [{ atMs: 231, from: 100, to: 50 }], 100);
  assert.deepEqual(unseen.stages, [{ toWindowEndMs: 70, windowsAfter: 0, collectorMs: null, pipelineMs: null, actuatorMs: 1, loopMs: 31, totalMs: 101, withinOneWindow: true }]);
});

void test("cpuStages: toward the new level means past the level settled before the toggle, not past the last write", () => {
  // A falling toggle from a current run of the bench (ms since 1796471283000), on a busy host:
  // the IDS got 6.5 % of a CPU in the window before it stopped, then 18.8 % in the window in which
  // it stopped 60 ms in, so the cap written for that window (81.2) is below the one before (93.54)
  // but well above the level it had settled at while the IDS ran (about 62).
  const toggles = [
    { atMs: 865, rising: true },
    { atMs: 2435, rising: false },
  ];
  const windows = [
    { endMs: 2374.2708, rawAtMs: 2375, aggAtMs: 2384 },
    { endMs: 2474.6206, rawAtMs: 2476, aggAtMs: 2479 },
    { endMs: 2573.8328, rawAtMs: 2575, aggAtMs: 2575 },
    { endMs: 2674.4045, rawAtMs: 2675, aggAtMs: 2676 },
  ];
  const caps: [number, number, number][] = [
    [877, 100, 95.66], [987, 95.66, 59.7], [1084, 59.7, 61.21], [1184, 61.21, 81.31], [1276, 81.31, 87.68],
    [1480, 87.68, 59.77], [1578, 59.77, 63.46], [1679, 63.46, 61.33], [1882, 61.33, 63.01], [1977, 63.01, 60.42],
    [2178, 60.42, 66.62], [2385, 66.62, 93.54], [2481, 93.54, 81.2], [2576, 81.2, 100],
  ];
  const writes = caps.map(([atMs, from, to]) => ({ atMs, from, to }));
  // Only the windows around the falling toggle are given: the rising one before it (whose span sets the level) finds none.
  const { stages, missed } = cpuStages(toggles, windows, writes, 100);
  assert.equal(missed, 1);
  const falling = stages[0]!;
  assert.deepEqual(
    { windowsAfter: falling.windowsAfter, totalMs: falling.totalMs, withinOneWindow: falling.withinOneWindow },
    { windowsAfter: 0, totalMs: 46, withinOneWindow: true },
    "the write for the window the IDS stopped in (81.2) counts",
  );
  // Had that window shown the IDS at its level or above (cap 62 or less), it would not count.
  const flat = writes.map((c) => (c.atMs === 2481 ? { ...c, to: 61 } : c.atMs === 2576 ? { ...c, from: 61 } : c));
  assert.deepEqual(cpuStages(toggles, windows, flat, 100).stages[0]!.withinOneWindow, false);
});
