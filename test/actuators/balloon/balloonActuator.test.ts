import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { pino } from "pino";
import type { BalloonBackend } from "../../../actuators/balloon/balloonBackend.js";
import { BalloonActuator } from "../../../actuators/balloon/balloonActuator.js";
import { ActuatorWatcher, agentConfigWith, balloonSpec, FakePipeline, memoryCage, MiB, tempDir } from "./balloonHarness.js";
import { waitFor } from "../actuatorHarness.js";

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

/**
 * Runs an actuator whose period (60 s) never comes during the test, so only aggregates can make it
 * move; windows every 50 ms, so the first ones lost while the subscription propagates do not matter.
 */
async function withWindowsOnly(actOnAggregate: boolean, body: (actuator: BalloonActuator, pipeline: FakePipeline, backend: MemoryBackend) => Promise<void>): Promise<void> {
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
    await body(actuator, pipeline, backend);
  } finally {
    await actuator.stop();
    await watcher.close();
    await pipeline.close();
    work.remove();
  }
}

void test("actOnAggregate: a fresh aggregate moves the target at once, without waiting for the period", async () => {
  await withWindowsOnly(true, async (_actuator, pipeline, backend) => {
    pipeline.set("vm1", 200 * MiB);
    // waitFor's bound (30 s) is within the period (60 s): a move now came from an aggregate.
    await waitFor("a move", () => backend.applied.length > 0);
    assert.equal(backend.applied[0]!.bytes, 312 * MiB);
  });
});

void test("actOnAggregate false: the target waits for the period tick", async () => {
  await withWindowsOnly(false, async (actuator, pipeline, backend) => {
    pipeline.set("vm1", 200 * MiB);
    await waitFor("the aggregates received", () => actuator.snapshot()[0]?.idsBytes === 200 * MiB);
    await delay(1000);
    assert.deepEqual(
      backend.applied.map((a) => a.bytes),
      [],
      "moved before the period came",
    );
  });
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
    await delay(300); // most likely the subscriptions are up; if not, the next check cannot fail
    pipeline.sendIdsMemory("vm1", 300 * MiB);
    await delay(300);
    assert.equal(backend.applied.length, 0, "an IDS memory figure before the cage's first aggregate moved the balloon");
    // Sent once, a message can be lost to a subscription still on its way: each step below is
    // sent again until it shows (the same figure again moves nothing).
    await waitFor("the aggregate's figure", () => {
      if (backend.applied.length === 0) pipeline.set("vm1", 100 * MiB);
      return backend.applied.length > 0;
    });
    assert.deepEqual(backend.applied.map((a) => a.bytes), [412 * MiB], "the aggregate's figure");
    // The windows' period (60 s) is beyond waitFor's bound: a move now is agg.memory's.
    await waitFor("agg.memory's figure", () => {
      if (backend.applied.length < 2) pipeline.sendIdsMemory("vm1", 150 * MiB, 50 * MiB);
      return backend.applied.length >= 2;
    });
    assert.deepEqual(backend.applied.map((a) => a.bytes), [412 * MiB, 312 * MiB], "agg.memory's RSS + page cache, before the next window");
    pipeline.sendIdsMemoryPayload(Buffer.from(JSON.stringify({ v: 1, timeMs: 1, cages: [{ cage: "vm1", ids: { rssBytes: -1, pageCacheBytes: 0 } }] })));
    pipeline.sendIdsMemoryPayload(Buffer.from("{"));
    // The count goes out with the next state, which the next aggregate's tick publishes; the
    // watcher may not hear the first ones, so windows go on until it does.
    let last = 0;
    await waitFor("two malformed agg.memory messages counted", () => {
      if (Date.now() - last >= 100) {
        last = Date.now();
        pipeline.set("vm1", 150 * MiB, 50 * MiB);
      }
      return watcher.latest("vm1")?.values.invalidAggregates === 2;
    });
    assert.equal(backend.applied.length, 2, "a malformed agg.memory moved the balloon");
  } finally {
    await actuator.stop();
    await watcher.close();
    await pipeline.close();
    work.remove();
  }
});
