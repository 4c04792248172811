// The Xen lab end to end (`npm run test:xen`, which .ci/run calls after `npm test`; not part of
// `npm test` itself, which stays under 20 minutes: each boot takes minutes).
// Real Xen 4.17 under QEMU TCG, the agent in dom0 with the live xentrace collector and bpftrace,
// a busy PV domU, AIDE in dom0 scanning the domU's disk read-only; on credit1 and credit2; and an
// IDS inside an IDS-VM, charged by CR3 through its helper's xenstore reports.
// Figures and logs of each run are kept in .cache/xen-lab/last-run/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type ActuatorProgress, type BalloonCheck, type CageWindow, type CapCompliance, type CapVerdict, type Cr3IdsAgreement, guestPanic, type LabScenarioSpec, windowTrace } from "../../../lab/xen/labScenario.js";
import { runLabScenario } from "../../../lab/xen/xenLab.js";
import type { LabMarker } from "../../../lab/common/guestBoot.js";
import { recordBoot, type GuestLabTest } from "../common/guestLabRun.js";

const BOOT_TIMEOUT_MS = Number(process.env.XEN_LAB_TIMEOUT_S ?? 1500) * 1000;
/**
 * The cr3-ids boot's bound: 623–1,837 s in dom0 in the boots docs/xen-lab.md lists (the agent's
 * first cage window alone came 330–890 s in), under the 50 minutes CI has left after the others.
 */
const CR3_BOOT_TIMEOUT_MS = Number(process.env.XEN_LAB_CR3_TIMEOUT_S ?? 2400) * 1000;

interface PhaseResult {
  compliance: CapCompliance;
  windows: CageWindow[];
  actuators?: { cpu: ActuatorProgress; limiter: ActuatorProgress };
}
/** What the cr3-ids phase reports (scenarioMain.ts's Cr3IdsResult, the fields checked here). */
interface Cr3IdsPhase {
  agreement?: Cr3IdsAgreement;
  guestRateSpread?: [number, number];
  guestMmOthers?: string;
  capVerdict?: CapVerdict;
  /** The cap part's fresh cage windows. */
  windows?: CageWindow[];
  agentLogRejections?: string[];
}
interface LabResults {
  ok: boolean;
  error?: string;
  timings: Record<string, number>;
  phases: Record<string, PhaseResult | { check: BalloonCheck; steps: unknown[] } | Cr3IdsPhase>;
}

function baseSpec(scheduler: "credit" | "credit2"): LabScenarioSpec {
  return { phases: ["cpu-off"], scheduler, capPct: 50, idsCapPct: 25, durationS: 20, ids: "aide", domuMemMiB: 256, balloonStepMiB: 24, balloonSteps: 4 };
}

const XEN_LAB: GuestLabTest = { lab: "xen-lab", timeoutMs: BOOT_TIMEOUT_MS, machine: "the lab", guest: "dom0", markers: { stage1S: "stage1", xenReadyS: "xen-ready", poweroffS: "poweroff" } };

async function bootScenario(name: string, spec: LabScenarioSpec, diag: (s: string) => void, timeoutMs: number): Promise<{ results: LabResults; resultsDir: string }> {
  const boot = (outDir: string, onMarker: (m: LabMarker) => void) => runLabScenario<LabResults>({ spec, outDir, timeoutMs, onMarker });
  const summarize = (v: LabResults["phases"][string]): unknown => ("compliance" in v ? v.compliance : "check" in v ? v.check : { agreement: v.agreement, guestRateSpread: v.guestRateSpread, capVerdict: v.capVerdict });
  const phases = (res: LabResults | null) => Object.fromEntries(Object.entries(res?.phases ?? {}).map(([k, v]) => [k, summarize(v)]));
  return recordBoot({ ...XEN_LAB, timeoutMs }, name, spec, boot, (run) => ({ timings: run.results?.timings, phases: phases(run.results) }), diag);
}

async function runAndReport(name: string, spec: LabScenarioSpec, diag: (s: string) => void): Promise<LabResults> {
  const r = await bootScenario(name, spec, diag, BOOT_TIMEOUT_MS);
  assert.equal(r.results.ok, true, `scenario failed in dom0: ${r.results.error ?? "?"} (logs in ${r.resultsDir})`);
  return r.results;
}

