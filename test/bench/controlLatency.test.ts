// The control-latency bench's arithmetic: percentiles and where a CPU toggle's latency goes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpuIdsChanges, cpuStages, distribution } from "../../bench/controlLatency.js";

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
    { rising: true, toWindowEndMs: 70, windowsAfter: 0, collectorMs: 4, pipelineMs: 2, actuatorMs: 1, loopMs: 7, totalMs: 77, withinOneWindow: true },
    // Written after the aggregate of the window ending at 400 arrived: that window's stages.
    { rising: false, toWindowEndMs: 10, windowsAfter: 1, collectorMs: 4, pipelineMs: 2, actuatorMs: 2, loopMs: 8, totalMs: 118, withinOneWindow: false },
  ]);
  // A window whose raw batch the bench did not see: the collector and pipeline stages are unknown.
  const unseen = cpuStages([{ atMs: 130, rising: true }], [{ endMs: 200, rawAtMs: null, aggAtMs: 230 }], [{ atMs: 231, from: 100, to: 50 }], 100);
  assert.deepEqual(unseen.stages, [{ rising: true, toWindowEndMs: 70, windowsAfter: 0, collectorMs: null, pipelineMs: null, actuatorMs: 1, loopMs: 31, totalMs: 101, withinOneWindow: true }]);
});

void test("cpuIdsChanges: a resume counts when the burner ran again, a stop when it was sent", () => {
  // SIGCONT at 1000, 4000 and 7000, SIGSTOP at 2500 and 5500. The burner reported running again
  // 1.2 ms before the first signal's stamp (it ran before the bench read its clock), 80 ms after the
  // second (starved), and not at all for the third; a report from before the measurement is ignored.
  const toggles = [1000, 2500, 4000, 5500, 7000];
  assert.deepEqual(cpuIdsChanges(toggles, [500, 998.8, 4080]), [998.8, 2500, 4080, 5500, 7000]);
  // A report after the next toggle belongs to no resume.
  assert.deepEqual(cpuIdsChanges([1000, 1100], [1150]), [1000, 1100]);
});
