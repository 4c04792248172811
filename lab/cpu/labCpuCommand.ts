/**
 * `cage lab cpu ...`: parses the options, runs the experiment (cleaning up on SIGINT/SIGTERM
 * too), prints `{records, summary}` with --json or a table otherwise, and writes --plot.
 */
import { writeFileSync } from "node:fs";
import { renderSvgPlot, type PlotSeries } from "../common/svgPlot.js";
import { runInterruptible } from "../common/interruptible.js";
import { parseLabCpuArgs } from "./labCpuOptions.js";
import { runLabCpu, type LabCpuResult } from "./labCpuRun.js";

export function labCpuPlot(result: LabCpuResult, title: string): string {
  const { records, summary } = result;
  const series: PlotSeries[] = [
    { label: "VM", values: records.map((r) => r.vmPct), color: "#1f77b4" },
    { label: "IDS", values: records.map((r) => r.idsPct), color: "#ff7f0e" },
    { label: "total (VM+IDS)", values: records.map((r) => r.totalPct), color: "#2ca02c" },
    { label: "cage cap", values: records.map((r) => r.capPct), color: "#d62728", dashed: true },
  ];
  if (summary.idsCapPct !== null) series.push({ label: "IDS cap", values: records.map((r) => r.idsCapPct), color: "#9467bd", dashed: true });
  if (result.actuatorVmCapPct.some((v) => v !== null)) series.push({ label: "VM cap (actuator)", values: result.actuatorVmCapPct, color: "#7f7f7f", dashed: true });
  if (records.some((r) => r.cpulimitIdsPct != null)) series.push({ label: "IDS (cpulimit)", values: records.map((r) => r.cpulimitIdsPct ?? null), color: "#8c564b" });
  return renderSvgPlot({ title, xLabel: "time (s)", yLabel: "CPU (% of one CPU)", x: records.map((r) => r.t), series });
}

const fmt = (v: number | null | undefined, digits = 1): string => (v == null ? "-" : v.toFixed(digits));
const pct = (v: number | null | undefined): string => (v == null ? "-" : `${(v * 100).toFixed(1)}%`);

