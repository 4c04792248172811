import { test } from "node:test";
import assert from "node:assert/strict";
import { ATTACH_TIMEOUT_ENV, attachTimeoutFromEnv } from "../../runtime/bpftraceAttachTimeout.js";

void test("attach timeout: the caller's default, OFFLOADCAGE_BPFTRACE_ATTACH_TIMEOUT_MS when set, bad values refused naming the collector", () => {
  assert.equal(attachTimeoutFromEnv("cpu collector", 30_000, {}), 30_000);
  assert.equal(attachTimeoutFromEnv("page cache collector", 60_000, { [ATTACH_TIMEOUT_ENV]: "" }), 60_000);
  assert.equal(attachTimeoutFromEnv("cpu collector", 30_000, { [ATTACH_TIMEOUT_ENV]: "600000" }), 600_000);
  for (const bad of ["999", "3600001", "1e5", "30s", "-5000"]) {
    assert.throws(() => attachTimeoutFromEnv("page cache collector", 60_000, { [ATTACH_TIMEOUT_ENV]: bad }), {
      message: `page cache collector: OFFLOADCAGE_BPFTRACE_ATTACH_TIMEOUT_MS must be an integer number of ms from 1000 to 3600000, got ${JSON.stringify(bad)}`,
    });
  }
});
