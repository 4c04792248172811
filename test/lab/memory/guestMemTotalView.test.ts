import { test } from "node:test";
import assert from "node:assert/strict";
import { guestMemTotalView } from "../../../lab/memory/guestMemTotalView.js";

const MiB = 2 ** 20;

void test("guestMemTotalView: start, lowest, and the guest's drop at the largest counted move", () => {
  const totals = [512 * MiB, 500 * MiB, null, 400 * MiB, 450 * MiB];
  let i = 0;
  const view = guestMemTotalView(() => totals[Math.min(i, totals.length - 1)] ?? null);
  for (const moved of [null, 12 * MiB, 30 * MiB, 110 * MiB, 60 * MiB]) {
    i++;
    view.onSample(moved);
  }
  assert.deepEqual(view.details(), {
    guestMemTotalStartBytes: 512 * MiB,
    guestMemTotalMinBytes: 400 * MiB,
    guestViewAtLargestMove: { movedBytes: 110 * MiB, memTotalDropBytes: 62 * MiB },
  });
});

void test("guestMemTotalView: a guest that never reported gives nulls, not a guess", () => {
  const view = guestMemTotalView(() => null);
  view.onSample(8 * MiB);
  assert.deepEqual(view.details(), { guestMemTotalStartBytes: null, guestMemTotalMinBytes: null, guestViewAtLargestMove: { movedBytes: 8 * MiB, memTotalDropBytes: null } });
});
