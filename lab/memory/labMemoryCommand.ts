/**
 * `cage lab memory --ids malloc|file|tripwire [--vm qemu|libvirt|cgroup] [--duration S] [--json] [--plot FILE.svg]`:
 * Balloon Performer's Figures 4 and 5 with the real agent. Prints a human summary, or with
 * --json one object {records, summary}; exit 0 when the must-show holds, 1 when it does not.
 */
import { randomInt } from "node:crypto";
import { writeFileSync } from "node:fs";
import { renderSvgPlot } from "../common/svgPlot.js";
import { runMemoryExperiment, type TripwireFootprint } from "./memoryExperiment.js";
import { parseMemoryLabOptions } from "./memoryLabOptions.js";
import { memoryPlotSpec, type MemoryAgreement, type FloorCheck, type MoveTiming } from "./memoryRecords.js";

const MiB = 1024 * 1024;
const mib = (b: number | null): string => (b === null ? "-" : `${(b / MiB).toFixed(1)} MiB`);

/** Balloon Performer §2's footprint line, ours beside the paper's (MB, as the paper gave them). */
function footprintLine(f: TripwireFootprint | null): string[] {
  if (f === null) return [];
  const mb = (b: number): string => (b / 1e6).toFixed(1);
  return [`Tripwire footprint: ${f.files} files (${mb(f.treeBytes)} MB): peak RSS ${mb(f.peakRssBytes)} MB, peak page cache ${mb(f.peakCacheBytes)} MB; Balloon Performer: ${f.paper.files} files, ${f.paper.rssMB} MB RSS, ${f.paper.pageCacheMB} MB page cache`];
}

export async function runLabMemory(args: string[]): Promise<number> {
  const opts = parseMemoryLabOptions(args, () => randomInt(1, 2 ** 31 - 1));
  const progress = (line: string): void => void process.stderr.write(`lab memory: ${line}\n`);
  // Ctrl-C or SIGTERM: stop recording, then remove everything the run created.
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let result;
  try {
    result = await runMemoryExperiment(opts, progress, stop.signal);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  const { records, summary } = result;
  const a = summary.agreement as MemoryAgreement;
  const floor = summary.floor as FloorCheck;
  const moves = summary.moves as MoveTiming;
  if (opts.plot !== null) {
    const title = opts.ids === "malloc" ? "malloc/free program: its memory and what the VM gave up" : `${opts.ids === "tripwire" ? "Tripwire" : "AIDE"}: RSS + page cache and what the VM gave up`;
    writeFileSync(opts.plot, renderSvgPlot(memoryPlotSpec(`${title} (${opts.vm === "qemu" ? "QEMU guest" : opts.vm === "libvirt" ? "libvirt domain" : "cgroup VM"})`, records, summary.baseBytes as number, summary.floorBytes as number)));
    progress(`figure written to ${opts.plot}`);
  }
  const ok = a.passes && !floor.crossed && (opts.vm === "cgroup" || moves.withinLimit);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ records, summary })}\n`);
    return ok ? 0 : 1;
  }
  const lines = [
    `IDS: ${String(summary.idsWorkload)}`,
    `VM: ${String(summary.vmDescription)} (back end ${String(summary.backend)})`,
    `base ${mib(summary.baseBytes as number)}, floor ${mib(floor.floorBytes)}; IDS peak ${mib(floor.idsPeakBytes)} (RSS peak ${mib(summary.idsPeakRssBytes as number)}, page cache peak ${mib(summary.idsPeakCacheBytes as number)})`,
    `settled samples: ${a.settledSamples} of ${a.samples} (settle window ${a.settleS} s); moved = min(IDS, base − floor) within max(1 %, 4 MiB): ${a.matchingSamples} = ${(a.matchFraction * 100).toFixed(1)} % (need ≥ 95 %); largest settled error ${mib(a.maxSettledErrorBytes)}; floor bound ${a.floorBoundSamples} settled samples; needing a move (expected > tolerance) ${a.settledSamplesNeedingMove}; every sample from t = ${a.settleS} s on, settled or not: ${(a.matchFractionAllSamples * 100).toFixed(1)} % within`,
    `floor: ${floor.crossed ? "CROSSED" : "never crossed"} (lowest target ${mib(floor.minVmTargetBytes)}, lowest actual ${mib(floor.minVmActualBytes)}; IDS ${floor.idsExceededBaseMinusFloor ? "did" : "did not"} grow past base − floor)`,
    `moves: ${moves.moves}, reached ${moves.reached} (median ${moves.medianReachS ?? "-"} s, max ${moves.maxReachS ?? "-"} s), unreached ${moves.unreached}, pending at the end ${moves.pendingAtEnd}; over ${moves.limitS} s: ${moves.slowerThanLimit}`,
    ...footprintLine(summary.tripwireFootprint as TripwireFootprint | null),
    `load average at start ${JSON.stringify((summary.loadAverage as { start: number[] }).start)}, end ${JSON.stringify((summary.loadAverage as { end: number[] }).end)}`,
    ok ? "must-show: holds" : "must-show: DOES NOT hold",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  return ok ? 0 : 1;
}
