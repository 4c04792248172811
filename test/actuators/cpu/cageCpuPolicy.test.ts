// The cage arithmetic against the OffloadCage paper's formulas (§4.3, §4.4), with worked numbers.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  cageCpuKnobs,
  cagePolicy,
  cageShares,
  paperCapCredit,
  policyReason,
  paperWeightCredit,
  sumOfWeights,
  weightForShare,
  worthApplying,
} from "../../../actuators/cpu/cageCpuPolicy.js";
import { paperRunTime } from "../../../actuators/limiter/dutyCycle.js";

// Credit1 hands out 300 credits per pCPU per 30 ms accounting period (platform-facts §2.2).
const TOTAL = 300;

void test("paper §4.3, cap: credit = total × (RC.cap − RC.ids) / 100", () => {
  // Snort experiment: cage cap 50%, IDS using 30% → the VM gets 20% of the CPU's credit.
  assert.equal(paperCapCredit(TOTAL, 50, 30), 60);
  assert.equal(paperCapCredit(TOTAL, 50, 0), 150);
  // Tripwire experiment: cage cap 70%, IDS held at its 30% → 40%.
  assert.equal(paperCapCredit(TOTAL, 70, 30), 120);
});

void test("paper §4.3, weight: credit = total × (weight/Σweight − RC.ids/100)", () => {
  // Dom0 and the VM both weigh 256 (the paper's setting): the VM's half, less the IDS's 30%.
  assert.ok(Math.abs(paperWeightCredit(TOTAL, 256, 512, 30) - 60) < 1e-9);
  assert.equal(paperWeightCredit(TOTAL, 256, 512, 0), 150);
  assert.ok(Math.abs(paperWeightCredit(TOTAL, 512, 768, 10) - 170) < 1e-9); // 300 × (2/3 − 0.1)
});

void test("paper §4.3: with both set the smaller credit is given (Tripwire: cap 70, weights 256/256, IDS 30)", () => {
  const cap = paperCapCredit(TOTAL, 70, 30); // 120
  const weight = paperWeightCredit(TOTAL, 256, 512, 30); // 60
  const r = cagePolicy({ capPct: 70, weight: 256, sumWeights: 512, hostCapacityPct: 100, idsPct: 30, vmFloorPct: 7, vmCeilingPct: 70 });
  // On one CPU (H = 100) our shares are the paper's credits in % of the CPU.
  assert.ok(Math.abs(r.capSharePct - (cap / TOTAL) * 100) < 1e-9);
  assert.ok(Math.abs((r.weightSharePct as number) - (weight / TOTAL) * 100) < 1e-9);
  assert.ok(Math.abs(r.vmSharePct - (Math.min(cap, weight) / TOTAL) * 100) < 1e-9);
  assert.equal(r.binding, "weight");
  assert.equal(r.vmCapPct, 40);
  // The applied weight gives the VM 20% against dom0's 256: 64 / (64 + 256) = 0.2.
  assert.equal(r.vmWeight, 64);
  assert.match(r.reason, /ids 30% of cage cap 70%/);
});

void test("paper §4.4, OC-Limiter: run = min(100 ms × limit / measured, 100 ms), stop = 100 ms − run", () => {
  assert.deepEqual(paperRunTime(100, 30, 60), { runMs: 50, stopMs: 50 });
  assert.deepEqual(paperRunTime(100, 30, 100), { runMs: 30, stopMs: 70 });
  assert.deepEqual(paperRunTime(100, 30, 20), { runMs: 100, stopMs: 0 });
  assert.deepEqual(paperRunTime(100, 30, 0), { runMs: 100, stopMs: 0 }); // idle IDS: never stopped
  assert.deepEqual(paperRunTime(100, 30, 200), { runMs: 15, stopMs: 85 }); // two busy threads
});

void test("cap only: VM cap = cage cap − IDS, work-conserving when the IDS idles", () => {
  const base = { capPct: 50, weight: null, sumWeights: 100, hostCapacityPct: 200, vmFloorPct: 5, vmCeilingPct: 50 };
  assert.equal(cagePolicy({ ...base, idsPct: 30 }).vmCapPct, 20);
  assert.equal(cagePolicy({ ...base, idsPct: 0 }).vmCapPct, 50);
  assert.equal(cagePolicy({ ...base, idsPct: 0 }).binding, "cap");
  assert.equal(cagePolicy({ ...base, idsPct: 12.5 }).vmCapPct, 37.5);
  assert.equal(cagePolicy({ ...base, idsPct: 12.5 }).vmWeight, null);
});

