/**
 * `cage lab chaos --mode short|long`: runs the chaos run (lab/chaos/chaosRun.ts), prints the
 * per-component table and the impostor and malformed-input figures, and writes --json FILE.
 * Exit 0 when the run completed, whatever it measured: the figures are the result.
 */
import { writeFileSync } from "node:fs";
import { parseLabChaosArgs } from "./chaosOptions.js";
import { runInterruptible } from "../common/interruptible.js";
import { runChaos, type ChaosProgress, type ChaosResult } from "./chaosRun.js";
import { formatComponentTable } from "./chaosStats.js";

export function chaosReport(r: ChaosResult): string {
  const lines = [
    `cage lab chaos --mode ${r.mode}: ${r.seconds} s, seed ${r.seed}, cage ${r.cage} (cap ${r.cpu.capPct}%, idsCap ${r.cpu.idsCapPct}%, failsafeCap ${r.cpu.failsafeCapPct}%, staleAfterMs ${r.cpu.staleAfterMs})`,
    `sampler: ${r.sampler.samples} samples every 10 ms, longest gap ${r.sampler.maxGapMs} ms`,
    "",
    formatComponentTable(r.components),
  ];
  for (const c of r.components) {
    for (const f of c.failures) lines.push(`  ${c.component}: ${f}`);
    for (const l of c.leftovers) lines.push(`  ${c.component} leftover: ${l}`);
  }
  const orphanKills = r.kills.filter((k) => k.orphans > 0);
  for (const k of orphanKills) lines.push(`  orphans 5 s after kill ${k.index + 1} of ${k.component}${k.afterStartMs !== undefined ? ` (${k.afterStartMs} ms after start)` : ""}: ${k.orphanNames.join(", ")}`);
  if (r.impostors.length > 0) {
    lines.push("", "impostors:");
    for (const i of r.impostors) {
      lines.push(
        `  ${i.kind} (pid ${i.pid}, uid ${i.uid}, ${i.seconds} s): counted in ${i.aggregatesCountingIt} of ${i.aggregates} aggregates; ` +
          `stopped ${(i.stoppedFraction * 100).toFixed(1)}% of the time (longest ${i.maxStoppedMs} ms); ` +
          `VM cap mean ${i.meanVmCapPct ?? "-"}% (baseline ${i.baselineMeanVmCapPct ?? "-"}%); real IDS CPU ${i.realIdsCpuPct}% (baseline ${i.baselineRealIdsCpuPct}%); cgroup ${i.cgroupAtEnd ?? "-"}`,
      );
    }
  }
  if (r.malformed !== null) {
    const m = r.malformed;
    lines.push(
      "",
      `malformed aggregates (${m.seconds} s, ${m.published} published, ${m.kinds} kinds of the ${m.candidates} made that the decoder rejects): VM at its fail-safe cap ${m.failsafeAfterMs === null ? "never" : `after ${m.failsafeAfterMs} ms`}; ` +
        `off the fail-safe in ${m.samplesOffFailsafe} of ${m.samples} samples after; real IDS stopped in ${m.idsStoppedSamples} of ${m.samples} samples`,
    );
    for (const a of m.actuators) lines.push(`  actuator ${a.name}: ${a.alive ? "alive" : `exited (${a.exit})`}, last mode ${a.lastMode ?? "-"}, invalidAggregates ${a.invalidAggregates ?? "-"}`);
    for (const l of m.leftovers) lines.push(`  leftover: ${l}`);
  }
  const failing = Object.entries(r.criteria);
  lines.push("", failing.length === 0 ? "criteria: every component within the issue's limits" : "criteria not met:");
  for (const [component, why] of failing) lines.push(`  ${component}: ${why.join("; ")}`);
  return `${lines.join("\n")}\n`;
}

export async function runLabChaos(args: string[]): Promise<number> {
  const opts = parseLabChaosArgs(args);
  return runInterruptible("cage lab chaos", async (signal, progress) => {
    const jsonPath = opts.jsonPath;
    // Written after each component too (marked partial): a long run can be read, or cut short, with its figures so far.
    const partial = jsonPath === null ? undefined : (p: ChaosProgress): void => writeFileSync(jsonPath, `${JSON.stringify({ partial: true, ...p }, null, 2)}\n`);
    const result = await runChaos(opts, signal, progress, partial);
    if (signal.aborted) return 0;
    if (jsonPath !== null) writeFileSync(jsonPath, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(chaosReport(result));
    return 0;
  });
}
