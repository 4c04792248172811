import { test } from "node:test";
import assert from "node:assert/strict";
import {
  desiredTargetBytes,
  initialCageState,
  stepPolicy,
  validateLimits,
  type BalloonCageState,
  type BalloonLimits,
  type CageMemoryBounds,
  type PolicyInput,
} from "../../../actuators/balloon/balloonPolicy.js";

const MiB = 1024 * 1024;
const bounds: CageMemoryBounds = { baseBytes: 512 * MiB, floorBytes: 192 * MiB, failsafeBytes: 512 * MiB };
const limits: BalloonLimits = {
  maxStepBytes: 128 * MiB,
  hysteresisBytes: 2 * MiB,
  minMoveIntervalMs: 1000,
  reverseHoldMs: 0,
  stuckAfterMs: 5000,
  stuckRetargetBytes: 32 * MiB,
  toleranceBytes: 1 * MiB,
};

/** Runs a sequence of inputs through the policy, returning every result. */
function run(inputs: Array<Partial<PolicyInput> & { nowMs: number }>, start: BalloonCageState = initialCageState(), withLimits: BalloonLimits = limits) {
  let state = start;
  return inputs.map((i) => {
    const r = stepPolicy(state, { idsBytes: 0, actualBytes: null, dryRun: false, ...i }, bounds, withLimits);
    state = r.state;
    return r;
  });
}

void test("desired target is base − IDS memory, page-aligned, within [floor, base]", () => {
  assert.equal(desiredTargetBytes(bounds, 100 * MiB), 412 * MiB);
  assert.equal(desiredTargetBytes(bounds, 100 * MiB + 1), 412 * MiB - 4096); // rounds down to a page
  assert.equal(desiredTargetBytes(bounds, 0), 512 * MiB);
  assert.equal(desiredTargetBytes(bounds, -5), 512 * MiB);
  assert.equal(desiredTargetBytes(bounds, 320 * MiB), 192 * MiB); // exactly base − floor
  assert.equal(desiredTargetBytes(bounds, 450 * MiB), 192 * MiB); // past base − floor: held at floor
  assert.equal(desiredTargetBytes(bounds, 10 * 1024 * MiB), 192 * MiB);
});

void test("the first move goes from the VM's actual toward the desired target, step-limited", () => {
  const [r] = run([{ nowMs: 0, idsBytes: 300 * MiB, actualBytes: 512 * MiB }]);
  assert.ok(r?.move);
  assert.equal(r.move.fromBytes, null);
  assert.equal(r.move.toBytes, 384 * MiB); // 512 − 128 (step), desired 212
  assert.match(r.move.reason, /step-limited/);
  assert.equal(r.desiredBytes, 212 * MiB);
});

void test("step limit, then rate limit, then the remaining step", () => {
  const rs = run([
    { nowMs: 0, idsBytes: 300 * MiB, actualBytes: 512 * MiB },
    { nowMs: 500, idsBytes: 300 * MiB, actualBytes: 384 * MiB },
    { nowMs: 1000, idsBytes: 300 * MiB, actualBytes: 384 * MiB },
    { nowMs: 2000, idsBytes: 300 * MiB, actualBytes: 256 * MiB },
  ]);
  assert.deepEqual(rs.map((r) => r.move?.toBytes ?? null), [384 * MiB, null, 256 * MiB, 212 * MiB]);
  assert.equal(rs[1]?.heldBy, "rate-limit");
});

void test("the floor is never crossed, whatever the IDS uses and whatever the step", () => {
  let state = initialCageState();
  let t = 0;
  for (const ids of [0, 100, 319, 320, 321, 450, 2000, 5, 480, 600]) {
    for (let k = 0; k < 6; k++) {
      t += 1000;
      const r = stepPolicy(state, { nowMs: t, idsBytes: ids * MiB, actualBytes: state.targetBytes, dryRun: false }, bounds, limits);
      state = r.state;
      if (r.move) assert.ok(r.move.toBytes >= bounds.floorBytes && r.move.toBytes <= bounds.baseBytes, `ids ${ids} MiB: target ${r.move.toBytes}`);
    }
    assert.equal(state.targetBytes, desiredTargetBytes(bounds, ids * MiB), `settles for ids ${ids} MiB`);
  }
});

void test("hysteresis: small changes are not applied, but landing exactly on base is", () => {
  const rs = run([
    { nowMs: 0, idsBytes: 100 * MiB, actualBytes: 512 * MiB },
    { nowMs: 2000, idsBytes: 101 * MiB, actualBytes: 412 * MiB }, // 1 MiB change < 2 MiB
    { nowMs: 4000, idsBytes: 103 * MiB, actualBytes: 412 * MiB }, // 3 MiB: applied
    { nowMs: 6000, idsBytes: 1 * MiB, actualBytes: 409 * MiB },
    { nowMs: 8000, idsBytes: 0, actualBytes: 511 * MiB }, // 1 MiB from base: still applied (boundary)
  ]);
  assert.deepEqual(rs.map((r) => r.move?.toBytes ?? null), [412 * MiB, null, 409 * MiB, 511 * MiB, 512 * MiB]);
  assert.equal(rs[1]?.heldBy, "hysteresis");
});

