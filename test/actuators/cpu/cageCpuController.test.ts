// The per-cage control state: period averaging, fail-safe on stale data, resumption, the IDS hold.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CageCpuController } from "../../../actuators/cpu/cageCpuController.js";
import { cageCpuKnobs } from "../../../actuators/cpu/cageCpuPolicy.js";
import { aggregate } from "../actuatorHarness.js";

function controller(minChangePct = 1, idsHoldMs = 0, periodMs = 100): CageCpuController {
  return new CageCpuController({ name: "web", capPct: 50, weight: null, sumWeights: 100, hostCapacityPct: 200, knobs: cageCpuKnobs({ cap: 50 }), minChangePct, idsHoldMs, periodMs });
}

void test("the IDS CPU of a period is the time-weighted mean of its windows", () => {
  const c = controller();
  assert.deepEqual(c.tick(false, 0), { kind: "hold", mode: "waiting" });
  c.observe(aggregate("web", { idsPct: 20 }));
  c.observe(aggregate("web", { idsPct: 40, windowSeconds: 0.3 }));
  const out = c.tick(false, 0);
  assert.equal(out.kind, "apply");
  if (out.kind !== "apply") return;
  assert.equal(c.idsPct, 35); // (20 × 0.1 + 40 × 0.3) / 0.4
  assert.deepEqual(out.target, { capPct: 15, weight: null });
  assert.equal(out.from, null);
  assert.equal(out.mode, "active");
  c.markApplied(out.target);
  // No new data: nothing to do.
  assert.deepEqual(c.tick(false, 0), { kind: "hold", mode: "active" });
  // A change under the dead band is not applied.
  c.observe(aggregate("web", { idsPct: 35.4 }));
  assert.deepEqual(c.tick(false, 0), { kind: "hold", mode: "active" });
});

void test("stale data: the fail-safe cap once, then nothing; fresh data resumes control", () => {
  const c = controller();
  c.observe(aggregate("web", { idsPct: 30 }));
  const first = c.tick(false, 0);
  assert.equal(first.kind, "apply");
  if (first.kind === "apply") c.markApplied(first.target);
  const fs = c.tick(true, 0);
  assert.equal(fs.kind, "apply");
  if (fs.kind !== "apply") return;
  assert.deepEqual(fs.target, { capPct: 50, weight: null });
  assert.equal(fs.mode, "failsafe");
  assert.match(fs.reason, /stale/);
  c.markApplied(fs.target);
  assert.deepEqual(c.tick(true, 0), { kind: "hold", mode: "failsafe" });
  c.observe(aggregate("web", { idsPct: 30 }));
  const back = c.tick(false, 0);
  assert.equal(back.kind, "apply");
  if (back.kind !== "apply") return;
  assert.deepEqual(back.target, { capPct: 20, weight: null });
  assert.match(back.reason, /data resumed/);
});

