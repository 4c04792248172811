// `cage lab fleet --hosts 3 --cages 5` end to end: 3 simulated hosts (a pipeline and a memory
// collector each), the real eBPF CPU collector, real influxd and Prometheus with the real rules.
// Needs root and bpftrace; run it under the e2e lock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FleetResult } from "../../../lab/fleet/fleetRun.js";
import { CAGE_JS } from "../../cli/cliHarness.js";

void test("cage lab fleet --hosts 3 --cages 5: every series once, every point despite an influxd outage, one alert on the right host and cage, nothing left behind", { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "oc-fleet-test-"));
  const labDirsBefore = new Set(readdirSync("/tmp").filter((n) => n.startsWith("oc-fleet-")));
  try {
    const jsonPath = join(dir, "fleet.json");
    const started = Date.now();
    const run = spawnSync(process.execPath, [CAGE_JS, "lab", "fleet", "--hosts", "3", "--cages", "5", "--duration", "30", "--alert-for", "5", "--influx-outage", "5", "--json", jsonPath], { encoding: "utf8", timeout: 280_000 });
    const seconds = (Date.now() - started) / 1000;
    const output = `${run.stdout}\n${run.stderr}`;
    assert.equal(run.status, 0, `exit ${run.status} ${run.signal}:\n${output.slice(-4000)}`);
    const r = JSON.parse(readFileSync(jsonPath, "utf8")) as FleetResult;
    assert.equal(r.cages, 15);
    assert.deepEqual(r.problems, []);
    assert.deepEqual(
      r.series.map((s) => [s.metric, s.rows]),
      [
        ["cage_cpu_cap_cores", 15],
        ["cage_aggregate_age_seconds", 15],
        ["cage_cpu_seconds_total", 30],
        ["cage_processes", 30],
        ["target_info", 3],
      ],
    );
    assert.ok(r.points.expectedPerCage >= 20, `${r.points.expectedPerCage} windows counted`);
    assert.equal(r.points.total, r.points.expectedTotal);
    assert.deepEqual(r.alerts.fired, [{ alertname: "CageOverCap", instance: r.overrun.host, cage: r.overrun.cage }]);
    assert.equal(r.overrun.host, "host-02");
    assert.ok(r.perHost.every((h) => h.lostMessages === 0 && h.pointsDropped === 0 && h.pointsWritten > 0), JSON.stringify(r.perHost));
    // influxd was down for 5 s: every host felt it, and still every point arrived (checked above).
    assert.ok(r.influxOutage !== null && r.influxOutage.seconds >= 5, JSON.stringify(r.influxOutage));
    assert.ok(r.perHost.every((h) => h.writeFailures > 0), JSON.stringify(r.perHost));
    assert.match(run.stdout, /^every check passed$/m);
    assert.equal(r.keptDir, null);
    // Its lab directory is gone, and so is every process it started (agents, cage shells).
    assert.deepEqual(readdirSync("/tmp").filter((n) => n.startsWith("oc-fleet-") && !labDirsBefore.has(n)), []);
    const ps = spawnSync("ps", ["-eo", "args"], { encoding: "utf8" }).stdout;
    const leftovers = ps.split("\n").filter((l) => l.includes("/tmp/oc-fleet-") || l.includes("read line && while :; do :; done"));
    assert.deepEqual(leftovers, []);
    assert.ok(seconds < 120, `${seconds} s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