void test("stuck: no progress for stuckAfterMs → stuck once, no further pushes until retargeted", () => {
  const rs = run([
    { nowMs: 0, idsBytes: 100 * MiB, actualBytes: 512 * MiB }, // move to 412
    { nowMs: 2000, idsBytes: 100 * MiB, actualBytes: 500 * MiB }, // progress
    { nowMs: 6000, idsBytes: 100 * MiB, actualBytes: 500 * MiB },
    { nowMs: 7500, idsBytes: 100 * MiB, actualBytes: 500 * MiB }, // 5.5 s since progress: stuck
    { nowMs: 9000, idsBytes: 110 * MiB, actualBytes: 500 * MiB }, // 10 MiB away: held (< 32 MiB)
    { nowMs: 11000, idsBytes: 150 * MiB, actualBytes: 500 * MiB }, // 50 MiB away: pushed
  ]);
  assert.deepEqual(rs.map((r) => r.state.stuck), [false, false, false, true, true, false]);
  assert.deepEqual(rs.map((r) => r.becameStuck), [false, false, false, true, false, false]);
  assert.equal(rs[4]?.heldBy, "stuck");
  assert.equal(rs[4]?.move, null);
  assert.equal(rs[5]?.move?.toBytes, 362 * MiB);
  assert.match(rs[5]?.move?.reason ?? "", /retargeted while stuck/);
});

void test("stuck: reaching the target ends it", () => {
  const rs = run([
    { nowMs: 0, idsBytes: 100 * MiB, actualBytes: 512 * MiB },
    { nowMs: 6000, idsBytes: 100 * MiB, actualBytes: 512 * MiB }, // stuck
    { nowMs: 7000, idsBytes: 100 * MiB, actualBytes: 412 * MiB + 4096 }, // within tolerance
  ]);
  assert.deepEqual(rs.map((r) => r.state.stuck), [false, true, false]);
  assert.equal(rs[2]?.recovered, true);
});

void test("stale data: the fail-safe target at once, without step or rate limit", () => {
  const rs = run([
    { nowMs: 0, idsBytes: 300 * MiB, actualBytes: 512 * MiB },
    { nowMs: 100, idsBytes: null, actualBytes: 384 * MiB },
    { nowMs: 200, idsBytes: null, actualBytes: 450 * MiB },
  ]);
  assert.equal(rs[1]?.move?.toBytes, 512 * MiB);
  assert.equal(rs[1]?.move?.failsafe, true);
  assert.equal(rs[2]?.move, null);
  const custom = stepPolicy(initialCageState(), { nowMs: 0, idsBytes: null, actualBytes: 300 * MiB, dryRun: false }, { ...bounds, failsafeBytes: 256 * MiB }, limits);
  assert.equal(custom.move?.toBytes, 256 * MiB);
});

void test("dry-run: the actual never follows, so it is never declared stuck", () => {
  const rs = run([
    { nowMs: 0, idsBytes: 100 * MiB, actualBytes: 512 * MiB, dryRun: true },
    { nowMs: 60_000, idsBytes: 100 * MiB, actualBytes: 512 * MiB, dryRun: true },
  ]);
  assert.equal(rs[0]?.move?.toBytes, 412 * MiB);
  assert.equal(rs[1]?.state.stuck, false);
});

void test("limits and bounds are checked at the edge with the field named", () => {
  assert.throws(() => validateLimits({ ...limits, maxStepBytes: 0 }, bounds), /maxStepBytes must be at least one page/);
  assert.throws(() => validateLimits({ ...limits, stuckAfterMs: -1 }, bounds), /stuckAfterMs must be a finite number >= 0/);
  assert.throws(() => validateLimits(limits, { ...bounds, floorBytes: 600 * MiB }), /need 0 < floor <= base/);
  assert.throws(() => validateLimits(limits, { ...bounds, failsafeBytes: 100 * MiB }), /failsafe must be within \[floor, base\]/);
});

/** Fast-loop limits: no interval between moves, reversals held 200 ms (longer than the default, to show the hold). */
const fastLimits: BalloonLimits = { ...limits, maxStepBytes: 256 * MiB, minMoveIntervalMs: 0, reverseHoldMs: 200 };

void test("without a move interval, successive steps in one direction go on each input", () => {
  const rs = run(
    [
      { nowMs: 0, idsBytes: 100 * MiB },
      { nowMs: 50, idsBytes: 200 * MiB },
      { nowMs: 100, idsBytes: 300 * MiB },
    ],
    initialCageState(),
    fastLimits,
  );
  assert.deepEqual(rs.map((r) => r.move?.toBytes), [412 * MiB, 312 * MiB, 212 * MiB]);
  assert.deepEqual(rs.map((r) => r.heldBy), [null, null, null]);
});

void test("a reversal within reverseHoldMs of the last move is held, then applied", () => {
  const rs = run(
    [
      { nowMs: 0, idsBytes: 200 * MiB },
      { nowMs: 100, idsBytes: 50 * MiB }, // back up within 200 ms: held
      { nowMs: 150, idsBytes: 250 * MiB }, // same direction as the last move: goes at once
      { nowMs: 300, idsBytes: 50 * MiB }, // reversal again, 150 ms after the last move: held
      { nowMs: 350, idsBytes: 50 * MiB }, // 200 ms after: applied
    ],
    initialCageState(),
    fastLimits,
  );
  assert.deepEqual(rs.map((r) => r.move?.toBytes ?? null), [312 * MiB, null, 262 * MiB, null, 462 * MiB]);
  assert.deepEqual(rs.map((r) => r.heldBy), [null, "reverse-hold", null, "reverse-hold", null]);
  assert.equal(rs[4]?.state.lastDirection, "grow");
});

void test("the stale fail-safe ignores the reversal hold", () => {
  const rs = run(
    [
      { nowMs: 0, idsBytes: 200 * MiB },
      { nowMs: 10, idsBytes: null },
    ],
    initialCageState(),
    fastLimits,
  );
  assert.equal(rs[1]?.move?.toBytes, 512 * MiB);
  assert.equal(rs[1]?.move?.failsafe, true);
});
