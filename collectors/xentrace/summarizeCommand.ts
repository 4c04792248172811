// `cage xentrace summarize FILE --cpu-hz HZ [--json]`: per-domain and per-vCPU run time of a trace file.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import type { RunTimeSnapshot, RunTimeSummary } from "./domainRunTime.js";
import type { TraceParseStats } from "./traceRecords.js";
import { commandLineExitCode, commandUsage, parseCommandLine } from "../../runtime/commandLine.js";
import { UsageError } from "../../runtime/usageError.js";


/**
 * Parse a TSC rate: a plain number of Hz or a number with a K, M or G suffix (as xenalyze's
 * --cpu-hz), optionally followed by "Hz": 2596149000, 2596M, 2.596G, 2596.149MHz.
 */
export function parseCpuHz(text: string): number {
  const m = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmMgG])?(?:[hH][zZ])?\s*$/.exec(text);
  if (m === null) throw new Error(`--cpu-hz: "${text}" is not a rate; use Hz or a K/M/G suffix, e.g. 2596149000 or 2596M`);
  const scale = { k: 1e3, m: 1e6, g: 1e9 }[(m[2] ?? "").toLowerCase()] ?? 1;
  const hz = Math.round(Number(m[1]) * scale);
  if (!Number.isFinite(hz) || hz < 1e6 || hz > 1e11) {
    throw new Error(`--cpu-hz: ${text} is ${hz} Hz, outside 1 MHz..100 GHz (did you mean ${text}M?)`);
  }
  return hz;
}

/** TSC rate in Hz from `xl info` output (its `cpu_mhz : 2596.149` line, which is cpu_khz/1000). */
export function cpuHzFromXlInfo(text: string): number {
  const m = /^cpu_mhz\s*:\s*(\d+(?:\.\d+)?)\s*$/m.exec(text);
  if (m === null) throw new Error("xl info output has no 'cpu_mhz : N' line");
  const hz = Math.round(Number(m[1]) * 1e6);
  if (!(hz > 0)) throw new Error(`xl info cpu_mhz ${m[1]} is not a positive rate`);
  return hz;
}

export interface SummarizeArgs {
  file: string;
  cpuHz?: number;
  xlInfoFile?: string;
  json: boolean;
}

export const SUMMARIZE_COMMAND = {
  program: "cage xentrace summarize",
  summary: "Per-domain and per-vCPU run time of a xentrace trace file.",
  positionals: [{ name: "FILE", required: true }],
  flags: {
    "cpu-hz": { type: "string", value: "HZ", help: "TSC rate: Hz or a K/M/G suffix, e.g. 2596M (the trace does not carry it)" },
    "xl-info": { type: "string", value: "FILE", help: "read the TSC rate from saved `xl info` output instead" },
    json: { type: "boolean", help: "print the summary as one JSON object" },
  },
  notes: ["One of --cpu-hz and --xl-info is required."],
} as const;

export const SUMMARIZE_USAGE = commandUsage(SUMMARIZE_COMMAND);

/** Validate the command line; throws runtime/usageError.ts's UsageError naming the bad argument, or HelpRequested. */
export function parseSummarizeArgs(argv: readonly string[]): SummarizeArgs {
  const args = argv[0] === "summarize" ? argv.slice(1) : argv;
  const { values, positionals } = parseCommandLine(SUMMARIZE_COMMAND, args);
  const fail = (message: string): never => {
    throw new UsageError(`${SUMMARIZE_COMMAND.program}: ${message}`, SUMMARIZE_USAGE);
  };
  const file = positionals[0] as string;
  let cpuHz: number | undefined;
  const xlInfoFile = values["xl-info"];
  if (values["cpu-hz"] !== undefined) {
    try {
      cpuHz = parseCpuHz(values["cpu-hz"]);
    } catch (e) {
      fail((e as Error).message);
    }
  }
  if (cpuHz === undefined && xlInfoFile === undefined) fail("--cpu-hz HZ is required (the trace does not carry the TSC rate); or pass --xl-info FILE");
  if (cpuHz !== undefined && xlInfoFile !== undefined) fail("give either --cpu-hz or --xl-info, not both");
  return { file, ...(cpuHz !== undefined ? { cpuHz } : {}), ...(xlInfoFile !== undefined ? { xlInfoFile } : {}), json: values.json };
}

export interface TraceSummary {
  file: string;
  cpuHz: number;
  source: RunTimeSnapshot["source"];
  traceSeconds: number;
  domains: { domain: number; runSeconds: number; vcpus: { vcpu: number; runSeconds: number }[] }[];
  cr3?: { domain: number; cr3: string; runSeconds: number }[];
  records: number;
  lost: number;
  lostEvents: number;
  unknown: number;
  corrupt: number;
  truncatedBytes: number;
  skippedBytes: number;
  lateRecords: number;
  anomalies: number;
  problems: { offset: number; kind: string; detail: string }[];
}

/**
 * Bytes per read(2), into one reused buffer (the parser copies what it carries over): a buffer the
 * size of the trace would cost a page fault per 4 KiB and garbage collections of its own.
 */
const READ_BYTES = 1 << 20;

