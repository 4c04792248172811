import { test } from "node:test";
import assert from "node:assert/strict";
import { waitFor } from "../../../lab/common/guestCommands.js";

void test("waitFor: the probe's first value; a probe that throws counts as none; the timeout names the wait and the report", async () => {
  let calls = 0;
  const v = await waitFor("three polls", 5_000, () => {
    calls++;
    if (calls === 1) return Promise.reject(new Error("not yet"));
    return Promise.resolve(calls < 3 ? null : calls);
  }, undefined, 10);
  assert.equal(v, 3);
  await assert.rejects(waitFor("nothing", 50, () => Promise.resolve(null), () => "still nothing", 10), { message: "timed out after 50 ms waiting for nothing (still nothing)" });
});
