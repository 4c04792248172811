// The duty cycle: the paper's run time from the IDS's demand while running (not its throttled %).
import { test } from "node:test";
import assert from "node:assert/strict";
import { demandPct, nextRunMs } from "../../../actuators/limiter/dutyCycle.js";
import { parseSchedstatRunNs, processCpuNs } from "../../../actuators/limiter/taskCpuTime.js";

void test("demand is CPU used while allowed to run; the run time follows the paper", () => {
  // Ran 30 ms of a 100 ms cycle and used 30 ms of CPU: it wants 100%, so it keeps 30 ms at a 30% cap.
  assert.equal(demandPct({ usedNs: 30e6, runNs: 30e6 }), 100);
  assert.equal(nextRunMs(100, 30, { usedNs: 30e6, runNs: 30e6 }), 30);
  // An IDS that only needs 20% while running is never stopped at a 30% cap.
  assert.equal(nextRunMs(100, 30, { usedNs: 20e6, runNs: 100e6 }), 100);
  // Two busy threads (200%) get 15 ms.
  assert.equal(nextRunMs(100, 30, { usedNs: 60e6, runNs: 30e6 }), 15);
  assert.equal(demandPct({ usedNs: 0, runNs: 100e6 }), 0);
  assert.equal(nextRunMs(100, 30, { usedNs: 0, runNs: 0 }), 100);
});

void test("schedstat: parsed strictly; a live process has a growing on-CPU time, a gone one null", () => {
  assert.equal(parseSchedstatRunNs("208432687 26066597 648\n", "x"), 208432687);
  assert.throws(() => parseSchedstatRunNs("garbage", "/proc/1/task/1/schedstat"), /\/proc\/1\/task\/1\/schedstat: expected "RUN_NS WAIT_NS SLICES"/);
  // Burn 50 ms of CPU (by getrusage; the shared host may give us little of the wall time) and
  // compare with what schedstat says for all our threads.
  const a = processCpuNs(process.pid) as number;
  const r0 = process.cpuUsage();
  const deadline = Date.now() + 10_000;
  let usedUs = 0;
  while (usedUs < 50_000 && Date.now() < deadline) {
    const r = process.cpuUsage(r0);
    usedUs = r.user + r.system;
  }
  const b = processCpuNs(process.pid) as number;
  const schedMs = (b - a) / 1e6;
  assert.ok(usedUs >= 50_000, "got 50 ms of CPU within 10 s");
  assert.ok(Math.abs(schedMs - usedUs / 1000) <= 0.2 * (usedUs / 1000) + 5, `schedstat ${schedMs} ms vs getrusage ${usedUs / 1000} ms`);
  assert.equal(processCpuNs(999999999), null);
});
