// When a cage's aggregates count as stopped, on a clock the test gives: the actuator tests over
// real sockets cannot tell 400 ms from 900 ms on a loaded machine, this can.
import { test } from "node:test";
import assert from "node:assert/strict";
import { StalenessTracker } from "../../../actuators/common/stalenessTracker.js";

void test("a cage goes stale once its last aggregate is more than staleAfterMs old, once per outage", () => {
  const t = new StalenessTracker(400);
  t.seen("web", 1000);
  assert.deepEqual(t.check(1400).becameStale, [], "exactly staleAfterMs old is still fresh");
  assert.equal(t.isStale("web"), false);
  assert.deepEqual(t.check(1401).becameStale, ["web"]);
  assert.equal(t.isStale("web"), true);
  assert.deepEqual(t.check(5000).becameStale, [], "reported once per outage");
  assert.equal(t.ageMs("web", 5000), 4000);
  assert.equal(t.seen("web", 5000), true, "data resumed");
  assert.equal(t.isStale("web"), false);
  assert.equal(t.seen("web", 5100), false, "fresh data on fresh data is no resumption");
  assert.deepEqual(t.check(5500).becameStale, []);
  assert.deepEqual(t.check(5501).becameStale, ["web"], "a second outage is reported again");
});

void test("silence from the start counts from watch; watch does not move a clock already running", () => {
  const t = new StalenessTracker(400);
  t.watch("db", 0);
  t.seen("web", 300);
  t.watch("web", 600);
  assert.equal(t.ageMs("never", 600), null);
  assert.deepEqual(t.check(401).becameStale, ["db"]);
  assert.deepEqual(t.check(701).becameStale, ["web"], "web's clock started at its aggregate (300), not at watch (600)");
});

void test("staleAfterMs must be a positive number", () => {
  for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => new StalenessTracker(bad), { message: `staleAfterMs: must be a positive number, got ${bad}` });
  }
});
