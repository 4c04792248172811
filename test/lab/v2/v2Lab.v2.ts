// The v2 lab end to end (`npm run test:v2`, which .ci/run calls after `npm run test:xen`; not part
// of `npm test`: each boot takes minutes). Debian's 6.1 kernel with systemd as PID 1 and cgroup v2
// alone, under QEMU TCG; the agent installed with `cage install` and run as offloadcage.service,
// the VM (vm-workload.service) and the IDS (aide.service) as units. docs/v2-lab.md.
// Console logs, results and a summary of each boot are kept in .cache/v2-lab/last-run/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { windowTrace, type CageWindow } from "../../../lab/xen/labScenario.js";
import type { BalloonV2Check, Check, CpuV2Check, PageCacheCheck, V2ScenarioSpec } from "../../../lab/v2/labScenario.js";
import { runV2Scenario } from "../../../lab/v2/v2Lab.js";
import type { LabMarker } from "../../../lab/common/guestBoot.js";
import { recordBoot, type GuestLabTest } from "../common/guestLabRun.js";

// From QEMU's start: the service + cage boot took 1123 s on a loaded host (docs/v2-lab.md).
const BOOT_TIMEOUT_MS = Number(process.env.V2_LAB_TIMEOUT_S ?? 2400) * 1000;

interface V2Results {
  ok: boolean;
  error?: string;
  failures: string[];
  phases: {
    smoke?: { check: Check; timings: Record<string, number> };
    install?: { startToMetricsSeconds: number; verify: { stdout: string; code: number } };
    restart?: { check: Check };
    cage?: { windows: CageWindow[]; checks: { cpu: CpuV2Check; pageCache: PageCacheCheck; balloon: BalloonV2Check } };
    teardown?: { check: Check };
  };
}

const V2_LAB: GuestLabTest = { lab: "v2-lab", timeoutMs: BOOT_TIMEOUT_MS, machine: "the guest", guest: "the guest", markers: { systemdUpS: "systemd-up", poweroffS: "poweroff" } };

async function boot(name: string, spec: V2ScenarioSpec, diag: (s: string) => void): Promise<V2Results> {
  const run = (outDir: string, onMarker: (m: LabMarker) => void) => runV2Scenario<V2Results>({ spec, outDir, timeoutMs: BOOT_TIMEOUT_MS, onMarker });
  const checks = (p: V2Results["phases"]) => ({ smoke: p.smoke?.check, restart: p.restart?.check, cage: p.cage?.checks, teardown: p.teardown?.check });
  const r = await recordBoot(V2_LAB, name, spec, run, (res) => ({ failures: res.results?.failures, checks: res.results && checks(res.results.phases) }), diag);
  assert.equal(r.results.error, undefined, `the scenario failed in the guest: ${r.results.error ?? ""} (logs in ${r.resultsDir})`);
  return r.results;
}

void test("v2 guest boots: systemd is PID 1, cgroup2 alone is mounted, node and bpftrace run", async (t) => {
  const res = await boot("smoke", { phases: ["smoke"], capPct: 50, idsCapPct: 25, durationS: 30, vmMemMiB: 128 }, (s) => t.diagnostic(s));
  const smoke = res.phases.smoke;
  assert.ok(smoke, "no smoke phase in the results");
  assert.deepEqual(smoke.check.problems, []);
});

void test("v2 guest: offloadcage.service installed, restarted after kill -9, all at once on the VM and IDS units, nothing left after uninstall", async (t) => {
  const spec: V2ScenarioSpec = { phases: ["service", "cage"], capPct: 50, idsCapPct: 25, durationS: 30, vmMemMiB: 128 };
  const res = await boot("service-cage", spec, (s) => t.diagnostic(s));
  const p = res.phases;
  assert.ok(p.install, "the agent was not installed and started");
  assert.equal(p.install.verify.code, 0, `systemd-analyze verify in the guest: ${p.install.verify.stdout}`);
  assert.deepEqual(p.restart?.check.problems, [], "kill -9 of the main process");
  assert.deepEqual(p.teardown?.check.problems, [], "systemctl stop + cage uninstall");
  const c = p.cage;
  assert.ok(c, "no cage phase in the results");
  const cpu = c.checks.cpu;
  assert.ok(cpu.ok, `total within cap + 2 in ${cpu.total.within}/${cpu.total.windows}, IDS within idsCap + 2 in ${cpu.idsWithin}; windows vm/ids/total: ${windowTrace(c.windows)}`);
  assert.ok(c.checks.pageCache.ok, `page cache: agent vs memory.stat file off by ${(c.checks.pageCache.lastError * 100).toFixed(2)}%`);
  assert.ok(c.checks.balloon.ok, `balloon: memory.high moved ${c.checks.balloon.movedBytes} B for ${c.checks.balloon.idsBytes} B of IDS memory (bound ${c.checks.balloon.boundBytes} B)`);
});
