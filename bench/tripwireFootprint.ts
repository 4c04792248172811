/**
 * Balloon Performer's footprint measurement (its §2, Figure 5) with the IDS it measured: Debian's
 * Open Source Tripwire checking about 27,752 files, from a cold page cache, measured by
 * `cage measure` (peak RSS of the process tree; page cache attributed to it by the eBPF
 * collector). The paper reported 121 MB RSS
 * and 407 MB of page cache; the files differ (ours are this machine's, picked from --tree), so
 * the figures are printed beside the paper's, with the file count and bytes they cover.
 *
 *   node dist/bench/tripwireFootprint.js [--json] [--tree /usr] [--files 27752]
 * Needs root and tripwire (scripts/ensure-test-tools.sh). Drops the machine's page cache.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { dropAllCaches } from "../collectors/pagecache/cacheWorkloads.js";
import { BALLOON_PERFORMER_TRIPWIRE, parseObjectsScanned, pickTrees, printTripwireReport, setUpTripwire, tripwireCheckArgv } from "../lab/common/tripwire.js";
import { parseCommandLine } from "../runtime/commandLine.js";
import type { MeasureResult } from "../cli/measureCommand.js";
import { benchCommand, runBenchMain } from "./benchMain.js";

const MB = 1e6;
const CAGE_JS = fileURLToPath(new URL("../cli/cage.js", import.meta.url));
const PAPER = BALLOON_PERFORMER_TRIPWIRE;

const TRIPWIRE_FOOTPRINT_COMMAND = benchCommand("tripwireFootprint", "Tripwire's peak RSS and page cache over about 27,752 files, beside Balloon Performer's figures.", {
  tree: { type: "string", value: "DIR", help: "where the checked directories are picked from (default /usr)" },
  files: { type: "integer", value: "N", min: 100, max: 10_000_000, help: "regular files to cover, at least (default 27752, the paper's)" },
});

export async function main(argv: string[]): Promise<void> {
  const { values } = parseCommandLine(TRIPWIRE_FOOTPRINT_COMMAND, argv);
  const tree = values.tree ?? "/usr";
  const target = values.files ?? PAPER.files;
  if (!tree.startsWith("/")) throw new Error(`tripwireFootprint: --tree must be an absolute path, got ${JSON.stringify(tree)}`);
  const dir = mkdtempSync("/var/tmp/offloadcage-bench-tripwire-");
  try {
    const pick = pickTrees(tree, target);
    if (pick.files < target) process.stderr.write(`tripwireFootprint: ${tree} holds only ${pick.files} files; measuring those\n`);
    const inst = setUpTripwire(dir, pick.dirs);
    dropAllCaches();
    const report = join(dir, "check.twr");
    // cage measure exits with the command's code; Tripwire's is a bit mask of what it found.
    const measured = await promisify(execFile)(process.execPath, [CAGE_JS, "measure", "--json", "--", ...tripwireCheckArgv(inst, report)], { encoding: "utf8", timeout: 1_800_000, maxBuffer: 16 * MB }).catch(
      (err: { stdout?: string; stderr?: string; code?: unknown }) => {
        if (typeof err.stdout === "string" && err.stdout.trim() !== "") return { stdout: err.stdout, stderr: err.stderr ?? "" };
        throw new Error(`tripwireFootprint: cage measure failed (exit ${String(err.code)}): ${(err.stderr ?? "").slice(-2000)}`, { cause: err });
      },
    );
    const m = JSON.parse(measured.stdout) as MeasureResult;
    const objects = parseObjectsScanned(printTripwireReport(inst, report));
    const result = {
      tree,
      dirs: pick.dirs.length,
      files: pick.files,
      fileMB: pick.bytes / MB,
      objectsScanned: objects,
      tripwireExitCode: m.exitCode,
      wallSeconds: m.wallSeconds,
      cpuSeconds: m.cpuSeconds,
      peakRssMB: m.peakRssBytes / MB,
      pageCacheInsertedMB: (m.pageCacheInsertedBytes ?? 0) / MB,
      pageCachePeakResidentMB: (m.pageCachePeakResidentBytes ?? 0) / MB,
      paper: PAPER,
    };
    if (values.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    const f = (v: number): string => v.toFixed(1);
    process.stdout.write(`Tripwire --check over ${result.files} files (${f(result.fileMB)} MB) in ${result.dirs} directories of ${tree}; ${String(objects)} objects scanned; exit ${String(m.exitCode)}\n`);
    process.stdout.write(`  peak RSS        ${f(result.peakRssMB).padStart(8)} MB   (paper: ${PAPER.rssMB} MB over ${PAPER.files} files)\n`);
    process.stdout.write(`  page cache      ${f(result.pageCachePeakResidentMB).padStart(8)} MB peak resident, ${f(result.pageCacheInsertedMB)} MB inserted   (paper: ${PAPER.pageCacheMB} MB)\n`);
    process.stdout.write(`  CPU ${f(result.cpuSeconds)} s over ${f(result.wallSeconds)} s wall\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

runBenchMain(import.meta.url, main);
