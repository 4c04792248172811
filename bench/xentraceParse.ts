// Benchmark: xentrace parse + accounting speed on the largest real trace, against Debian's xenalyze
// on the same file, measured in the same run.
// Usage: node dist/bench/xentraceParse.js [--json] [--file PATH] [--runs N] [--cpu-hz HZ] [--baseline-dist DIR]
//
// Reports, each the median of N rounds (rounds interleave the measurements, so load that comes and
// goes on a shared machine hits all of them alike):
//   * in-process MB/s: parse only (every record merged), and parse + accounting as the CLI runs it
//     (XentraceParser → DomainRunTimeAccounting, merging only the accounted events);
//   * `xenalyze --summary FILE` as a whole process, in MB/s, and the in-process / xenalyze ratio;
//   * `node dist/cli/cage.js xentrace summarize FILE` as a whole process, and its time / xenalyze's;
//   * `node -e 0` (Node's own start-up: the floor under any `cage` command), and its time / xenalyze's;
//     when NODE_EXTRA_CA_CERTS is set, also `node -e 0` without it: Node 20 reads that bundle at
//     start-up, before any of our code, so that part of the floor belongs to the environment;
//   * `node dist/cli/cage.js --help` as a whole process, and its time beyond `node -e 0`;
//   * with --baseline-dist, the same in-process figure for another build (e.g. a copy of an older
//     dist/ kept outside the repo), and that build's `cage xentrace summarize` as a whole process in
//     the same rounds, so before and after come from one run.

import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { DomainRunTimeAccounting, accountedEvent } from "../collectors/xentrace/domainRunTime.js";
import { XentraceParser } from "../collectors/xentrace/traceRecords.js";
import { fetchXenalyze } from "../collectors/xentrace/xenalyzeTool.js";

const run = promisify(execFile);
const repoRoot = new URL("../../", import.meta.url); // compiled to dist/bench/
const cageJs = fileURLToPath(new URL("../cli/cage.js", import.meta.url));
const defaultFile = fileURLToPath(new URL("../../../shared/fixtures/xentrace/bench-all-240s.bin", import.meta.url));
/** As the CLI reads files (summarizeCommand's 1 MiB reads). */
const CHUNK_BYTES = 1 << 20;

interface BenchResult {
  file: string;
  bytes: number;
  records: number;
  runs: number;
  /** 1-, 5- and 15-minute load averages before and after the measurements. */
  loadBefore: number[];
  loadAfter: number[];
  parseSeconds: number;
  parseMBps: number;
  parseRecordsPerSecond: number;
  parseAndAccountSeconds: number;
  parseAndAccountMBps: number;
  /** `xenalyze --summary FILE`, whole process (wall time, incl. process start). */
  xenalyzeSeconds: number | null;
  xenalyzeMBps: number | null;
  /** parse + accounting MB/s / xenalyze whole-process MB/s; >1 means we are faster. */
  inProcessVsXenalyze: number | null;
  /** `node dist/cli/cage.js xentrace summarize FILE --cpu-hz HZ`, whole process. */
  cageSummarizeSeconds: number | null;
  /** cage summarize time / xenalyze time (whole processes); >1 means cage is slower. */
  cageVsXenalyze: number | null;
  /** `node -e 0`: Node's own start-up, the floor under cageSummarizeSeconds. */
  nodeStartSeconds: number;
  /** node -e 0 time / xenalyze time: the lowest cageVsXenalyze any Node program can reach here. */
  nodeStartVsXenalyze: number | null;
  /** With NODE_EXTRA_CA_CERTS set: `node -e 0` without it, and the median per-round difference it makes. */
  nodeStartWithoutExtraCaSeconds?: number;
  extraCaCertsSeconds?: number;
  /** `node dist/cli/cage.js --help`, whole process, and its median time beyond node -e 0 in the same rounds. */
  cageHelpSeconds: number;
  cageHelpOwnSeconds: number;
  /** cage summarize time beyond node -e 0 (median of per-round differences). */
  cageSummarizeOwnSeconds: number;
  /** The --baseline-dist build's parse + accounting, and current / baseline MB/s. */
  baseline?: {
    dist: string;
    parseAndAccountSeconds: number;
    parseAndAccountMBps: number;
    speedup: number;
    /** The baseline build's `cage xentrace summarize`, whole process, and current / baseline time (median of per-round ratios). */
    cageSummarizeSeconds: number;
    cageSummarizeRatio: number;
  };
  xenalyzeError?: string;
}

