// `cage lab chaos --mode short` end to end: the real agent on the demo workloads, real cgroups,
// a kill -9 of the CPU actuator, the limiter and `cage run` (during start-up), and 3 s of malformed
// aggregates into the actuators run alone. Needs root; run it under the e2e lock. The first test
// checks the run itself (it ran, measured, cleaned up); the second holds what the fail-safe
// promises (docs/chaos.md): never without a limit, no orphans, nothing left behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChaosResult } from "../../../lab/chaos/chaosRun.js";
import { CAGE_JS } from "../../cli/cliHarness.js";

const dir = mkdtempSync(join(tmpdir(), "oc-chaos-test-"));
const jsonPath = join(dir, "chaos.json");
let result: ChaosResult | null = null;
let output = "";

void test("cage lab chaos --mode short: completes within 60 s, kills what it says, samples every 10 ms, leaves no cgroup or process of its own", { timeout: 240_000 }, () => {
  const started = Date.now();
  const run = spawnSync(process.execPath, [CAGE_JS, "lab", "chaos", "--mode", "short", "--json", jsonPath], { encoding: "utf8", timeout: 200_000 });
  const seconds = (Date.now() - started) / 1000;
  output = `${run.stdout}\n${run.stderr}`;
  assert.equal(run.status, 0, `exit ${run.status} ${run.signal}:\n${output.slice(-3000)}`);
  result = JSON.parse(readFileSync(jsonPath, "utf8")) as ChaosResult;
  assert.equal(result.mode, "short");
  assert.deepEqual(result.components.map((c) => c.component), ["actuator-cpu", "actuator-limiter", "cage run"]);
  for (const c of result.components) {
    assert.equal(c.kills, 1, `${c.component}: one kill`);
    assert.deepEqual(c.failures, [], `${c.component}: every kill found its target`);
  }
  assert.equal(result.kills.length, 3);
  assert.ok(result.kills.every((k) => k.pid > 0), "each kill hit a real process");
  // The sampler ran all along: at least one sample per 25 ms on a loaded 2-core machine.
  assert.ok(result.sampler.samples > (result.seconds * 1000) / 25, `${result.sampler.samples} samples in ${result.seconds} s`);
  assert.ok(result.malformed !== null && result.malformed.published > 0 && result.malformed.actuators.length === 3);
  assert.match(run.stdout, /^component\s+kills\s+max IDS stopped ms\s+max uncapped ms\s+ever no-limit\s+orphans\s+leftovers\s+failures$/m);
  // What the run itself made is gone: its memory cgroup, its cage's cpu cgroup, its processes.
  assert.equal(existsSync(`/sys/fs/cgroup/cpu/offloadcage/${result.cage}`), false, "the cage's cpu cgroup");
  assert.deepEqual(readdirSync("/sys/fs/cgroup/memory").filter((d) => d.startsWith("oc-chaos-")), [], "the run's memory cgroup");
  const ps = spawnSync("ps", ["-eo", "args"], { encoding: "utf8" }).stdout;
  assert.doesNotMatch(ps, new RegExp(`--chaos ${result.cage}\\b`), "the run's workloads");
  assert.ok(result.seconds <= 60, `the short run took ${result.seconds} s (wall ${seconds.toFixed(1)} s)`);
});

// What must hold whatever the load: never "no limit", no orphans, nothing left behind, the
// actuators alive at their fail-safe under malformed input. The times (IDS stopped ≤ 1 s, cap back
// ≤ 1.5 s) are figures of the long run (`cage lab chaos --mode long`), reported here, not asserted.
void test("cage lab chaos --mode short: never without a limit, no orphans, nothing left, fail-safe under malformed input", (t) => {
  assert.ok(result !== null, "the run above produced results");
  t.diagnostic(output.split("\n").filter((l) => !l.startsWith("cage lab chaos:")).join("\n"));
  for (const c of result.components) {
    assert.notEqual(c.everNoLimit, true, `${c.component}: the VM had no limit while the agent should have been capping`);
    assert.equal(c.orphans, 0, `${c.component}: orphans 5 s after the kill`);
    assert.deepEqual(c.leftovers, [], `${c.component}: leftovers`);
  }
  const m = result.malformed;
  assert.ok(m !== null);
  assert.ok(m.actuators.every((a) => a.alive && a.lastMode === "failsafe"), JSON.stringify(m.actuators));
  assert.ok(m.failsafeAfterMs !== null, "the VM's cap reached its fail-safe under malformed input");
  assert.ok(m.idsStoppedSamples > 0, "the real IDS still limited");
  assert.deepEqual(m.leftovers, []);
});

void test.after(() => rmSync(dir, { recursive: true, force: true }));