function textReport(result: LabCpuResult): string {
  const { records, summary: s } = result;
  const lines = ["   t    VM%   IDS%  total%   cap%  kernel VM%  kernel IDS%"];
  for (const r of records) {
    lines.push(`${String(r.t).padStart(4)} ${fmt(r.vmPct).padStart(6)} ${fmt(r.idsPct).padStart(6)} ${fmt(r.totalPct).padStart(7)} ${fmt(r.capPct, 0).padStart(6)} ${fmt(r.kernelVmPct).padStart(11)} ${fmt(r.kernelIdsPct).padStart(12)}`);
  }
  lines.push(
    "",
    `IDS: ${s.idsTool}; actuators ${s.actuators ? "on" : "off"}; cap ${s.capPct}%${s.idsCapPct === null ? "" : `, IDS cap ${s.idsCapPct}%`}`,
    `after the first ${s.warmupS} s (${s.windows} windows): total <= cap+${s.toleratedPoints} in ${pct(s.fractionTotalWithinCap)}, over in ${pct(s.fractionTotalOverCap)}` +
      (s.idsCapPct === null ? "" : `; IDS <= idsCap+${s.toleratedPoints} in ${pct(s.fractionIdsWithinIdsCap)}`),
    `mean VM ${fmt(s.meanVmPct, 2)}%, IDS ${fmt(s.meanIdsPct, 2)}%, total ${fmt(s.meanTotalPct, 2)}% (max ${fmt(s.maxTotalPct, 2)}%)`,
    `kernel cross-check: VM agent ${s.kernelCrossCheck.vm.agentCpuSeconds} s vs cpuacct ${s.kernelCrossCheck.vm.kernelCpuSeconds} s (${pct(s.kernelCrossCheck.vm.relativeDifference)}), IDS agent ${s.kernelCrossCheck.ids.agentCpuSeconds} s vs cpuacct ${s.kernelCrossCheck.ids.kernelCpuSeconds} s (${pct(s.kernelCrossCheck.ids.relativeDifference)})`,
  );
  if (s.workConserving) {
    const w = s.workConserving;
    lines.push(`IDS idle from ${w.idleFromS} s: VM mean ${fmt(w.meanVmPct, 2)}% = ${pct(w.vmShareOfCap)} of the cap (${w.windows} windows)`);
  }
  if (s.limiterComparison) {
    const c = s.limiterComparison;
    lines.push(
      `limiter precision (IDS cap ${c.idsCapPct}%): cage limiter within cap+${s.toleratedPoints} in ${pct(c.cageLimiter.fractionWithinIdsCap)}, mean ${fmt(c.cageLimiter.meanIdsPct, 2)}%, mean |IDS-cap| ${fmt(c.cageLimiter.meanAbsDeviationPoints, 2)}; ` +
        `cpulimit within in ${pct(c.cpulimit.fractionWithinIdsCap)}, mean ${fmt(c.cpulimit.meanIdsPct, 2)}%, mean |IDS-cap| ${fmt(c.cpulimit.meanAbsDeviationPoints, 2)}`,
    );
  }
  if (s.restart) {
    const r = s.restart;
    lines.push(
      `restart (virsh destroy + start): QEMU pid ${r.oldPid ?? "-"} -> ${r.newPid ?? "-"}; new PID in the aggregates ${r.followedMs ?? "never"} ms after virsh start returned; ` +
        `old PID listed by ${r.oldPidAfterDestroy} aggregates after destroy, ${r.oldPidAfterNewSeen} after the new one; global_quota after start ${r.quotaAfterStartUs ?? "-"}, ` +
        `set again ${r.reappliedMs ?? "never"} ms after start (${r.reappliedQuotaUs ?? "-"} µs; actuator's VM cap ${fmt(r.actuatorVmCapPct)}%): ${r.holds ? "holds" : "DOES NOT hold"}${r.error ? ` (${r.error})` : ""}`,
    );
  }
  if (s.tripwire) {
    const t = s.tripwire;
    lines.push(`Tripwire: ${t.files} files (${fmt(t.bytes / 1e6, 0)} MB) in ${t.dirs} directories of ${t.root}; baseline ${fmt(t.baselineSeconds, 2)} s before the run (not in the records)`);
  }
  const exits = Object.entries(s.agent.idsExits).map(([how, n]) => `${how}: ${n}`).join(", ");
  const names = Object.entries(s.agent.idsCommands).map(([name, n]) => `${name} (${n} PIDs)`).join(", ");
  lines.push(`IDS runs: ${s.agent.idsStarts} started, finished by exit code ${exits || "none"}; charged to the cage: ${names || "none"}`);
  lines.push(`VM: ${s.vm.description}`);
  lines.push(`load: ${s.load.tool} ${s.load.requestsPerSecond ?? "-"} requests/s; host busy ${fmt(s.host.meanBusyPct)}% of ${s.host.cpus * 100}%, load average ${s.host.loadAvg1Start} -> ${s.host.loadAvg1End}; the agent itself ${fmt(s.host.agentMeanPct)}%`);
  return `${lines.join("\n")}\n`;
}

export async function runLabCpuCommand(args: string[]): Promise<number> {
  const opts = parseLabCpuArgs(args);
  return runInterruptible("cage lab cpu", async (signal, progress) => {
    const result = await runLabCpu(opts, signal, progress);
    if (opts.plotPath !== null) {
      const title = `cage lab cpu --ids ${opts.ids}${opts.vm === "libvirt" ? " --vm libvirt" : ""} --actuators ${opts.actuators ? "on" : "off"}${opts.idleAfterS === null ? "" : ` (IDS idle from ${opts.idleAfterS} s)`}`;
      writeFileSync(opts.plotPath, labCpuPlot(result, title));
    }
    process.stdout.write(opts.json ? `${JSON.stringify({ records: result.records, summary: result.summary })}\n` : textReport(result));
    return 0;
  });
}
