// The Xen lab end to end (`npm run test:xen`, which .ci/run calls after `npm test`; not part of
// `npm test` itself, which stays under 20 minutes: each boot takes minutes).
// Real Xen 4.17 under QEMU TCG, the agent in dom0 with the live xentrace collector and bpftrace,
// a busy PV domU, AIDE in dom0 scanning the domU's disk read-only; on credit1 and credit2.
// Figures and logs of each run are kept in .cache/xen-lab/last-run/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ActuatorProgress, type BalloonCheck, type CageWindow, type CapCompliance, type LabScenarioSpec, windowTrace } from "../../../lab/xen/labScenario.js";
import { runLabScenario } from "../../../lab/xen/xenLab.js";
import type { LabMarker } from "../../../lab/common/guestBoot.js";
import { recordBoot, type GuestLabTest } from "../common/guestLabRun.js";

const BOOT_TIMEOUT_MS = Number(process.env.XEN_LAB_TIMEOUT_S ?? 1500) * 1000;

interface PhaseResult {
  compliance: CapCompliance;
  windows: CageWindow[];
  actuators?: { cpu: ActuatorProgress; limiter: ActuatorProgress };
}
interface LabResults {
  ok: boolean;
  error?: string;
  timings: Record<string, number>;
  phases: Record<string, PhaseResult | { check: BalloonCheck; steps: unknown[] }>;
}

function baseSpec(scheduler: "credit" | "credit2"): LabScenarioSpec {
  return { phases: ["cpu-off"], scheduler, capPct: 50, idsCapPct: 25, durationS: 20, ids: "aide", domuMemMiB: 256, balloonStepMiB: 24, balloonSteps: 4 };
}

const XEN_LAB: GuestLabTest = { lab: "xen-lab", timeoutMs: BOOT_TIMEOUT_MS, machine: "the lab", guest: "dom0", markers: { stage1S: "stage1", xenReadyS: "xen-ready", poweroffS: "poweroff" } };

async function runAndReport(name: string, spec: LabScenarioSpec, diag: (s: string) => void): Promise<LabResults> {
  const boot = (outDir: string, onMarker: (m: LabMarker) => void) => runLabScenario<LabResults>({ spec, outDir, timeoutMs: BOOT_TIMEOUT_MS, onMarker });
  const phases = (res: LabResults | null) => Object.fromEntries(Object.entries(res?.phases ?? {}).map(([k, v]) => [k, "compliance" in v ? v.compliance : v.check]));
  const r = await recordBoot(XEN_LAB, name, spec, boot, (run) => ({ timings: run.results?.timings, phases: phases(run.results) }), diag);
  assert.equal(r.results.ok, true, `scenario failed in dom0: ${r.results.error ?? "?"} (logs in ${r.resultsDir})`);
  return r.results;
}

/** What a failed CPU phase looked like, in the assertion message: CI keeps only the end of its log. */
function explain(name: string, p: PhaseResult): string {
  const c = p.compliance;
  const acts = p.actuators ? `; actuators ${JSON.stringify(p.actuators)}` : "";
  return `${name}: ${c.within} of ${c.windows} windows within cap + 3; mean vm ${c.meanVmPct.toFixed(1)} ids ${c.meanIdsPct.toFixed(1)} total ${c.meanTotalPct.toFixed(1)}, max ${c.maxTotalPct.toFixed(1)}; windows vm/ids/total: ${windowTrace(p.windows)}${acts}`;
}

function assertCpuPhases(res: LabResults): void {
  const off = res.phases["cpu-off"] as PhaseResult;
  // Actuator off: the busy domU (≈ one pCPU) plus AIDE exceed a 50% cage cap in most windows.
  assert.ok(off.compliance.windows >= 15, `cpu-off: only ${off.compliance.windows} windows`);
  assert.ok(off.compliance.fractionWithin < 0.5, `without an actuator, expected most windows over cap + 3: ${explain("cpu-off", off)}`);
  assert.ok(off.compliance.meanTotalPct > 53, `without an actuator, expected a mean total over cap + 3: ${explain("cpu-off", off)}`);
  const on = res.phases["cpu-on"] as PhaseResult;
  assert.ok(on.compliance.windows >= 15, `cpu-on: only ${on.compliance.windows} windows`);
  assert.ok(on.compliance.fractionWithin >= 0.9, `need ≥ 90% of windows within cap + 3: ${explain("cpu-on", on)}`);
}

for (const scheduler of ["credit", "credit2"] as const) {
  void test(`Xen 4.17 sched=${scheduler}: domU + IDS exceed the cage cap without the actuator, stay within cap + 3 in ≥ 90% of 1 s windows with it`, async (t) => {
    const spec: LabScenarioSpec = { ...baseSpec(scheduler), phases: ["cpu-off", "cpu-on"] };
    const res = await runAndReport(`cpu-${scheduler}`, spec, (s) => t.diagnostic(s));
    assertCpuPhases(res);
  });
}

void test("Xen 4.17: as the IDS's memory grows, xl list shows the domU shrinking and dom0 growing by the same amount (within 2%)", async (t) => {
  const spec: LabScenarioSpec = { ...baseSpec("credit2"), phases: ["balloon"] };
  const res = await runAndReport("balloon", spec, (s) => t.diagnostic(s));
  const b = res.phases.balloon as { check: BalloonCheck };
  assert.ok(b.check.domuShrinkMiB >= spec.balloonStepMiB * spec.balloonSteps * 0.9, `domU shrank ${b.check.domuShrinkMiB} MiB for ${spec.balloonStepMiB * spec.balloonSteps} MiB of IDS memory`);
  assert.ok(b.check.ok, `domU −${b.check.domuShrinkMiB} MiB vs dom0 +${b.check.dom0GrowMiB} MiB: mismatch ${(b.check.mismatch * 100).toFixed(2)}%`);
});
