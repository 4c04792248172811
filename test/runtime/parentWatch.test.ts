import { test } from "node:test";
import assert from "node:assert/strict";
import { currentParentPid, SUPERVISOR_PID_ENV, takeSupervisorPid } from "../../runtime/parentWatch.js";

void test("takeSupervisorPid: the PID, removed from the environment so our own children do not inherit it", () => {
  const env: NodeJS.ProcessEnv = { [SUPERVISOR_PID_ENV]: "4242", OTHER: "x" };
  assert.equal(takeSupervisorPid(env), 4242);
  assert.equal(env[SUPERVISOR_PID_ENV], undefined);
  assert.equal(takeSupervisorPid(env), null, "taken once");
});

void test("takeSupervisorPid: a value that is not a PID is rejected with the value named", () => {
  for (const bad of ["", "0", "-1", "12a", "1.5", " 7"]) {
    assert.throws(
      () => takeSupervisorPid({ [SUPERVISOR_PID_ENV]: bad }),
      (err: Error) => err.message === `${SUPERVISOR_PID_ENV} must be a PID, got ${JSON.stringify(bad)}`,
    );
  }
});

void test("currentParentPid reads the parent as it is now", () => {
  assert.equal(currentParentPid(), process.ppid);
});