void test("floor and ceiling: the VM is never starved, never above its ceiling", () => {
  const base = { capPct: 50, weight: null, sumWeights: 100, hostCapacityPct: 200, vmFloorPct: 5, vmCeilingPct: 45 };
  const starved = cagePolicy({ ...base, idsPct: 60 }); // the IDS alone is over the cage cap
  assert.equal(starved.capSharePct, -10);
  assert.equal(starved.vmCapPct, 5);
  assert.equal(starved.binding, "floor");
  const idle = cagePolicy({ ...base, idsPct: 0 });
  assert.equal(idle.vmCapPct, 45);
  assert.equal(idle.binding, "ceiling");
});

void test("several CPUs: the weight share is H × weight/Σweight − ids (the paper's formula at H = 100)", () => {
  const r = cagePolicy({ capPct: 150, weight: 100, sumWeights: 200, hostCapacityPct: 200, idsPct: 40, vmFloorPct: 15, vmCeilingPct: 150 });
  assert.equal(r.capSharePct, 110);
  assert.ok(Math.abs((r.weightSharePct as number) - 60) < 1e-9);
  assert.equal(r.binding, "weight");
  assert.equal(r.vmCapPct, 110); // the cap is still applied as a cap; the scheduler's weight does the rest
  // 60% of 200% = 0.3 against the other cage's 100: w = 0.3 × 100 / 0.7 ≈ 43.
  assert.equal(r.vmWeight, 43);
});

void test("weightForShare: exact against the other cages; scaled when the cage is alone", () => {
  assert.equal(weightForShare(256, 512, 100, 20), 64);
  assert.equal(weightForShare(100, 100, 200, 150), 75); // alone: 100 × 150/200
  assert.equal(weightForShare(100, 200, 100, 0), 1); // never 0
});

void test("bad input is rejected with the field named", () => {
  const ok = { capPct: 50, weight: null, sumWeights: 100, hostCapacityPct: 100, idsPct: 0, vmFloorPct: 5, vmCeilingPct: 50 };
  assert.throws(() => cagePolicy({ ...ok, idsPct: Number.NaN }), /idsPct/);
  assert.throws(() => cagePolicy({ ...ok, capPct: 0 }), /capPct must be a positive number/);
  assert.throws(() => cagePolicy({ ...ok, vmFloorPct: 60 }), /vmFloorPct 60 > vmCeilingPct 50/);
  assert.throws(() => cagePolicy({ ...ok, weight: 200 }), /weight must be in/);
});

void test("knob defaults: floor 10% of cap, ceiling = cap, fail-safe = ceiling", () => {
  assert.deepEqual(cageCpuKnobs({ cap: 50 }), { vmFloorPct: 5, vmCeilingPct: 50, failsafeCapPct: 50 });
  assert.deepEqual(cageCpuKnobs({ cap: 50, vmFloor: 10, vmCeiling: 40 }), { vmFloorPct: 10, vmCeilingPct: 40, failsafeCapPct: 40 });
  assert.deepEqual(cageCpuKnobs({ cap: 50, failsafeCap: 30 }), { vmFloorPct: 5, vmCeilingPct: 50, failsafeCapPct: 30 });
  assert.equal(sumOfWeights([{ cpu: { weight: 200 } }, { cpu: { weight: null } }]), 300);
});

void test("worthApplying: dead band, but bounds and weight changes always go through", () => {
  const b = { lo: 5, hi: 50 };
  assert.equal(worthApplying(null, { capPct: 20, weight: null }, 1, b), true);
  assert.equal(worthApplying({ capPct: 20, weight: null }, { capPct: 20.5, weight: null }, 1, b), false);
  assert.equal(worthApplying({ capPct: 20, weight: null }, { capPct: 21, weight: null }, 1, b), true);
  assert.equal(worthApplying({ capPct: 49.5, weight: null }, { capPct: 50, weight: null }, 1, b), true);
  assert.equal(worthApplying({ capPct: 20, weight: 64 }, { capPct: 20, weight: 65 }, 1, b), true);
  assert.equal(worthApplying({ capPct: 20, weight: 64 }, { capPct: 20, weight: 64 }, 1, b), false);
});

void test("cageShares and policyReason together are cagePolicy: the controller asks for the words only when it applies", () => {
  const inputs = [
    { capPct: 70, weight: 256, sumWeights: 512, hostCapacityPct: 100, idsPct: 30, vmFloorPct: 7, vmCeilingPct: 70 },
    { capPct: 50, weight: null, sumWeights: 100, hostCapacityPct: 200, idsPct: 60, vmFloorPct: 5, vmCeilingPct: 50 },
    { capPct: 50, weight: null, sumWeights: 100, hostCapacityPct: 200, idsPct: 0, vmFloorPct: 5, vmCeilingPct: 40 },
  ];
  for (const i of inputs) {
    const shares = cageShares(i);
    assert.deepEqual({ ...shares, reason: policyReason(i, shares) }, cagePolicy(i));
  }
  assert.throws(() => cageShares({ ...inputs[0]!, capPct: 0 }), /capPct must be a positive number/);
});