void test("overrun feedback: a cage measured over its cap lowers the VM's cap; under the cap the correction drains away", () => {
  const c = controller();
  // The VM gets more than its quota (cap 50, ids 20 → VM cap 30, but the VM used 36): total 56.
  c.observe(aggregate("web", { idsPct: 20, vmPct: 36 }));
  let out = c.tick(false, 0);
  assert.equal(out.kind, "apply");
  if (out.kind !== "apply") return;
  assert.ok(Math.abs(c.overrunCorrectionPct - 1.8) < 1e-9, `0.3 × (56 − 50) = 1.8, got ${c.overrunCorrectionPct}`);
  assert.deepEqual(out.target, { capPct: 28.2, weight: null });
  assert.match(out.reason, /1\.8% off for the cage's measured overrun \(total 56%\)/);
  c.markApplied(out.target);
  c.observe(aggregate("web", { idsPct: 20, vmPct: 36 }));
  out = c.tick(false, 0);
  assert.ok(out.kind === "apply" && out.target.capPct === 26.4);
  if (out.kind === "apply") c.markApplied(out.target);
  // The IDS idles and the VM is under the cap: the correction drains, the VM gets the whole cage again.
  for (let i = 0; i < 20; i++) {
    c.observe(aggregate("web", { idsPct: 0, vmPct: 40 }));
    out = c.tick(false, 0);
    if (out.kind === "apply") c.markApplied(out.target);
  }
  assert.equal(c.overrunCorrectionPct, 0);
  assert.deepEqual(c.appliedTarget, { capPct: 50, weight: null });
});

void test("acting on every window: the IDS step is followed at once, the overrun integral keeps its rate per period", () => {
  // Period 500 ms, five 100 ms windows of a cage 6 points over its cap: one period tick and five
  // per-window ticks integrate the same 0.3 × 6 = 1.8 points.
  const perPeriod = controller(1, 0, 500);
  for (let i = 0; i < 5; i++) perPeriod.observe(aggregate("web", { idsPct: 20, vmPct: 36 }));
  const once = perPeriod.tick(false, 0);
  assert.ok(once.kind === "apply");
  const perWindow = controller(1, 0, 500);
  for (let i = 0; i < 5; i++) {
    perWindow.observe(aggregate("web", { idsPct: 20, vmPct: 36 }));
    const out = perWindow.tick(false, i * 100);
    if (out.kind === "apply") perWindow.markApplied(out.target);
  }
  assert.ok(Math.abs(perPeriod.overrunCorrectionPct - 1.8) < 1e-9, `per period: ${perPeriod.overrunCorrectionPct}`);
  assert.ok(Math.abs(perWindow.overrunCorrectionPct - 1.8) < 1e-9, `per window: ${perWindow.overrunCorrectionPct}`);
  // The IDS steps from 20 to 45 in one window: that window's cap is cap − 45 less the correction, no averaging.
  perWindow.observe(aggregate("web", { idsPct: 45, vmPct: 5 }));
  const step = perWindow.tick(false, 500);
  assert.ok(step.kind === "apply");
  assert.deepEqual(step.target, { capPct: 5, weight: null }, "50 − 45 − 1.8 is under the floor 5");
  assert.ok(Math.abs(perWindow.overrunCorrectionPct - 1.8) < 1e-9, "total 50: the correction stays");
  assert.equal(perWindow.hasNewWindows, false);
  perWindow.observe(aggregate("web", { idsPct: 10 }));
  assert.equal(perWindow.hasNewWindows, true);
  assert.throws(() => controller(1, 0, 0), /cage web: periodMs must be a positive number, got 0/);
});

void test("overrun correction never takes the VM below its floor (anti-windup)", () => {
  const c = controller();
  for (let i = 0; i < 50; i++) {
    c.observe(aggregate("web", { idsPct: 10, vmPct: 100 }));
    const out = c.tick(false, 0);
    if (out.kind === "apply") c.markApplied(out.target);
  }
  assert.equal(c.overrunCorrectionPct, 45, "cap 50 − floor 5");
  assert.deepEqual(c.appliedTarget, { capPct: 5, weight: null });
});

void test("a failed fail-safe is retried on the next period", () => {
  const c = controller();
  assert.equal(c.tick(true, 0).kind, "apply"); // never marked applied: the back end failed
  assert.equal(c.tick(true, 0).kind, "apply");
});

void test("idsHoldMs: a one-period IDS pause keeps the VM's cap; an IDS idle for longer than the hold frees the whole cage", () => {
  const step = (c: CageCpuController, idsPct: number, atMs: number): number | null => {
    c.observe(aggregate("web", { idsPct, vmPct: 20 }));
    const out = c.tick(false, atMs);
    if (out.kind === "apply") c.markApplied(out.target);
    return c.appliedTarget?.capPct ?? null;
  };
  const held = controller(1, 3000);
  assert.equal(step(held, 25, 0), 25);
  // The IDS pauses for one period: the VM keeps room for it (the paper's rule would give 48).
  assert.equal(step(held, 2, 1000), 25);
  assert.equal(step(held, 25, 2000), 25);
  // Idle past the hold: the 25% at 2000 ms has aged out at 5001 ms, and the VM gets the whole cage.
  assert.equal(step(held, 0, 3000), 25);
  assert.equal(step(held, 0, 4000), 25);
  assert.equal(step(held, 0, 5001), 50);
  const last = held.tick(false, 6000);
  assert.deepEqual(last, { kind: "hold", mode: "active" });
  // The reason says when the held peak, not the measured value, set the cap.
  const c = controller(1, 3000);
  assert.equal(step(c, 40, 0), 7); // total 60: 3 points off for the overrun
  c.observe(aggregate("web", { idsPct: 5, vmPct: 20 })); // total 25: the correction drains
  const out = c.tick(false, 1000);
  assert.ok(out.kind === "apply", "the drained correction changes the cap");
  assert.deepEqual(out.target, { capPct: 10, weight: null });
  assert.match(out.reason, /ids 40% .*the IDS's peak of the last 3000 ms \(now 5%\)/);
  // Without a hold the same pause hands the VM the cage at once.
  const plain = controller();
  assert.equal(step(plain, 25, 0), 25);
  assert.equal(step(plain, 2, 1000), 48);
  // Stale data clears the history: fresh data after the fail-safe starts from the new IDS CPU.
  const s = controller(1, 3000);
  step(s, 40, 0);
  const fs = s.tick(true, 1000);
  if (fs.kind === "apply") s.markApplied(fs.target);
  assert.equal(step(s, 10, 2000), 40);
});

void test("the VM's processes keep one array while they do not change, and a new one when they do", () => {
  const c = controller();
  c.observe(aggregate("web", { vmPids: [10, 11], vmStartTimes: [500, 501] }));
  const first = c.vmProcesses;
  assert.deepEqual(first, [{ pid: 10, startTime: 500 }, { pid: 11, startTime: 501 }]);
  c.observe(aggregate("web", { vmPids: [10, 11], vmStartTimes: [500, 501] }));
  assert.equal(c.vmProcesses, first, "same processes: the same array");
  c.observe(aggregate("web", { vmPids: [10, 11], vmStartTimes: [500, 777] }));
  assert.deepEqual(c.vmProcesses, [{ pid: 10, startTime: 500 }, { pid: 11, startTime: 777 }], "a PID reused: new pairs");
  c.observe(aggregate("web", { vmPids: [10], vmStartTimes: [500] }));
  assert.deepEqual(c.vmProcesses, [{ pid: 10, startTime: 500 }]);
});
