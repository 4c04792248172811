// The long fuzz run: the fixed-seed fuzz targets of test/fuzz/ (wire frames, cage aggregates,
// actuator messages, cage files, bpftrace JSON lines, QMP replies) with 10,000 cases each, run as the test file they live in (bench/
// sits below test/ in the import order), then one line per target: cases run, crashes (must be 0)
// and the rejection counters that rose.
// Usage: node dist/bench/fuzz.js [--json] [--cases N] [--seed S]

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseCommandLine } from "../runtime/commandLine.js";
import { benchCommand, runBenchMain } from "./benchMain.js";

const testFile = fileURLToPath(new URL("../test/fuzz/fuzz.test.js", import.meta.url)); // compiled to dist/bench/

interface FuzzReport {
  target: string;
  seed: number;
  cases: number;
  accepted: number;
  rejected: number;
  crashes: number;
  crashExamples: string[];
  rejections: Record<string, number>;
  crashKinds: Record<string, number>;
  lostMessages?: number;
  protocolErrors?: number;
  balloonEvents?: number;
  balloonEventsWithInvalidActual?: number;
  sequenceAnomalies?: number;
}

const FUZZ_COMMAND = benchCommand("fuzz", "The fixed-seed fuzz targets with many cases each: crashes and the rejection counters that rose.", {
  cases: { type: "integer", value: "N", min: 1, max: 100_000_000, help: "cases per target (default 10000)" },
  seed: { type: "integer", value: "S", min: 0, max: 2 ** 32 - 1, help: "the PRNG seed (default 20261204)" },
});

function parseArgs(argv: string[]): { json: boolean; cases: number; seed: number } {
  const { values } = parseCommandLine(FUZZ_COMMAND, argv);
  return { json: values.json, cases: values.cases ?? 10_000, seed: values.seed ?? 20261204 };
}

/** Runs the fuzz test file with `cases` per target; resolves with its reports and exit code. */
function runFuzzTests(cases: number, seed: number): Promise<{ reports: FuzzReport[]; code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--test", "--test-reporter=tap", testFile], {
      env: { ...process.env, FUZZ_CASES: String(cases), FUZZ_SEED: String(seed) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (output += d.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code) => {
      const reports: FuzzReport[] = [];
      for (const line of output.split("\n")) {
        const at = line.indexOf("# FUZZ ");
        if (at >= 0) reports.push(JSON.parse(Buffer.from(line.slice(at + "# FUZZ ".length).trim(), "base64").toString("utf8")) as FuzzReport);
      }
      resolve({ reports, code, output });
    });
  });
}

export async function main(argv: string[]): Promise<void> {
  const { json, cases, seed } = parseArgs(argv);
  const started = process.hrtime.bigint();
  const { reports, code, output } = await runFuzzTests(cases, seed);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (reports.length === 0) throw new Error(`the fuzz tests printed no reports (exit ${code}):\n${output.slice(-2000)}`);
  if (json) {
    process.stdout.write(`${JSON.stringify({ casesPerTarget: cases, seed, seconds, testExitCode: code, reports })}\n`);
  } else {
    process.stdout.write(`fuzz: ${cases} cases per target, seed ${seed}, ${seconds.toFixed(1)} s\n`);
    for (const r of reports) {
      const rose = Object.entries(r.rejections).sort((a, b) => b[1] - a[1]);
      const top = rose.slice(0, 8).map(([k, v]) => `${k}: ${v}`).join("; ");
      process.stdout.write(`  ${r.target}: ${r.cases} cases, ${r.crashes} crashes, ${r.accepted} accepted, ${r.rejected} rejected\n`);
      process.stdout.write(`    rejection counters that rose (${rose.length}): ${top}${rose.length > 8 ? "; …" : ""}\n`);
      if (r.lostMessages !== undefined) process.stdout.write(`    sequence: ${r.lostMessages} counted lost, ${r.sequenceAnomalies ?? 0} anomalies\n`);
      if (r.protocolErrors !== undefined) process.stdout.write(`    QMP: ${r.protocolErrors} lines skipped as not QMP, ${r.balloonEvents ?? 0} BALLOON_CHANGE events taken, ${r.balloonEventsWithInvalidActual ?? 0} of them with an actual that is no byte count\n`);
      const kinds = Object.entries(r.crashKinds ?? {}).sort((a, b) => b[1] - a[1]);
      if (kinds.length > 0) process.stdout.write(`    crashes by kind: ${kinds.map(([k, v]) => `${k}: ${v}`).join("; ")}\n`);
      for (const c of r.crashExamples) process.stdout.write(`    CRASH ${c}\n`);
    }
  }
  const crashes = reports.reduce((n, r) => n + r.crashes, 0);
  if (code !== 0 || crashes > 0) throw new Error(`fuzz: ${crashes} crashes, test exit code ${code}`);
}

runBenchMain(import.meta.url, main);
