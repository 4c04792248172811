import { test } from "node:test";
import assert from "node:assert/strict";
import { parseBpftraceLine } from "../../../collectors/cpu/bpftraceJsonLines.js";
import { CpuWindowBuilder } from "../../../collectors/cpu/cpuWindows.js";
import type { CpuBatch } from "../../../protocol/rawBatches.js";

function feed(builder: CpuWindowBuilder, lines: string[]): CpuBatch[] {
  const batches: CpuBatch[] = [];
  for (const text of lines) {
    const r = parseBpftraceLine(text);
    if (r.kind !== "line") continue;
    const b = builder.accept(r.line);
    if (b) batches.push(b);
  }
  return batches;
}

const marker = (slot: number, now: number): string => `{"type": "printf", "data": "cpu_window ${slot} ${now}\\n"}`;

test("one batch per window, bounds from the window slots, repeated markers ignored", () => {
  const b = new CpuWindowBuilder({ intervalMs: 100, mapKeysMax: 4096, processMapInKernel: true });
  const batches = feed(b, [
    '{"type": "attached_probes", "data": {"probes": 4}}',
    marker(3040, 304169721659),
    '{"type": "map", "data": {"@p1": {"15": 10195, "4721": 21321}}}',
    '{"type": "map", "data": {"@t1": {"15,15": 10195, "4721,4721": 20000, "4721,4725": 1321}}}',
    marker(3041, 304219720829),
    marker(3041, 304269723679),
    marker(3042, 304319728268),
  ]);
  assert.equal(batches.length, 3);
  assert.equal(batches[0]!.windowStartNs, 304000000000n);
  assert.equal(batches[0]!.windowEndNs, 304100000000n);
  assert.deepEqual(batches[0]!.processes, []);
  assert.equal(batches[1]!.windowStartNs, 304100000000n);
  assert.equal(batches[1]!.windowEndNs, 304200000000n);
  assert.deepEqual(batches[1]!.processes, [{ pid: 15, cpuNs: 10195 }, { pid: 4721, cpuNs: 21321 }]);
  assert.deepEqual(batches[1]!.threads, [{ pid: 15, tid: 15, cpuNs: 10195 }, { pid: 4721, tid: 4721, cpuNs: 20000 }, { pid: 4721, tid: 4725, cpuNs: 1321 }]);
  assert.equal(batches[2]!.windowStartNs, 304200000000n);
  assert.deepEqual(batches[2]!.threads, []);
  assert.equal(b.counters.repeatedMarkers, 1);
  assert.equal(b.counters.windows, 3);
});

test("without the kernel process map, processes are the sums of their threads", () => {
  const b = new CpuWindowBuilder({ intervalMs: 100, mapKeysMax: 4096, processMapInKernel: false });
  const [batch] = feed(b, ['{"type": "map", "data": {"@t0": {"7,7": 5, "7,8": 6, "9,9": 1}}}', marker(10, 1_150_000_000)]);
  assert.deepEqual(batch!.processes, [{ pid: 7, cpuNs: 11 }, { pid: 9, cpuNs: 1 }]);
});

test("skipped windows are counted and the batch spans them; lost_events and full maps are counted", () => {
  const b = new CpuWindowBuilder({ intervalMs: 100, mapKeysMax: 2, processMapInKernel: true });
  const batches = feed(b, [
    marker(10, 1_150_000_000),
    '{"type": "lost_events", "data": {"events": 3}}',
    '{"type": "map", "data": {"@t0": {"1,1": 5, "2,2": 6}}}',
    marker(13, 1_450_000_000),
  ]);
  assert.equal(batches[1]!.windowStartNs, 1_100_000_000n);
  assert.equal(batches[1]!.windowEndNs, 1_400_000_000n);
  assert.equal(b.counters.skippedWindows, 2);
  assert.equal(b.counters.lostEvents, 3);
  assert.equal(b.counters.mapFull, 1);
});

test("exit: both sets printed by END are added into one last window ending at cpu_end", () => {
  const b = new CpuWindowBuilder({ intervalMs: 100, mapKeysMax: 4096, processMapInKernel: true });
  const batches = feed(b, [
    marker(10, 1_150_000_000),
    '{"type": "map", "data": {"@p0": {"5": 10}}}',
    '{"type": "map", "data": {"@t0": {"5,5": 10}}}',
    '{"type": "map", "data": {"@p1": {"5": 3}}}',
    '{"type": "map", "data": {"@t1": {"5,5": 3}}}',
    '{"type": "printf", "data": "cpu_end 1234567890\\n"}',
    "",
    "",
  ]);
  assert.equal(batches.length, 2);
  assert.equal(batches[1]!.windowStartNs, 1_100_000_000n);
  assert.equal(batches[1]!.windowEndNs, 1_234_567_890n);
  assert.deepEqual(batches[1]!.processes, [{ pid: 5, cpuNs: 13 }]);
  assert.deepEqual(batches[1]!.threads, [{ pid: 5, tid: 5, cpuNs: 13 }]);
});

test("bad keys, negative values, unknown maps and printfs are counted and skipped", () => {
  const b = new CpuWindowBuilder({ intervalMs: 100, mapKeysMax: 4096, processMapInKernel: true });
  const [batch] = feed(b, [
    '{"type": "map", "data": {"@t0": {"x,1": 5, "3,3": -7, "4,4": 2}}}',
    '{"type": "map", "data": {"@other": {"1": 1}}}',
    '{"type": "printf", "data": "hello\\n"}',
    marker(1, 150_000_000),
  ]);
  assert.deepEqual(batch!.threads, [{ pid: 4, tid: 4, cpuNs: 2 }]);
  assert.equal(b.counters.badEntries, 2);
  assert.equal(b.counters.unknownLines, 2);
});

test("options are validated at once", () => {
  assert.throws(() => new CpuWindowBuilder({ intervalMs: 0, mapKeysMax: 1, processMapInKernel: true }), /intervalMs must be a positive integer, got 0/);
});
