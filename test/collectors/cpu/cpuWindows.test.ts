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
const map = (name: string, entries: Record<string, number>): string => JSON.stringify({ type: "map", data: { [name]: entries } });
const builder = (mapKeysMax = 4096): CpuWindowBuilder => new CpuWindowBuilder({ intervalMs: 100, mapKeysMax });

test("one batch per window, bounds from the window slots, repeated markers ignored", () => {
  const b = builder();
  const batches = feed(b, [
    '{"type": "attached_probes", "data": {"probes": 6}}',
    marker(3040, 304169721659),
    map("@fork1", { "4725": 1 }),
    map("@run1", { "15,15": 10195, "4721,4721": 20000, "4721,4725": 1321 }),
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
  // 15 and 4721 existed before the probes attached: their first record is only a baseline.
  // 4725 was created since: its run time started at 0.
  assert.deepEqual(batches[1]!.threads, [{ pid: 4721, tid: 4725, cpuNs: 1321 }]);
  assert.deepEqual(batches[1]!.processes, [{ pid: 4721, cpuNs: 1321 }]);
  assert.equal(batches[2]!.windowStartNs, 304200000000n);
  assert.deepEqual(batches[2]!.threads, []);
  assert.equal(b.counters.repeatedMarkers, 1);
  assert.equal(b.counters.windows, 3);
  assert.equal(b.trackedThreads, 3);
});

test("a window's CPU time is the rise of each thread's run time; processes are the sums of their threads", () => {
  const b = builder();
  const batches = feed(b, [
    map("@run0", { "7,7": 1000, "7,8": 500, "9,9": 40, "0,0": 999999 }),
    marker(0, 150_000_000),
    map("@run1", { "7,7": 1005, "7,8": 506, "9,9": 40 }),
    marker(1, 250_000_000),
    map("@run2", { "7,8": 600 }),
    marker(2, 350_000_000),
  ]);
  assert.deepEqual(batches[0]!.threads, []);
  assert.deepEqual(batches[1]!.threads, [{ pid: 7, tid: 7, cpuNs: 5 }, { pid: 7, tid: 8, cpuNs: 6 }]);
  assert.deepEqual(batches[1]!.processes, [{ pid: 7, cpuNs: 11 }]);
  assert.deepEqual(batches[2]!.threads, [{ pid: 7, tid: 8, cpuNs: 94 }]);
  // The idle task (tid 0) is never kept.
  assert.equal(b.trackedThreads, 3);
});

test("new threads count from 0; exited threads are charged their last switch-out, then forgotten", () => {
  const b = builder();
  const batches = feed(b, [
    map("@fork0", { "20": 1, "21": 1 }),
    map("@run0", { "20,20": 300 }),
    marker(0, 150_000_000),
    // 21's first record comes a window after its fork; 20 exits, its last switch-out follows.
    map("@run1", { "20,21": 70, "20,20": 350 }),
    map("@exit1", { "20,20": 1 }),
    marker(1, 250_000_000),
    map("@run2", { "20,20": 360 }),
    marker(2, 350_000_000),
    marker(3, 450_000_000),
  ]);
  assert.deepEqual(batches[0]!.threads, [{ pid: 20, tid: 20, cpuNs: 300 }]);
  assert.deepEqual(batches[1]!.threads, [{ pid: 20, tid: 20, cpuNs: 50 }, { pid: 20, tid: 21, cpuNs: 70 }]);
  assert.deepEqual(batches[2]!.threads, [{ pid: 20, tid: 20, cpuNs: 10 }]);
  assert.equal(b.trackedThreads, 1, "the exited thread's baseline is dropped");
  // A new thread that reuses the id counts from 0 again.
  const [reused] = feed(b, [map("@fork1", { "20": 1 }), map("@run1", { "20,20": 4 }), marker(4, 550_000_000)]);
  assert.deepEqual(reused!.threads, [{ pid: 20, tid: 20, cpuNs: 4 }]);
});

test("a run time that went backwards charges nothing and keeps the baseline", () => {
  const b = builder();
  const batches = feed(b, [
    map("@run0", { "5,5": 100 }), marker(0, 150_000_000),
    map("@run1", { "5,5": 90 }), marker(1, 250_000_000),
    map("@run2", { "5,5": 130 }), marker(2, 350_000_000),
  ]);
  assert.deepEqual(batches[1]!.threads, []);
  assert.deepEqual(batches[2]!.threads, [{ pid: 5, tid: 5, cpuNs: 30 }]);
});

test("skipped windows are counted and the batch spans them; lost_events and full maps are counted", () => {
  const b = builder(2);
  const batches = feed(b, [
    marker(10, 1_150_000_000),
    '{"type": "lost_events", "data": {"events": 3}}',
    map("@run0", { "1,1": 5, "2,2": 6 }),
    marker(13, 1_450_000_000),
  ]);
  assert.equal(batches[1]!.windowStartNs, 1_100_000_000n);
  assert.equal(batches[1]!.windowEndNs, 1_400_000_000n);
  assert.equal(b.counters.skippedWindows, 2);
  assert.equal(b.counters.lostEvents, 3);
  assert.equal(b.counters.mapFull, 1);
});

test("exit: the sets printed by END give one last window ending at cpu_end, the latest record per thread", () => {
  const b = builder();
  const batches = feed(b, [
    map("@fork0", { "5": 1 }),
    marker(10, 1_150_000_000),
    map("@run0", { "5,5": 10 }),
    map("@run1", { "5,5": 13 }),
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
  const b = builder();
  const [batch] = feed(b, [
    map("@fork0", { "4": 1, "x": 1 }),
    map("@run0", { "x,1": 5, "3,3": -7, "4,4": 2 }),
    map("@exit0", { "9": 1 }),
    map("@t0", { "1,1": 1 }),
    '{"type": "printf", "data": "hello\\n"}',
    marker(1, 150_000_000),
  ]);
  assert.deepEqual(batch!.threads, [{ pid: 4, tid: 4, cpuNs: 2 }]);
  assert.equal(b.counters.badEntries, 4);
  assert.equal(b.counters.unknownLines, 2);
});

test("options are validated at once", () => {
  assert.throws(() => new CpuWindowBuilder({ intervalMs: 0, mapKeysMax: 1 }), /intervalMs must be a positive integer, got 0/);
  assert.throws(() => new CpuWindowBuilder({ intervalMs: 100, mapKeysMax: 0 }), /mapKeysMax must be a positive integer, got 0/);
});
