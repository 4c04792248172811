import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { DescendantSet, procReader, processTreePids, type ProcReader } from "../../../host/proc/processTree.js";

/** A hand-made process tree: 10 -> 11 -> 12, and 20 (not ours) -> 21. */
const fakeTree: ProcReader = {
  childrenOf: (pid) => ({ 10: [11], 11: [12] } as Record<number, number[]>)[pid] ?? [],
  parentOf: (pid) => ({ 11: 10, 12: 11, 20: 1, 21: 20, 13: 12 } as Record<number, number>)[pid] ?? null,
};

test("discover follows children; classify walks ppid chains and remembers outsiders", () => {
  const s = new DescendantSet([10], fakeTree);
  s.discover();
  assert.deepEqual(s.pids.sort(), [10, 11, 12]);
  assert.equal(s.classify(13), true); // a grandchild not yet discovered
  assert.equal(s.classify(21), false);
  assert.equal(s.classify(20), false);
  assert.equal(s.classify(99), false); // gone: unknown parent
  assert.ok(s.has(13));
});

test("processTreePids lists a root and its descendants once each, parents first", () => {
  assert.deepEqual(processTreePids(10, fakeTree), [10, 11, 12]);
  assert.deepEqual(processTreePids(21, fakeTree), [21]);
  const cycle: ProcReader = { childrenOf: (pid) => (pid === 1 ? [2] : [1]), parentOf: () => null };
  assert.deepEqual(processTreePids(1, cycle), [1, 2], "a PID seen twice (reuse while reading) is listed once");
});

test("the real /proc reader finds a real grandchild", async () => {
  const child = spawn("sh", ["-c", "sleep 30 & wait"], { stdio: "ignore" });
  try {
    await sleep(300);
    const s = new DescendantSet([child.pid as number], procReader);
    s.discover();
    assert.equal(s.pids.length, 2, `expected sh and sleep, got ${s.pids.join(",")}`);
    const grandchild = s.pids.find((p) => p !== child.pid) as number;
    assert.equal(procReader.parentOf(grandchild), child.pid);
    assert.deepEqual(processTreePids(child.pid as number), [child.pid, grandchild]);
  } finally {
    spawn("pkill", ["-P", String(child.pid)]);
    child.kill("SIGKILL");
    await sleep(100);
  }
});