interface Args {
  json: boolean;
  file: string;
  runs: number;
  cpuHz: string;
  baselineDist: string | undefined;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { json: false, file: defaultFile, runs: 9, cpuHz: "2596M", baselineDist: undefined };
  const value = (i: number, name: string): string => {
    const v = argv[i];
    if (v === undefined || v === "") throw new Error(`xentraceParse bench: ${name} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--json") args.json = true;
    else if (a === "--file") args.file = value(++i, a);
    else if (a === "--runs") args.runs = Number(value(++i, a));
    else if (a === "--cpu-hz") args.cpuHz = value(++i, a);
    else if (a === "--baseline-dist") args.baselineDist = resolve(value(++i, a));
    else throw new Error(`xentraceParse bench: unknown argument ${a}`);
  }
  if (!Number.isInteger(args.runs) || args.runs < 1) throw new Error(`xentraceParse bench: --runs must be a positive integer, got ${args.runs}`);
  return args;
}

/** The parser and accounting classes of one build (this one, or a --baseline-dist). */
interface Build {
  Parser: typeof XentraceParser;
  Accounting: typeof DomainRunTimeAccounting;
  /** The events the accounting acts on (builds from before it merged every record). */
  accountedEvent: typeof accountedEvent | undefined;
}

async function loadBuild(dist: string): Promise<Build> {
  const at = (path: string): string => pathToFileURL(resolve(dist, path)).href;
  const records = (await import(at("collectors/xentrace/traceRecords.js"))) as { XentraceParser: typeof XentraceParser };
  const accounting = (await import(at("collectors/xentrace/domainRunTime.js"))) as {
    DomainRunTimeAccounting: typeof DomainRunTimeAccounting;
    accountedEvent?: typeof accountedEvent;
  };
  return { Parser: records.XentraceParser, Accounting: accounting.DomainRunTimeAccounting, accountedEvent: accounting.accountedEvent };
}

/** Parse (and account, if asked) the whole file in CHUNK_BYTES chunks; returns seconds and records. */
function parseOnce(build: Build, data: Buffer, account: boolean): { seconds: number; records: number } {
  const t0 = performance.now();
  const accounting = account ? new build.Accounting() : undefined;
  // Builds from before the record view only have onRecord and record(TraceRecord).
  const parser =
    accounting === undefined
      ? new build.Parser({ onRecordView: () => {} })
      : new build.Parser({
          ...(typeof (accounting as Partial<DomainRunTimeAccounting>).recordView === "function"
            ? { onRecordView: (r) => accounting.recordView(r) }
            : { onRecord: (r) => accounting.record(r) }),
          onCpuEnd: (cpu, lastTsc) => accounting.endCpu(cpu, lastTsc),
          ...(build.accountedEvent !== undefined ? { delivers: build.accountedEvent } : {}),
        });
  for (let o = 0; o < data.length; o += CHUNK_BYTES) parser.write(data.subarray(o, o + CHUNK_BYTES));
  parser.end();
  accounting?.snapshot();
  return { seconds: (performance.now() - t0) / 1000, records: parser.stats.records };
}

async function timeProcess(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const t0 = performance.now();
  await run(file, args, { maxBuffer: 64 * 1024 * 1024, timeout: 120_000, env });
  return (performance.now() - t0) / 1000;
}

export async function main(argv: string[]): Promise<void> {
  const { json, file, runs, cpuHz, baselineDist } = parseArgs(argv);
  const data = await readFile(file);
  const mb = data.length / 1e6;
  const current: Build = { Parser: XentraceParser, Accounting: DomainRunTimeAccounting, accountedEvent };
  const baseline = baselineDist === undefined ? undefined : await loadBuild(baselineDist);

  let xenalyze: string | undefined;
  let xenalyzeError: string | undefined;
  try {
    xenalyze = await fetchXenalyze(repoRoot);
  } catch (e) {
    xenalyzeError = (e as Error).message.split("\n")[0];
  }
  const xenalyzeArgs = [`--cpu-hz=${cpuHz}`, "--summary", file];
  const cageArgs = [cageJs, "xentrace", "summarize", file, "--cpu-hz", cpuHz];
  const { NODE_EXTRA_CA_CERTS: extraCaCerts, ...envWithoutExtraCa } = process.env;

  const loadBefore = loadavg();
  const t = { parse: [] as number[], account: [] as number[], baseline: [] as number[], baselineCage: [] as number[], cageRatio: [] as number[], xenalyze: [] as number[], cage: [] as number[], node: [] as number[], nodeNoCa: [] as number[], extraCa: [] as number[], help: [] as number[], helpOwn: [] as number[], cageOwn: [] as number[] };
  let records = 0;
  // Round 0 warms up the JIT and the page cache and is not counted.
  for (let round = 0; round <= runs; round++) {
    // Untimed: the first parse after the child processes ran measured up to 2x slow on a loaded machine.
    parseOnce(current, data, false);
    const parse = parseOnce(current, data, false);
    const account = parseOnce(current, data, true);
    const base = baseline === undefined ? undefined : parseOnce(baseline, data, true);
    const xen = xenalyze === undefined ? undefined : await timeProcess(xenalyze, xenalyzeArgs);
    // The two builds take turns going first, so whatever the position costs (e.g. following the
    // in-process parses) falls on both alike.
    const baselineFirst = baselineDist !== undefined && round % 2 === 1;
    const baselineCageBefore = baselineFirst ? await timeProcess(process.execPath, [resolve(baselineDist, "cli/cage.js"), ...cageArgs.slice(1)]) : undefined;
    const cage = await timeProcess(process.execPath, cageArgs);
    const baselineCage =
      baselineDist === undefined || baselineFirst ? baselineCageBefore : await timeProcess(process.execPath, [resolve(baselineDist, "cli/cage.js"), ...cageArgs.slice(1)]);
    const node = await timeProcess(process.execPath, ["-e", "0"]);
    const help = await timeProcess(process.execPath, [cageJs, "--help"]);
    const nodeNoCa = extraCaCerts === undefined ? undefined : await timeProcess(process.execPath, ["-e", "0"], envWithoutExtraCa);
    records = account.records;
    if (round === 0) continue;
    t.parse.push(parse.seconds);
    t.account.push(account.seconds);
    if (base !== undefined) t.baseline.push(base.seconds);
    if (baselineCage !== undefined) {
      t.baselineCage.push(baselineCage);
      t.cageRatio.push(cage / baselineCage);
    }
    if (xen !== undefined) t.xenalyze.push(xen);
    t.cage.push(cage);
    t.node.push(node);
    if (nodeNoCa !== undefined) {
      t.nodeNoCa.push(nodeNoCa);
      t.extraCa.push(node - nodeNoCa);
    }
    t.help.push(help);
    t.helpOwn.push(help - node);
    t.cageOwn.push(cage - node);
  }
  const loadAfter = loadavg();

  const parseSeconds = median(t.parse);
  const accountSeconds = median(t.account);
  const xenalyzeSeconds = t.xenalyze.length > 0 ? median(t.xenalyze) : null;
  const cageSeconds = median(t.cage);
  const baselineSeconds = t.baseline.length > 0 ? median(t.baseline) : undefined;
  const result: BenchResult = {
    file,
    bytes: data.length,
    records,
    runs,
    loadBefore,
    loadAfter,
    parseSeconds,
    parseMBps: mb / parseSeconds,
    parseRecordsPerSecond: records / parseSeconds,
    parseAndAccountSeconds: accountSeconds,
    parseAndAccountMBps: mb / accountSeconds,
    xenalyzeSeconds,
    xenalyzeMBps: xenalyzeSeconds === null ? null : mb / xenalyzeSeconds,
    inProcessVsXenalyze: xenalyzeSeconds === null ? null : xenalyzeSeconds / accountSeconds,
    cageSummarizeSeconds: cageSeconds,
    cageVsXenalyze: xenalyzeSeconds === null ? null : cageSeconds / xenalyzeSeconds,
    nodeStartSeconds: median(t.node),
    nodeStartVsXenalyze: xenalyzeSeconds === null ? null : median(t.node) / xenalyzeSeconds,
    ...(t.nodeNoCa.length > 0 ? { nodeStartWithoutExtraCaSeconds: median(t.nodeNoCa), extraCaCertsSeconds: median(t.extraCa) } : {}),
    cageHelpSeconds: median(t.help),
    cageHelpOwnSeconds: median(t.helpOwn),
    cageSummarizeOwnSeconds: median(t.cageOwn),
    ...(baselineDist !== undefined && baselineSeconds !== undefined
      ? {
          baseline: {
            dist: baselineDist,
            parseAndAccountSeconds: baselineSeconds,
            parseAndAccountMBps: mb / baselineSeconds,
            speedup: baselineSeconds / accountSeconds,
            cageSummarizeSeconds: median(t.baselineCage),
            cageSummarizeRatio: median(t.cageRatio),
          },
        }
      : {}),
    ...(xenalyzeError !== undefined ? { xenalyzeError } : {}),
  };

  if (json) {
    process.stdout.write(JSON.stringify(result) + "\n");
    return;
  }
  const ms = (s: number): string => `${(s * 1000).toFixed(1)} ms`;
  const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(" ");
  const lines = [
    `xentrace parse benchmark: ${file} (${mb.toFixed(1)} MB, ${records} records, median of ${runs} rounds)`,
    `  load average: ${load(loadBefore)} before, ${load(loadAfter)} after`,
    `  parse only:                 ${ms(parseSeconds)}  ${result.parseMBps.toFixed(1)} MB/s  ${(result.parseRecordsPerSecond / 1e6).toFixed(2)} M records/s`,
    `  parse + accounting:         ${ms(accountSeconds)}  ${result.parseAndAccountMBps.toFixed(1)} MB/s (in process)`,
  ];
  if (result.baseline !== undefined) {
    lines.push(
      `  baseline parse + accounting: ${ms(result.baseline.parseAndAccountSeconds)}  ${result.baseline.parseAndAccountMBps.toFixed(1)} MB/s ` +
        `(${result.baseline.dist}); current is ${result.baseline.speedup.toFixed(2)}x faster`,
      `  baseline cage summarize:    ${ms(result.baseline.cageSummarizeSeconds)} (whole process); current / baseline time: ` +
        `${result.baseline.cageSummarizeRatio.toFixed(2)} (median of per-round ratios)`,
    );
  }
  if (xenalyzeSeconds === null) {
    lines.push(`  xenalyze: not run (${xenalyzeError ?? "unknown error"})`);
  } else {
    lines.push(
      `  xenalyze --summary:         ${ms(xenalyzeSeconds)}  ${(result.xenalyzeMBps as number).toFixed(1)} MB/s (whole process)`,
      `  in-process / xenalyze MB/s: ${(result.inProcessVsXenalyze as number).toFixed(2)} (>1: faster than xenalyze)`,
    );
  }
  lines.push(
    `  cage xentrace summarize:    ${ms(cageSeconds)} (whole process; node -e 0 alone: ${ms(result.nodeStartSeconds)})` +
      (result.cageVsXenalyze === null ? "" : `  time / xenalyze's: ${result.cageVsXenalyze.toFixed(2)}`),
    `  beyond node -e 0:           ${ms(result.cageSummarizeOwnSeconds)}` +
      (result.nodeStartVsXenalyze === null ? "" : `  (node -e 0 / xenalyze's time: ${result.nodeStartVsXenalyze.toFixed(2)}, the floor for any Node process)`),
    `  cage --help:                ${ms(result.cageHelpSeconds)} (whole process), ${ms(result.cageHelpOwnSeconds)} beyond node -e 0`,
  );
  if (result.nodeStartWithoutExtraCaSeconds !== undefined && result.extraCaCertsSeconds !== undefined) {
    lines.push(
      `  node -e 0 without NODE_EXTRA_CA_CERTS: ${ms(result.nodeStartWithoutExtraCaSeconds)}; ` +
        `the CA bundle adds ${ms(result.extraCaCertsSeconds)} to every Node start-up here`,
    );
  }
  process.stdout.write(lines.join("\n") + "\n");
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exitCode = 1;
  });
}
