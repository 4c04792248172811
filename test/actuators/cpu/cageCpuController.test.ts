// The per-cage control state: period averaging, fail-safe on stale data, and resumption.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CageCpuController } from "../../../actuators/cpu/cageCpuController.js";
import { cageCpuKnobs } from "../../../actuators/cpu/cageCpuPolicy.js";
import { aggregate } from "../actuatorHarness.js";

function controller(minChangePct = 1): CageCpuController {
  return new CageCpuController({ name: "web", capPct: 50, weight: null, sumWeights: 100, hostCapacityPct: 200, knobs: cageCpuKnobs({ cap: 50 }), minChangePct });
}

void test("the IDS CPU of a period is the time-weighted mean of its windows", () => {
  const c = controller();
  assert.deepEqual(c.tick(false), { kind: "hold", mode: "waiting" });
  c.observe(aggregate("web", { idsPct: 20 }));
  c.observe(aggregate("web", { idsPct: 40, windowSeconds: 0.3 }));
  const out = c.tick(false);
  assert.equal(out.kind, "apply");
  if (out.kind !== "apply") return;
  assert.equal(c.idsPct, 35); // (20 × 0.1 + 40 × 0.3) / 0.4
  assert.deepEqual(out.target, { capPct: 15, weight: null });
  assert.equal(out.from, null);
  assert.equal(out.mode, "active");
  c.markApplied(out.target);
  // No new data: nothing to do.
  assert.deepEqual(c.tick(false), { kind: "hold", mode: "active" });
  // A change under the dead band is not applied.
  c.observe(aggregate("web", { idsPct: 35.4 }));
  assert.deepEqual(c.tick(false), { kind: "hold", mode: "active" });
});

void test("stale data: the fail-safe cap once, then nothing; fresh data resumes control", () => {
  const c = controller();
  c.observe(aggregate("web", { idsPct: 30 }));
  const first = c.tick(false);
  assert.equal(first.kind, "apply");
  if (first.kind === "apply") c.markApplied(first.target);
  const fs = c.tick(true);
  assert.equal(fs.kind, "apply");
  if (fs.kind !== "apply") return;
  assert.deepEqual(fs.target, { capPct: 50, weight: null });
  assert.equal(fs.mode, "failsafe");
  assert.match(fs.reason, /stale/);
  c.markApplied(fs.target);
  assert.deepEqual(c.tick(true), { kind: "hold", mode: "failsafe" });
  c.observe(aggregate("web", { idsPct: 30 }));
  const back = c.tick(false);
  assert.equal(back.kind, "apply");
  if (back.kind !== "apply") return;
  assert.deepEqual(back.target, { capPct: 20, weight: null });
  assert.match(back.reason, /data resumed/);
});

void test("a failed fail-safe is retried on the next period", () => {
  const c = controller();
  assert.equal(c.tick(true).kind, "apply"); // never marked applied: the back end failed
  assert.equal(c.tick(true).kind, "apply");
});