/** More boots allowed when the IDS-VM's kernel panicked (and only then). */
const IDS_VM_PANIC_RETRIES = 2;

/** The IDS-VM console's panic lines, if its kernel panicked (dom0 saves that console with the results). */
function idsVmPanic(resultsDir: string): string | null {
  const consolePath = join(resultsDir, "idsvm-console.log");
  return existsSync(consolePath) ? guestPanic(readFileSync(consolePath, "utf8")) : null;
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

void test("Xen 4.17 sched=credit2: an IDS inside an IDS-VM, charged by CR3 from dom0, within 2% of its own schedstat over ≥ 20 s, and the cage's cap held with it (≥ 90% of fresh 1 s windows within cap + 3)", async (t) => {
  // 40 s windows: the comparison's span is 2 × 40 + 5 s, so the windows' misalignment with the
  // guest's 1 s samples is a smaller part of it (docs/xen-lab.md, cr3-ids).
  const spec: LabScenarioSpec = { ...baseSpec("credit2"), phases: ["cr3-ids"], ids: "burn", durationS: 40 };
  const diag = (s: string) => t.diagnostic(s);
  // The IDS-VM's kernel has panicked under TCG in 7 of 32 boots (docs/xen-lab.md), a fault of the
  // emulated guest in its first seconds, before anything of the agent is measured: that alone earns
  // another boot (at most two more, each about a minute), said in the test's output; any other
  // failure fails at once.
  let r = await bootScenario("cr3-ids", spec, diag, CR3_BOOT_TIMEOUT_MS);
  for (let retry = 1; retry <= IDS_VM_PANIC_RETRIES; retry++) {
    const panic = r.results.ok ? null : idsVmPanic(r.resultsDir);
    if (panic === null) break;
    diag(`cr3-ids: the IDS-VM's kernel panicked (${panic}); dom0 said: ${r.results.error ?? "?"}; booting again, ${retry} of ${IDS_VM_PANIC_RETRIES} (logs of this boot in ${r.resultsDir})`);
    r = await bootScenario(`cr3-ids-again-${retry}`, spec, diag, CR3_BOOT_TIMEOUT_MS);
  }
  assert.equal(r.results.ok, true, `scenario failed in dom0: ${r.results.error ?? "?"} (logs in ${r.resultsDir})`);
  const res = r.results;
  const p = res.phases["cr3-ids"] as Cr3IdsPhase;
  const a = p.agreement;
  assert.ok(a !== undefined, "cr3-ids: no comparison");
  const figures = `guest ${a.guestPct.toFixed(2)}% over ${a.spanS.toFixed(1)} s (steal ${a.guestStealPct.toFixed(2)}%, ±3 samples ${(p.guestRateSpread ?? []).map((x) => x.toFixed(2)).join("–")}%), dom0 ${a.dom0Pct.toFixed(2)}% of the IDS-VM's traced time (${a.windows} raw.xen windows, ${a.lostRecords} records lost); others under its page table: ${p.guestMmOthers ?? "?"}`;
  assert.ok(a.spanS >= 20, `cr3-ids: span ${a.spanS.toFixed(1)} s: ${figures}`);
  assert.ok(a.ok, `cr3-ids: dom0 ${(a.relError * 100).toFixed(2)}% from the guest's schedstat (bar 2%): ${figures}`);
  // cr3CapVerdict: ≥ 15 fresh windows, ≥ 90% of them within cap + 3 and the IDS charged by CR3 in ≥ 90%.
  assert.ok(p.capVerdict?.ok === true, `cr3-ids cap part: ${p.capVerdict?.message ?? "not run"}; windows vm/ids/total: ${windowTrace(p.windows ?? [])}`);
  // The planted bad reports: one forged (below dom0's own path), one malformed.
  const rejections = (p.agentLogRejections ?? []).join("\n");
  assert.match(rejections, /ignored \(forged\)/, "the agent did not log the forged report as ignored");
  assert.match(rejections, /ignored \(malformed\)/, "the agent did not log the malformed report as ignored");
});
