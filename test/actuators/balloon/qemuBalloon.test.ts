// The balloon actuator against a REAL QEMU guest (scripts/build-qemu-guest.sh: Debian kernel with
// virtio_balloon, busybox, TCG), driven over QMP. The IDS memory comes from synthetic aggregates
// published on a real ZeroMQ socket (a stand-in for the pipeline). What the guest does is observed
// independently: query-balloon on the guest's second QMP socket, and the guest's own /proc/meminfo.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { QemuGuest } from "../../../lab/common/qemuGuest.js";
import { BalloonActuator } from "../../../actuators/balloon/balloonActuator.js";
import { QmpClient } from "../../../actuators/balloon/qmpClient.js";
import { ActuatorWatcher, FakePipeline, MiB, agentConfigWith, balloonSpec, captureLogger, memoryCage, startBalloonActuator, tempDir } from "./balloonHarness.js";

const BASE = 512 * MiB;
const FLOOR = 192 * MiB;
// How long a move may take to show before the wait gives up; the times taken are reported (a TCG
// guest's pace depends on the host's load), not asserted.
const REACH_WITHIN_MS = 30_000;

const work = tempDir("ocage-qmp-");
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  work.remove();
});

/** Polls query-balloon on the observer socket every 100 ms: every sample, for timing and the floor. */
class BalloonObserver {
  readonly samples: Array<{ t: number; actual: number }> = [];
  private running = true;
  private readonly client: QmpClient;
  private readonly loop: Promise<void>;
  errors = 0;
  constructor(socket: string) {
    const client = new QmpClient(socket, { commandTimeoutMs: 3000, connectTimeoutMs: 3000 });
    this.client = client;
    this.loop = (async () => {
      while (this.running) {
        try {
          const r = (await client.execute("query-balloon")) as { actual: number };
          this.samples.push({ t: Date.now(), actual: r.actual });
        } catch {
          this.errors++;
        }
        await delay(100);
      }
    })();
  }
  /**
   * Time of the first sample at or after `fromMs` that reached `target` (within 1 MiB) or went past
   * it in the move's direction (a step the next move superseded before the guest settled on it).
   */
  reachedAt(target: number, fromMs: number, growing: boolean): number | null {
    return this.samples.find((s) => s.t >= fromMs && (growing ? s.actual >= target - MiB : s.actual <= target + MiB))?.t ?? null;
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    this.client.close();
  }
}

