/**
 * `cage lab fleet --hosts N --cages M`: runs the fleet lab (lab/fleet/fleetRun.ts), prints its
 * figures and verdicts, writes --json FILE. Exit 0 when every check passed, 1 when one failed.
 */
import { writeFileSync } from "node:fs";
import { runInterruptible } from "../common/interruptible.js";
import { parseLabFleetArgs } from "./fleetOptions.js";
import { POINT_TOLERANCE, runFleet, type FleetResult } from "./fleetRun.js";

const MiB = 1024 * 1024;

export function fleetReport(r: FleetResult): string {
  const maxPipelineRss = Math.max(...r.perHost.map((h) => h.pipelineRssBytes));
  const maxMemoryRss = Math.max(...r.perHost.map((h) => h.memoryCollectorRssBytes));
  const meanHostCores = r.perHost.reduce((a, h) => a + h.agentCores, 0) / Math.max(1, r.perHost.length);
  const lines = [
    `cage lab fleet: ${r.hosts} hosts x ${r.cagesPerHost} cages = ${r.cages} cages, ${r.windowMs} ms windows, ${r.measuredSeconds.toFixed(1)} s measured, alerts' for: ${r.alertForSeconds} s`,
    "",
    "series per (host, cage) in Prometheus:",
    ...r.series.map((s) => `  ${s.metric}: ${s.rows} rows${s.problems.length === 0 ? ", each exactly once" : `; ${s.problems.join("; ")}`}`),
    `InfluxDB points (measurement cage): ${r.points.total} of ${r.points.expectedTotal} expected (${r.points.expectedPerCage} windows x ${r.cages} cages), ` +
      `${(r.points.deviation * 100).toFixed(3)}% off (bound ${(POINT_TOLERANCE * 100).toFixed(1)}%), ${r.points.offSeries} (host, cage) series off`,
    `overrun in ${r.overrun.host}/${r.overrun.cage} at +${r.overrun.injectedAfterSeconds.toFixed(1)} s: ` +
      (r.overrun.firedAfterSeconds === null ? "no CageOverCap fired" : `CageOverCap fired after ${r.overrun.firedAfterSeconds.toFixed(1)} s`),
    `alerts fired during the run: ${r.alerts.fired.length === 0 ? "none" : r.alerts.fired.map((a) => `${a.alertname}{instance=${a.instance}, cage=${a.cage}}`).join(", ")}`,
    r.influxOutage === null
      ? "influxd outage: none"
      : `influxd killed at +${r.influxOutage.afterSeconds.toFixed(1)} s for ${r.influxOutage.seconds.toFixed(1)} s: ${r.perHost.reduce((a, h) => a + h.writeFailures, 0)} failed writes retried (all hosts)`,
    `drop counters: lost messages ${r.perHost.reduce((a, h) => a + h.lostMessages, 0)}, history points dropped ${r.perHost.reduce((a, h) => a + h.pointsDropped, 0)} (all hosts)`,
    `agent CPU: ${(r.agentCoresTotal * 100).toFixed(1)}% of a core in all (shared CPU collector ${(r.cpuCollectorCores * 100).toFixed(1)}%, per host mean ${(meanHostCores * 100).toFixed(1)}%); ` +
      `largest RSS at the end: pipeline ${(maxPipelineRss / MiB).toFixed(0)} MiB, memory collector ${(maxMemoryRss / MiB).toFixed(0)} MiB`,
    "",
    r.problems.length === 0 ? "every check passed" : "checks failed:",
    ...r.problems.map((p) => `  ${p}`),
  ];
  if (r.keptDir !== null) lines.push(`logs and cage files: ${r.keptDir}`);
  return `${lines.join("\n")}\n`;
}

export async function runLabFleet(args: string[]): Promise<number> {
  const opts = parseLabFleetArgs(args);
  return runInterruptible("cage lab fleet", async (signal, progress) => {
    const result = await runFleet(opts, signal, progress);
    if (signal.aborted) return 0;
    if (opts.jsonPath !== null) writeFileSync(opts.jsonPath, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(fleetReport(result));
    return result.problems.length === 0 ? 0 : 1;
  });
}
