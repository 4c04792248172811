// The act.state mode rule the three actuators share: every combination of failing, dry-run and
// fail-safe, so a change of precedence shows here before it shows on a dashboard.
import { test } from "node:test";
import assert from "node:assert/strict";
import { actuatorMode } from "../../../actuators/common/actuatorMode.js";

void test("a failing back end is an error whatever else holds", () => {
  for (const dryRun of [false, true]) for (const failsafe of [false, true]) assert.equal(actuatorMode({ failing: true, dryRun, failsafe }), "error");
});

void test("dry-run wins over the fail-safe; fresh data is active", () => {
  assert.equal(actuatorMode({ failing: false, dryRun: true, failsafe: true }), "dry-run");
  assert.equal(actuatorMode({ failing: false, dryRun: true, failsafe: false }), "dry-run");
  assert.equal(actuatorMode({ failing: false, dryRun: false, failsafe: true }), "failsafe");
  assert.equal(actuatorMode({ failing: false, dryRun: false, failsafe: false }), "active");
});
