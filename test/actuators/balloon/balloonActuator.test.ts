import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { pino } from "pino";
import type { BalloonBackend } from "../../../actuators/balloon/balloonBackend.js";
import { BalloonActuator } from "../../../actuators/balloon/balloonActuator.js";
import { ActuatorWatcher, agentConfigWith, balloonSpec, FakePipeline, memoryCage, MiB, tempDir } from "./balloonHarness.js";

/** A VM whose balloon is a number: apply sets it, readActual reads it (the actuator's I/O without a VM). */
class MemoryBackend implements BalloonBackend {
  readonly kind = "memory";
  readonly target = "an in-memory VM";
  readonly applied: { atMs: number; bytes: number }[] = [];
  constructor(private actual: number) {}
  apply(bytes: number): Promise<void> {
    this.actual = bytes;
    this.applied.push({ atMs: Date.now(), bytes });
    return Promise.resolve();
  }
  readActual(): Promise<number | null> {
    return Promise.resolve(this.actual);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Runs an actuator whose period never comes during the test, so only aggregates can make it move. */
async function movesWithin(actOnAggregate: boolean, waitMs: number): Promise<{ applied: { atMs: number; bytes: number }[]; setAtMs: number }> {
  const work = tempDir("oc-balloon-act-");
  const pipeline = new FakePipeline(`ipc://${join(work.dir, "agg.sock")}`);
  await pipeline.start(50);
  const watcher = new ActuatorWatcher(`ipc://${join(work.dir, "act.sock")}`);
  const backend = new MemoryBackend(512 * MiB);
  const spec = balloonSpec({ periodMs: 60_000, minMoveIntervalMs: 0, actOnAggregate });
  const cage = memoryCage("vm1", { kind: "cgroup", path: "/sys/fs/cgroup/memory/unused" }, 512 * MiB, 128 * MiB);
  const actuator = new BalloonActuator({ config: agentConfigWith([cage], spec), spec, aggregates: pipeline.endpoint, publish: watcher.endpoint, logger: pino({ level: "silent" }), backendFor: () => backend });
  try {
    await actuator.start();
    watcher.start();
    await delay(300); // the subscription is up
    const setAtMs = Date.now();
    pipeline.set("vm1", 200 * MiB);
    await delay(waitMs);
    return { applied: [...backend.applied], setAtMs };
  } finally {
    await actuator.stop();
    await watcher.close();
    await pipeline.close();
    work.remove();
  }
}

void test("actOnAggregate: a fresh aggregate moves the target at once, without waiting for the period", async () => {
  const { applied, setAtMs } = await movesWithin(true, 1000);
  const first = applied[0];
  assert.ok(first, "no move within 1 s of the aggregate");
  assert.equal(first.bytes, 312 * MiB);
  assert.ok(first.atMs - setAtMs < 500, `moved ${first.atMs - setAtMs} ms after the aggregate`);
});

void test("actOnAggregate false: the target waits for the period tick", async () => {
  const { applied } = await movesWithin(false, 1000);
  assert.deepEqual(
    applied.map((a) => a.bytes),
    [],
    "moved before the period came",
  );
});

void test("agg.memory between windows moves the target at once; ignored before a cage's first aggregate; malformed ones counted", async () => {
  const work = tempDir("oc-balloon-mem-");
  // Windows far apart: only agg.memory can move the target between them.
  const pipeline = new FakePipeline(`ipc://${join(work.dir, "agg.sock")}`);
  await pipeline.start(60_000);
  const watcher = new ActuatorWatcher(`ipc://${join(work.dir, "act.sock")}`);
  const backend = new MemoryBackend(512 * MiB);
  const spec = balloonSpec({ periodMs: 60_000, minMoveIntervalMs: 0, reverseHoldMs: 0, actOnAggregate: true });
  const cage = memoryCage("vm1", { kind: "cgroup", path: "/sys/fs/cgroup/memory/unused" }, 512 * MiB, 128 * MiB);
  const actuator = new BalloonActuator({ config: agentConfigWith([cage], spec), spec, aggregates: pipeline.endpoint, publish: watcher.endpoint, logger: pino({ level: "silent" }), backendFor: () => backend });
  try {
    await actuator.start();
    watcher.start();
    await delay(300); // the subscriptions are up
    pipeline.sendIdsMemory("vm1", 300 * MiB);
    await delay(300);
    assert.equal(backend.applied.length, 0, "an IDS memory figure before the cage's first aggregate moved the balloon");
    pipeline.set("vm1", 100 * MiB);
    await delay(300);
    assert.deepEqual(backend.applied.map((a) => a.bytes), [412 * MiB], "the aggregate's figure");
    const sentAtMs = Date.now();
    pipeline.sendIdsMemory("vm1", 150 * MiB, 50 * MiB);
    await delay(300);
    assert.deepEqual(backend.applied.map((a) => a.bytes), [412 * MiB, 312 * MiB], "agg.memory's RSS + page cache, before the next window");
    assert.ok(backend.applied[1]!.atMs - sentAtMs < 300);
    pipeline.sendIdsMemoryPayload(Buffer.from(JSON.stringify({ v: 1, timeMs: 1, cages: [{ cage: "vm1", ids: { rssBytes: -1, pageCacheBytes: 0 } }] })));
    pipeline.sendIdsMemoryPayload(Buffer.from("{"));
    await delay(300);
    assert.equal(backend.applied.length, 2, "a malformed agg.memory moved the balloon");
    // The count goes out with the next state, which the next aggregate's tick publishes.
    pipeline.set("vm1", 100 * MiB);
    await watcher.waitForState("vm1", (s) => s.values.invalidAggregates === 2, 5000, "two malformed agg.memory messages counted");
  } finally {
    await actuator.stop();
    await watcher.close();
    await pipeline.close();
    work.remove();
  }
});
