import { test } from "node:test";
import assert from "node:assert/strict";
import { RestartBackoff, RestartSchedule, SUPERVISOR_BACKOFF } from "../../runtime/restartBackoff.js";

test("delays double up to the maximum while a child keeps failing fast", () => {
  const b = new RestartBackoff({ initialMs: 100, maxMs: 700, healthyAfterMs: 10_000 });
  assert.deepEqual([1, 2, 3, 4, 5].map(() => b.delayAfterExit(50)), [100, 200, 400, 700, 700]);
});

test("a healthy run resets the delay", () => {
  const b = new RestartBackoff({ initialMs: 100, maxMs: 1000, healthyAfterMs: 5_000 });
  b.delayAfterExit(10);
  b.delayAfterExit(10);
  assert.equal(b.delayAfterExit(6_000), 100);
  assert.equal(b.delayAfterExit(10), 200);
});

test("bad options are rejected with the values named", () => {
  assert.throws(() => new RestartBackoff({ initialMs: 0, maxMs: 10, healthyAfterMs: 1 }), /initialMs/);
  assert.throws(() => new RestartBackoff({ initialMs: 10, maxMs: 5, healthyAfterMs: 1 }), /"maxMs":5/);
});

test("RestartSchedule: one restart pending at a time, counted when it runs, none after cancel", async () => {
  const s = new RestartSchedule({ initialMs: 20, maxMs: 40, healthyAfterMs: 10_000 });
  let runs = 0;
  assert.equal(s.schedule(0, () => runs++), 20);
  assert.equal(s.schedule(0, () => runs++), null, "a second request while one is pending is dropped");
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(runs, 1);
  assert.equal(s.restarts, 1);
  assert.equal(s.schedule(0, () => runs++), 40, "the backoff doubled");
  s.cancel();
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(runs, 1, "cancel dropped the pending restart");
  assert.equal(s.schedule(0, () => runs++), null);
});

test("immediate restarts come first, then the backoff; a healthy run gives them back", () => {
  const b = new RestartBackoff({ initialMs: 100, maxMs: 400, healthyAfterMs: 5_000, immediateRestarts: 3 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => b.delayAfterExit(50)), [0, 0, 0, 100, 200, 400]);
  assert.equal(b.delayAfterExit(6_000), 0, "healthy: immediate again");
  assert.deepEqual([1, 2, 3].map(() => b.delayAfterExit(50)), [0, 0, 100]);
});

test("the supervisor's schedule restarts a crashed child three times at once", () => {
  const b = new RestartBackoff(SUPERVISOR_BACKOFF);
  assert.deepEqual([1, 2, 3, 4].map(() => b.delayAfterExit(10)), [0, 0, 0, SUPERVISOR_BACKOFF.initialMs]);
});

test("a bad immediateRestarts is rejected with the value named", () => {
  assert.throws(() => new RestartBackoff({ initialMs: 10, maxMs: 10, healthyAfterMs: 1, immediateRestarts: -1 }), /"immediateRestarts":-1/);
  assert.throws(() => new RestartBackoff({ initialMs: 10, maxMs: 10, healthyAfterMs: 1, immediateRestarts: 1.5 }), /"immediateRestarts":1.5/);
});
