// The whole agent (`cage run`: collectors, pipeline, CPU actuator) on a real cgroup v1 VM: the CPU
// actuator SIGKILLed is replaced by its guardian's fail-safe cap (never "no limit") within 1.5 s,
// and the supervisor's immediate restart caps the VM again. Run under the e2e lock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CAGE_JS } from "../../cli/cliHarness.js";
import { testCpuCgroup, waitFor, writeCageFile } from "../actuatorHarness.js";

function quotaOf(cgroup: string): string {
  return readFileSync(join(cgroup, "cpu.cfs_quota_us"), "utf8").trim();
}

/** The PID of the running CPU actuator of this runtime directory, or null. */
function cpuActuatorPid(runtimeDir: string): number | null {
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmdline = readFileSync(`/proc/${d}/cmdline`, "utf8");
      if (cmdline.includes("actuators/cpu/main.js") && cmdline.includes(runtimeDir)) return Number(d);
    } catch {
      // exited meanwhile
    }
  }
  return null;
}

void test("cage run: the CPU actuator SIGKILLed → the VM at its failsafeCap within 1.5 s, never uncapped, then capped again by the restarted actuator", { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "oc-cpufs-"));
  const runtimeDir = join(dir, "run");
  const cg = testCpuCgroup("failsafe");
  mkdirSync(cg.path);
  const vm = spawn("sleep", ["600"], { stdio: "ignore" });
  cg.add(vm.pid as number);
  const ids = spawn("sleep", ["600"], { stdio: "ignore" });
  const config = writeCageFile(
    dir,
    [
      "  prometheus: false",
      "  actuators:",
      "    cpu: { periodMs: 100, staleAfterMs: 3000 }",
    ],
    [
      "  - name: failsafe",
      `    vm: { kind: cgroup, path: ${cg.path} }`,
      `    ids: [{ pid: ${String(ids.pid)}, uid: 0 }]`,
      "    cpu: { cap: 100, failsafeCap: 40 }",
    ], runtimeDir,
  );
  let run: ChildProcess | null = spawn(process.execPath, [CAGE_JS, "run", "--config", config], { stdio: "ignore" });
  try {
    // An idle IDS: the VM gets the whole cage cap (100% of a CPU).
    await waitFor("the VM capped from data", () => quotaOf(cg.path) === "100000", 60_000);
    const pid = cpuActuatorPid(runtimeDir);
    assert.ok(pid !== null, "the CPU actuator is running");
    process.kill(pid, "SIGKILL");
    const killedAt = Date.now();
    let failsafeAfterMs: number | null = null;
    let uncappedSamples = 0;
    let samples = 0;
    while (Date.now() - killedAt < 15_000) {
      const q = quotaOf(cg.path);
      samples++;
      if (q === "-1") uncappedSamples++;
      if (failsafeAfterMs === null && q === "40000") failsafeAfterMs = Date.now() - killedAt;
      const restarted = cpuActuatorPid(runtimeDir);
      if (failsafeAfterMs !== null && restarted !== null && restarted !== pid && q === "100000") break;
      await sleep(10);
    }
    const recappedAfterMs = Date.now() - killedAt;
    t.diagnostic(`fail-safe cap in place ${String(failsafeAfterMs)} ms after the SIGKILL; capped again from data ${recappedAfterMs} ms after; ${uncappedSamples} of ${samples} samples (10 ms) without a cap`);
    assert.equal(uncappedSamples, 0, "never without a cap");
    assert.ok(failsafeAfterMs !== null && failsafeAfterMs <= 1_500, `fail-safe cap within 1.5 s (got ${String(failsafeAfterMs)} ms)`);
    assert.equal(quotaOf(cg.path), "100000", "capped again by the restarted actuator");

    const exited = new Promise<void>((resolve) => (run as ChildProcess).once("exit", () => resolve()));
    run.kill("SIGTERM");
    await exited;
    run = null;
    assert.equal(quotaOf(cg.path), "-1", "an orderly stop restores the original (no quota), not the fail-safe left by the crash");
  } finally {
    run?.kill("SIGKILL");
    vm.kill("SIGKILL");
    ids.kill("SIGKILL");
    cg.remove();
    rmSync(dir, { recursive: true, force: true });
  }
});
