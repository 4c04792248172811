// A PID whose start time no longer matches the one the aggregate gave names another process (the
// number was reused): the sigstop limiter must never stop or resume it. Sends real signals to a
// real child, so run it under the e2e lock like the other limiter tests.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import type { GuardianClient } from "../../../actuators/common/guardianClient.js";
import { SigstopLimiter } from "../../../actuators/limiter/sigstopLimiter.js";
import { readStartTime } from "../../../host/proc/processIdentity.js";
import { capturingLogger, procState, startBurner, stopChild } from "../actuatorHarness.js";

/** Acknowledges every registration at once: the real guardian is tested in guardian.test.ts. */
const acceptingGuardian = { register: () => Promise.resolve(), forget: () => Promise.resolve() } as unknown as GuardianClient;

/** Runs the limiter on one burner for `ms` with this start time; how often it was seen stopped (state T, sampled every 10 ms). */
async function stoppedSamples(startTimeOf: (realStart: number) => number, ms: number): Promise<{ stopped: number; samples: number; skipped: number; warned: number }> {
  const burner = startBurner(100);
  const { logger, records } = capturingLogger();
  const limiter = new SigstopLimiter({ periodMs: 50, logger, dryRun: false, guardian: () => acceptingGuardian });
  try {
    const realStart = readStartTime(burner.pid);
    assert.ok(realStart !== null);
    limiter.setCage("c", 10, new Map([[burner.pid, startTimeOf(realStart)]]));
    await delay(20); // let the guardian's acknowledgement arm the PID
    limiter.start();
    let stopped = 0;
    let samples = 0;
    for (const end = Date.now() + ms; Date.now() < end; samples++) {
      if (procState(burner.pid) === "T") stopped++;
      await delay(10);
    }
    const warned = records.filter((r) => r.msg === "PID reused by another process: signal not sent").length;
    return { stopped, samples, skipped: limiter.reusedPids.skipped, warned };
  } finally {
    limiter.stop();
    await stopChild(burner);
  }
}

void test("start time matches: the IDS is stopped part of the time (the check does not block the limiter)", { timeout: 20_000 }, async () => {
  const r = await stoppedSamples((start) => start, 1500);
  assert.ok(r.stopped > r.samples / 4, `stopped in ${r.stopped} of ${r.samples} samples`);
  assert.equal(r.skipped, 0);
});

void test("start time mismatch (PID reused): no signal is sent, the skip is counted and logged", { timeout: 20_000 }, async () => {
  const r = await stoppedSamples((start) => start + 1, 1500);
  assert.equal(r.stopped, 0, `stopped in ${r.stopped} of ${r.samples} samples`);
  assert.ok(r.samples > 50);
  // The first-sight SIGCONT was refused; after that the first cycle dropped the PID.
  assert.ok(r.skipped >= 1);
  assert.equal(r.warned, r.skipped > 5 ? 5 : r.skipped);
});