/** Read a trace file (memory bounded by READ_BYTES) and account it. */
export async function summarizeTraceFile(file: string, cpuHz: number): Promise<TraceSummary> {
  // Loaded here, not at the top: --help and a bad command line answer without compiling them.
  const [{ XentraceParser }, { DomainRunTimeAccounting, accountedEvent, summarizeRunTime }] = await Promise.all([import("./traceRecords.js"), import("./domainRunTime.js")]);
  const accounting = new DomainRunTimeAccounting();
  const parser = new XentraceParser({
    onRecordView: (r) => accounting.recordView(r),
    onCpuEnd: (cpu, lastTsc) => accounting.endCpu(cpu, lastTsc),
    // Only the records the accounting acts on are merged: most of a trace is other events.
    delivers: accountedEvent,
  });
  // Synchronous reads: the command has nothing else to do meanwhile, and a stream allocates a
  // chunk per read and takes event-loop turns.
  const fd = openSync(file, "r");
  try {
    const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(READ_BYTES, fstatSync(fd).size)));
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      parser.write(buffer.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  parser.end();
  const stats = parser.stats;
  // At the trace's last time: the accounting saw only the records it acts on, not the last ones.
  const snapshot = accounting.snapshot(stats.lastTsc);
  return buildSummary(file, cpuHz, stats, snapshot, summarizeRunTime(snapshot, cpuHz));
}

/** The summary of a parsed trace: its parse stats, the accounting's snapshot and that snapshot in seconds. */
export function buildSummary(file: string, cpuHz: number, stats: TraceParseStats, snapshot: RunTimeSnapshot, seconds: RunTimeSummary): TraceSummary {
  const span = stats.lastTsc - stats.firstTsc;
  return {
    file,
    cpuHz,
    source: snapshot.source,
    traceSeconds: Number.isFinite(span) ? span / cpuHz : 0,
    domains: seconds.domains,
    ...(seconds.cr3.length > 0 ? { cr3: seconds.cr3 } : {}),
    records: stats.records,
    lost: stats.lostRecords,
    lostEvents: stats.lostRecordEvents,
    unknown: stats.unknown,
    corrupt: stats.corrupt,
    truncatedBytes: stats.truncatedBytes,
    skippedBytes: stats.skippedBytes,
    lateRecords: stats.lateRecords,
    anomalies: snapshot.anomalies,
    problems: stats.problems.slice(0, 20),
  };
}

function domainName(domain: number): string {
  return domain === 0x7fff ? "idle" : String(domain);
}

export function formatSummaryTable(s: TraceSummary): string {
  const lines: string[] = [];
  lines.push(`${s.file}: ${s.traceSeconds.toFixed(3)} s of trace at ${(s.cpuHz / 1e6).toFixed(3)} MHz, ${s.records} records`);
  lines.push("");
  lines.push(`${"domain".padEnd(8)}${"vcpu".padEnd(6)}${"run s".padStart(12)}${"% of trace".padStart(12)}`);
  const pct = (sec: number): string => (s.traceSeconds > 0 ? ((100 * sec) / s.traceSeconds).toFixed(1) : "-").padStart(12);
  for (const d of s.domains) {
    lines.push(`${domainName(d.domain).padEnd(8)}${"all".padEnd(6)}${d.runSeconds.toFixed(4).padStart(12)}${pct(d.runSeconds)}`);
    for (const v of d.vcpus) {
      lines.push(`${"".padEnd(8)}${String(v.vcpu).padEnd(6)}${v.runSeconds.toFixed(4).padStart(12)}${pct(v.runSeconds)}`);
    }
  }
  if (s.cr3 !== undefined) {
    lines.push("");
    lines.push(`${"domain".padEnd(8)}${"cr3".padEnd(20)}${"run s".padStart(12)}`);
    for (const c of s.cr3) lines.push(`${domainName(c.domain).padEnd(8)}${c.cr3.padEnd(20)}${c.runSeconds.toFixed(4).padStart(12)}`);
  }
  lines.push("");
  lines.push(
    `lost records: ${s.lost} (in ${s.lostEvents} lost-records records), unknown events: ${s.unknown}, ` +
      `corrupt: ${s.corrupt}, truncated bytes: ${s.truncatedBytes}, skipped bytes: ${s.skippedBytes}`,
  );
  if (s.source === "switch") lines.push("note: no runstate records in the trace; times come from scheduler-switch records");
  if (s.source === "none") lines.push("note: no scheduling records in the trace (was it captured with -e sched or all?)");
  for (const p of s.problems.slice(0, 5)) lines.push(`problem at byte ${p.offset}: ${p.kind}: ${p.detail}`);
  return lines.join("\n") + "\n";
}

/** Entry point for `cage xentrace summarize`. Returns the exit code (2 = bad arguments, 1 = cannot read). */
export async function runXentraceSummarize(
  args: string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  let parsed: SummarizeArgs;
  try {
    parsed = parseSummarizeArgs(args);
  } catch (e) {
    return commandLineExitCode(e, out, err);
  }
  let cpuHz = parsed.cpuHz;
  try {
    if (parsed.xlInfoFile !== undefined) cpuHz = cpuHzFromXlInfo(await readFile(parsed.xlInfoFile, "utf8"));
    const info = await stat(parsed.file);
    if (!info.isFile()) throw new Error(`${parsed.file} is not a regular file`);
  } catch (e) {
    err.write(`cage xentrace summarize: ${(e as Error).message}\n`);
    return 1;
  }
  let summary: TraceSummary;
  try {
    summary = await summarizeTraceFile(parsed.file, cpuHz as number);
  } catch (e) {
    err.write(`cage xentrace summarize: cannot read ${parsed.file}: ${(e as Error).message}\n`);
    return 1;
  }
  out.write(parsed.json ? JSON.stringify(summary) + "\n" : formatSummaryTable(summary));
  return 0;
}