void test("real QEMU guest: moves reach query-balloon actual and the guest's MemTotal; floor held; socket gone; QEMU restart; restore on exit", async (t) => {
  const vmDir = join(work.dir, "vm");
  mkdirSync(vmDir);
  let guest = await QemuGuest.start({ memoryMiB: 512, dir: vmDir });
  cleanups.push(() => guest.stop());
  const memTotal0 = (guest.memInfo()?.memTotalBytes ?? 0);
  t.diagnostic(`guest booted: MemTotal ${memTotal0 / 1024} kB`);

  const pipeline = new FakePipeline(`ipc://${join(work.dir, "agg.sock")}`);
  await pipeline.start(200);
  cleanups.push(() => pipeline.close());
  const watcher = new ActuatorWatcher(`ipc://${join(work.dir, "act.sock")}`);
  const { logger, lines } = captureLogger();
  const cage = memoryCage("vm1", { kind: "qemu", match: [{ pid: 1, descendants: false }], qmpSocket: guest.qmpSocket }, BASE, FLOOR);
  const actuator = new BalloonActuator({
    config: agentConfigWith([cage], balloonSpec({ maxStepBytes: 256 * MiB })),
    spec: balloonSpec({ maxStepBytes: 256 * MiB }),
    aggregates: pipeline.endpoint,
    publish: watcher.endpoint,
    logger,
  });
  await actuator.start();
  cleanups.push(() => actuator.stop());
  watcher.start();
  cleanups.push(() => watcher.close());
  let observer = new BalloonObserver(guest.observerQmpSocket);
  cleanups.push(() => observer.stop());

  // IDS memory steps (RSS, page cache) → expected VM target.
  const steps: Array<{ rss: number; cache: number; target: number }> = [
    { rss: 100 * MiB, cache: 0, target: 412 * MiB },
    { rss: 200 * MiB, cache: 50 * MiB, target: 262 * MiB },
    { rss: 300 * MiB, cache: 150 * MiB, target: FLOOR }, // 450 MiB > base − floor: held at the floor
    { rss: 600 * MiB, cache: 0, target: FLOOR },
    { rss: 0, cache: 0, target: BASE },
  ];
  for (const step of steps) {
    const since = Date.now();
    pipeline.set("vm1", step.rss, step.cache);
    await watcher.waitForState("vm1", (s) => s.values.vmTargetBytes === step.target && s.values.vmActualBytes === step.target, 30_000, `target and actual ${step.target / MiB} MiB`);
    const m = await guest.waitForMemInfo((x) => Math.abs(memTotal0 - x.memTotalBytes - (BASE - step.target)) <= 4 * MiB, REACH_WITHIN_MS);
    const moves = watcher.decisions.filter((d) => d.cage === "vm1" && d.timeMs >= since - 50 && d.setting === "vm.memory.target");
    const timings = moves.map((d) => {
      const at = observer.reachedAt(d.to as number, d.timeMs, d.from === null || (d.to as number) > d.from);
      assert.ok(at !== null, `move to ${(d.to as number) / MiB} MiB never seen in query-balloon`);
      return at - d.timeMs;
    });
    t.diagnostic(
      `ids ${(step.rss + step.cache) / MiB} MiB → target ${step.target / MiB} MiB in ${moves.length} move(s) [${moves.map((d) => `${(d.to as number) / MiB}`).join(", ")}]; ` +
        `${timings.length ? `actual reached after ${timings.join(", ")} ms` : "no move (already there)"}; guest MemTotal ${m.memTotalBytes / 1024} kB (Δ ${(memTotal0 - m.memTotalBytes) / 1024} kB vs moved ${(BASE - step.target) / 1024} kB), MemFree ${m.memFreeBytes / 1024} kB`,
    );
  }
  const minActual = Math.min(...observer.samples.map((s) => s.actual));
  assert.ok(minActual >= FLOOR, `query-balloon actual ${minActual} went below the floor ${FLOOR}`);
  for (const d of watcher.decisions) assert.ok((d.to as number) >= FLOOR, `a decision crossed the floor: ${JSON.stringify(d)}`);
  t.diagnostic(`floor: lowest query-balloon actual over ${observer.samples.length} samples = ${minActual / MiB} MiB (floor ${FLOOR / MiB} MiB)`);

  // The QMP socket goes away (QEMU killed): clear message, error state, a growing counter, no crash.
  pipeline.set("vm1", 100 * MiB);
  await watcher.waitForState("vm1", (s) => s.values.vmActualBytes === 412 * MiB, 30_000, "412 MiB before the kill");
  await observer.stop();
  await guest.kill();
  const ticksBefore = actuator.ticks;
  const err = await watcher.waitForState("vm1", (s) => s.mode === "error" && (s.values.backendErrors ?? 0) >= 3, 10_000, "error state after QEMU died");
  assert.ok(actuator.ticks > ticksBefore, "the actuator keeps ticking");
  const errLine = lines.find((l) => l.msg.startsWith("balloon back end failed"));
  assert.match(String(errLine?.err), new RegExp(`QMP socket ${guest.qmpSocket} (refuses connections|does not exist)|connection closed`));
  t.diagnostic(`QEMU killed: state ${err.mode}, backendErrors ${err.values.backendErrors}; logged: ${String(errLine?.err)}`);

  // QEMU restarts on the same socket: the actuator reconnects and re-applies the target.
  const restartAt = Date.now();
  guest = await QemuGuest.start({ memoryMiB: 512, dir: vmDir });
  const booted = Date.now();
  observer = new BalloonObserver(guest.observerQmpSocket);
  const back = await watcher.waitForState("vm1", (s) => s.mode === "active" && s.values.vmActualBytes === 412 * MiB, 30_000, "target re-applied after the restart");
  assert.ok(lines.some((l) => l.msg.startsWith("back end reconnected")), "the reconnect is logged");
  t.diagnostic(`QEMU restarted (boot ${booted - restartAt} ms): actual back at ${(back.values.vmActualBytes ?? 0) / MiB} MiB ${back.timeMs - booted} ms after boot`);

  // Exit restores the base.
  const stopAt = Date.now();
  await actuator.stop();
  await delay(100);
  let restoredAt: number | null = null;
  while (restoredAt === null && Date.now() - stopAt < REACH_WITHIN_MS) {
    restoredAt = observer.reachedAt(BASE, stopAt, true);
    await delay(100);
  }
  const actual = observer.samples.at(-1)?.actual ?? 0;
  assert.equal(actual, BASE, "the actuator's exit gives the VM its base back");
  const m = await guest.waitForMemInfo((x) => x.memTotalBytes >= memTotal0 - 4 * MiB, REACH_WITHIN_MS);
  t.diagnostic(`after stop(): query-balloon actual ${actual / MiB} MiB ${(restoredAt ?? 0) - stopAt} ms after stop() began; guest MemTotal ${m.memTotalBytes / 1024} kB (boot value ${memTotal0 / 1024} kB)`);
  assert.ok(
    lines.some((l) => /actuator exiting: restore the VM's (base|memory as found)/.test(l.msg)),
    `the actuator itself restored the VM on exit; its last lines: ${JSON.stringify(lines.slice(-6).map((l) => l.msg))}`,
  );
});

void test("real QEMU guest without a balloon device: clear message, error state and counter, no crash", async (t) => {
  const vmDir = join(work.dir, "vm-noballoon");
  mkdirSync(vmDir);
  const guest = await QemuGuest.start({ memoryMiB: 256, dir: vmDir, balloon: false });
  cleanups.push(() => guest.stop());
  const pipeline = new FakePipeline(`ipc://${join(work.dir, "agg2.sock")}`);
  await pipeline.start(200);
  const watcher = new ActuatorWatcher(`ipc://${join(work.dir, "act2.sock")}`);
  const { logger, lines } = captureLogger();
  const spec = balloonSpec();
  const actuator = await startBalloonActuator([memoryCage("nb", { kind: "qemu", match: [{ pid: 1, descendants: false }], qmpSocket: guest.qmpSocket }, 256 * MiB, 128 * MiB)], spec, pipeline, watcher, logger);
  try {
    pipeline.set("nb", 64 * MiB);
    const s = await watcher.waitForState("nb", (x) => x.mode === "error" && (x.values.backendErrors ?? 0) >= 3, 10_000, "error state");
    const line = lines.find((l) => l.msg.startsWith("balloon back end failed"));
    assert.match(String(line?.err), /has no balloon device \(QMP query-balloon: DeviceNotActive\)/);
    assert.equal(lines.filter((l) => l.msg.startsWith("balloon back end failed")).length, 1, "the same error is logged once, then counted");
    assert.equal(watcher.decisions.length, 0, "nothing is pushed to a VM whose balloon cannot be read");
    t.diagnostic(`no balloon device: state ${s.mode}, backendErrors ${s.values.backendErrors}, logged: ${String(line?.err)}`);
  } finally {
    await actuator.stop();
    await watcher.close();
    await pipeline.close();
  }
});
