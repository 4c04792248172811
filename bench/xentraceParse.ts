// Benchmark: xentrace parse speed on the largest fixture, beside Debian's xenalyze on the same file.
// Usage: node dist/bench/xentraceParse.js [--json] [--file PATH] [--runs N]

import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { DomainRunTimeAccounting } from "../collectors/xentrace/domainRunTime.js";
import { XentraceParser } from "../collectors/xentrace/traceRecords.js";
import { fetchXenalyze } from "../collectors/xentrace/xenalyzeTool.js";

const run = promisify(execFile);
const repoRoot = new URL("../../", import.meta.url); // compiled to dist/bench/
const defaultFile = fileURLToPath(new URL("../../../shared/fixtures/xentrace/bench-all-240s.bin", import.meta.url));

interface BenchResult {
  file: string;
  bytes: number;
  records: number;
  runs: number;
  parseSeconds: number;
  parseMBps: number;
  parseRecordsPerSecond: number;
  parseAndAccountSeconds: number;
  parseAndAccountMBps: number;
  xenalyzeSeconds: number | null;
  /** parse-and-account time / xenalyze --summary time (both median wall times); >1 means we are slower. */
  ratioVsXenalyze: number | null;
  xenalyzeError?: string;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function parseArgs(argv: string[]): { json: boolean; file: string; runs: number } {
  let json = false;
  let file = defaultFile;
  let runs = 5;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--json") json = true;
    else if (a === "--file") file = argv[++i] ?? "";
    else if (a === "--runs") runs = Number(argv[++i]);
    else throw new Error(`xentraceParse bench: unknown argument ${a}`);
  }
  if (file === "") throw new Error("xentraceParse bench: --file needs a path");
  if (!Number.isInteger(runs) || runs < 1) throw new Error("xentraceParse bench: --runs must be a positive integer");
  return { json, file, runs };
}

export async function main(argv: string[]): Promise<void> {
  const { json, file, runs } = parseArgs(argv);
  const data = await readFile(file);
  const mb = data.length / 1e6;

  let records = 0;
  const parseTimes: number[] = [];
  const accountTimes: number[] = [];
  for (let i = 0; i < runs + 1; i++) {
    // 1 MiB chunks, as the CLI reads files; the first run is a JIT warm-up.
    let t0 = performance.now();
    const parser = new XentraceParser({ onRecord: () => {} });
    for (let o = 0; o < data.length; o += 1 << 20) parser.write(data.subarray(o, o + (1 << 20)));
    parser.end();
    const parseMs = performance.now() - t0;
    records = parser.stats.records;

    t0 = performance.now();
    const accounting = new DomainRunTimeAccounting();
    const parser2 = new XentraceParser({ onRecord: (r) => accounting.record(r), onCpuEnd: (c, t) => accounting.endCpu(c, t) });
    for (let o = 0; o < data.length; o += 1 << 20) parser2.write(data.subarray(o, o + (1 << 20)));
    parser2.end();
    accounting.snapshot();
    const accountMs = performance.now() - t0;
    if (i > 0) {
      parseTimes.push(parseMs / 1000);
      accountTimes.push(accountMs / 1000);
    }
  }

  let xenalyzeSeconds: number | null = null;
  let xenalyzeError: string | undefined;
  try {
    const xenalyze = await fetchXenalyze(repoRoot);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await run(xenalyze, ["--cpu-hz=2596M", "--summary", file], { maxBuffer: 64 * 1024 * 1024 });
      times.push((performance.now() - t0) / 1000);
    }
    xenalyzeSeconds = median(times);
  } catch (e) {
    xenalyzeError = (e as Error).message.split("\n")[0];
  }

  const parseSeconds = median(parseTimes);
  const accountSeconds = median(accountTimes);
  const result: BenchResult = {
    file,
    bytes: data.length,
    records,
    runs,
    parseSeconds,
    parseMBps: mb / parseSeconds,
    parseRecordsPerSecond: records / parseSeconds,
    parseAndAccountSeconds: accountSeconds,
    parseAndAccountMBps: mb / accountSeconds,
    xenalyzeSeconds,
    ratioVsXenalyze: xenalyzeSeconds === null ? null : accountSeconds / xenalyzeSeconds,
    ...(xenalyzeError !== undefined ? { xenalyzeError } : {}),
  };

  if (json) {
    process.stdout.write(JSON.stringify(result) + "\n");
    return;
  }
  const lines = [
    `xentrace parse benchmark: ${file} (${mb.toFixed(1)} MB, ${records} records, median of ${runs} runs)`,
    `  parse only:          ${(parseSeconds * 1000).toFixed(0)} ms  ${result.parseMBps.toFixed(1)} MB/s  ${(result.parseRecordsPerSecond / 1e6).toFixed(2)} M records/s`,
    `  parse + accounting:  ${(accountSeconds * 1000).toFixed(0)} ms  ${result.parseAndAccountMBps.toFixed(1)} MB/s`,
    xenalyzeSeconds === null
      ? `  xenalyze: not run (${xenalyzeError ?? "unknown error"})`
      : `  xenalyze --summary:  ${(xenalyzeSeconds * 1000).toFixed(0)} ms (wall, incl. process start)  ratio ours/xenalyze ${result.ratioVsXenalyze?.toFixed(2)}`,
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exitCode = 1;
  });
}
