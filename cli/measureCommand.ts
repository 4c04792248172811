/**
 * `cage measure`: a process tree's true footprint. CPU is the eBPF collector's on-CPU time
 * (sched_switch), memory the peak of the tree's summed VmRSS (sampled) or any member's VmHWM.
 *
 *   cage measure [--json] -- COMMAND ARGS...          runs it, measures until it exits
 *   cage measure [--json] --pid P[,P...] --duration S  measures running processes
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { startCpuTimeSource } from "../collectors/cpu/cpuTimeSource.js";
import { parseProcStatus } from "../host/proc/procStatus.js";
import { startPageCacheMeasurement, type PageCacheFigures, type PageCacheMeasurement } from "../collectors/pagecache/pageCacheMeasurement.js";
import { verifyAgainstMemoryCgroup } from "../collectors/pagecache/memoryCgroupCrossCheck.js";
import type { CpuBatch } from "../protocol/rawBatches.js";
import { commandUsage, parseCommandLine } from "../runtime/commandLine.js";
import { UsageError } from "../runtime/usageError.js";
import { DescendantSet, procReader } from "../host/proc/processTree.js";

const CLK_TCK = 100; // USER_HZ on Linux x86, fixed by the kernel ABI

export interface MeasureResult extends Partial<PageCacheFigures> {
  command: string[] | null;
  pids: number[];
  cpuSeconds: number;
  peakRssBytes: number;
  wallSeconds: number;
  exitCode: number | null;
  /** Processes counted (the root(s) and every descendant seen). */
  processes: number;
  /** Only for a command: user+sys of the reaped tree from the kernel's rusage, as a cross-check. */
  rusageCpuSeconds: number | null;
  windows: number;
}


/** Children's user+sys ticks of this process (what reaped descendants used), in seconds. */
function reapedChildrenCpuSeconds(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // after ')': [0]=state ... cutime is field 16, cstime 17 (1-based) => index 13, 14 here
  return (Number(f[13]) + Number(f[14])) / CLK_TCK;
}

function samplePeakRss(tree: DescendantSet, peak: { sum: number; hwm: number }): void {
  let sum = 0;
  for (const pid of tree.pids) {
    try {
      const m = parseProcStatus(pid, readFileSync(`/proc/${pid}/status`, "utf8"));
      sum += m.vmRssBytes;
      peak.hwm = Math.max(peak.hwm, m.vmHwmBytes);
    } catch {
      // exited since discovery
    }
  }
  peak.sum = Math.max(peak.sum, sum);
}

export async function measure(opts: {
  command?: string[];
  pids?: number[];
  durationS?: number;
  intervalMs: number;
  childStdout: "inherit" | "stderr";
  /** Attribute page cache too (a private cgroup v2 tracking group + the filemap collector). */
  pageCache: boolean;
}): Promise<MeasureResult> {
  let tree: DescendantSet | null = null;
  let cpuNs = 0;
  let windows = 0;
  const early: CpuBatch[] = [];
  const onBatch = (b: CpuBatch): void => {
    windows++;
    if (!tree) {
      early.push(b);
      return;
    }
    for (const p of b.processes) if (tree.classify(p.pid)) cpuNs += p.cpuNs;
  };
  const report = (what: string) => (e: { level: string; message: string }): void => {
    process.stderr.write(`cage measure: ${what} ${e.level}: ${e.message}\n`);
  };
  const source = await startCpuTimeSource({ intervalMs: opts.intervalMs, onBatch, onEvent: report("cpu collector") });
  let pageCache: PageCacheMeasurement | null = null;
  try {
    if (opts.pageCache) pageCache = await startPageCacheMeasurement({ onEvent: report("page cache collector") });
  } catch (err) {
    await source.stop();
    throw err;
  }
  const peak = { sum: 0, hwm: 0 };
  let exitCode: number | null = null;
  let rusage: number | null = null;
  const started = performance.now();
  let sampler: NodeJS.Timeout | undefined;
  try {
    if (opts.command) {
      // The wrapper joins the tracking group and execs the command: same PID, all descendants inside.
      const argv = pageCache ? pageCache.wrapCommand(opts.command) : opts.command;
      const [cmd, ...cmdArgs] = argv as [string, ...string[]];
      const reapedBefore = reapedChildrenCpuSeconds();
      const child = spawn(cmd, cmdArgs, { stdio: ["inherit", opts.childStdout === "inherit" ? "inherit" : process.stderr, "inherit"] });
      const exited = new Promise<number>((resolve, reject) => {
        child.once("error", reject);
        child.once("exit", (code, signal) => resolve(code ?? 128 + (signal ? osSignal(signal) : 0)));
      });
      if (child.pid === undefined) throw new UsageError(`cannot run ${cmd}: ${await exited.catch((e: Error) => e.message)}`);
      tree = new DescendantSet([child.pid], procReader);
      sampler = setInterval(() => {
        tree?.discover();
        if (tree) samplePeakRss(tree, peak);
      }, 100);
      exitCode = await exited;
      rusage = reapedChildrenCpuSeconds() - reapedBefore;
    } else {
      const alive = (opts.pids ?? []).filter((pid) => procReader.parentOf(pid) !== null);
      for (const pid of opts.pids ?? []) if (!alive.includes(pid)) process.stderr.write(`cage measure: pid ${pid}: no such process (skipped)\n`);
      if (!alive.length) throw new UsageError(`none of the given PIDs exists: ${(opts.pids ?? []).join(",")}`);
      // Pages these processes cached before this moment are not known: page cache starts at 0.
      for (const pid of alive) pageCache?.addPid(pid);
      tree = new DescendantSet(alive, procReader);
      sampler = setInterval(() => {
        tree?.discover();
        if (tree) samplePeakRss(tree, peak);
      }, 100);
      await new Promise((r) => setTimeout(r, (opts.durationS ?? 1) * 1000));
    }
    const wallSeconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    // The batch covering the exit arrives after it: wait for the windows in flight.
    await new Promise((r) => setTimeout(r, opts.intervalMs * 2 + 100));
    for (const b of early.splice(0)) for (const p of b.processes) if (tree.classify(p.pid)) cpuNs += p.cpuNs;
    const pageCacheFigures = pageCache ? await pageCache.stop() : {};
    pageCache = null;
    return {
      ...pageCacheFigures,
      command: opts.command ?? null,
      pids: tree.pids.slice(0, opts.command ? 1 : undefined),
      cpuSeconds: cpuNs / 1e9,
      peakRssBytes: Math.max(peak.sum, peak.hwm),
      wallSeconds,
      exitCode,
      processes: tree.pids.length,
      rusageCpuSeconds: rusage,
      windows,
    };
  } finally {
    clearInterval(sampler);
    await Promise.all([source.stop(), pageCache?.stop()]);
  }
}

function osSignal(signal: NodeJS.Signals): number {
  const n = (({ SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 }) as Record<string, number>)[signal];
  return n ?? 0;
}

export const MEASURE_COMMAND = {
  program: "cage measure",
  summary: "True CPU (eBPF on-CPU time) and peak memory of a command and its descendants, or of running processes.",
  flags: {
    json: { type: "boolean", help: "print the result as one JSON object on stdout" },
    pid: { type: "string", value: "PID[,PID...]", help: "measure these running processes (with --duration)" },
    duration: { type: "number", value: "SECONDS", min: 0.1, help: "how long to measure --pid" },
    "interval-ms": { type: "integer", value: "MS", min: 10, max: 10_000, help: "the CPU collector's window (default 100)" },
    verify: { type: "boolean", help: "compare the page cache attribution with the memory cgroup's charge" },
    "no-page-cache": { type: "boolean", help: "do not attribute page cache" },
  },
  rest: "COMMAND [ARGS...]",
  notes: ["Give -- COMMAND ARGS..., or --pid with --duration."],
} as const;

export const MEASURE_USAGE = commandUsage(MEASURE_COMMAND);

export type MeasureArgs =
  | { kind: "command"; command: string[]; json: boolean; intervalMs: number; pageCache: boolean }
  | { kind: "pids"; pids: number[]; durationS: number; json: boolean; intervalMs: number; pageCache: boolean }
  | { kind: "verify"; command: string[]; json: boolean };

/** Throws runtime/usageError.ts's UsageError, or HelpRequested for --help. */
export function parseMeasureArgs(args: readonly string[]): MeasureArgs {
  const { values, rest } = parseCommandLine(MEASURE_COMMAND, args);
  const fail = (message: string): never => {
    throw new UsageError(`${MEASURE_COMMAND.program}: ${message}`, MEASURE_USAGE);
  };
  const json = values.json;
  const intervalMs = values["interval-ms"] ?? 100;
  const pageCache = !values["no-page-cache"];
  if (values.verify) {
    if (!rest?.length) return fail("--verify needs -- COMMAND ARGS...");
    return { kind: "verify", command: rest, json };
  }
  if (rest?.length) {
    if (values.pid !== undefined) fail("give either -- COMMAND or --pid, not both");
    return { kind: "command", command: rest, json, intervalMs, pageCache };
  }
  const pidText = values.pid;
  const durationS = values.duration;
  if (pidText === undefined || durationS === undefined) return fail("give -- COMMAND ARGS..., or --pid PID[,PID...] with --duration SECONDS");
  const pids = pidText.split(",").map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n <= 0) fail(`--pid: ${JSON.stringify(s)} is not a PID`);
    return n;
  });
  return { kind: "pids", pids, durationS, json, intervalMs, pageCache };
}

export async function runMeasure(args: string[]): Promise<number> {
  const parsed = parseMeasureArgs(args);
  if (parsed.kind === "verify") return runVerify(parsed.command, parsed.json);
  const json = parsed.json;
  const result: MeasureResult =
    parsed.kind === "command"
      ? await measure({ command: parsed.command, intervalMs: parsed.intervalMs, childStdout: json ? "stderr" : "inherit", pageCache: parsed.pageCache })
      : await measure({ pids: parsed.pids, durationS: parsed.durationS, intervalMs: parsed.intervalMs, childStdout: "inherit", pageCache: parsed.pageCache });
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else {
    const lines = [
      `cpu (eBPF, on-CPU)  ${result.cpuSeconds.toFixed(3)} s`,
      `peak RSS            ${(result.peakRssBytes / 1048576).toFixed(1)} MiB`,
      `wall                ${result.wallSeconds.toFixed(3)} s`,
      `processes           ${result.processes}`,
    ];
    if (result.pageCacheInsertedBytes !== undefined) {
      lines.push(`page cache inserted ${((result.pageCacheInsertedBytes ?? 0) / 1048576).toFixed(1)} MiB`);
      lines.push(`page cache resident ${((result.pageCacheResidentBytes ?? 0) / 1048576).toFixed(1)} MiB (still cached at the end)`);
    }
    if (result.rusageCpuSeconds !== null) lines.push(`rusage user+sys     ${result.rusageCpuSeconds.toFixed(2)} s (kernel cross-check)`);
    if (result.exitCode !== null) lines.push(`exit code           ${result.exitCode}`);
    process.stderr.write(`${lines.join("\n")}\n`);
  }
  return result.exitCode ?? 0;
}

/**
 * `cage measure --verify -- COMMAND`: runs the command inside a fresh tracking group and memory
 * cgroup and compares our attributed resident page cache with what the kernel charged the
 * cgroup (`cache`/`file` in memory.stat). Exit 0 when they agree within 2%, 1 when not.
 */
async function runVerify(argv: string[], json: boolean): Promise<number> {
  const r = await verifyAgainstMemoryCgroup({ argv, name: `verify-${process.pid}`, stdio: json ? "ignore" : "inherit" });
  if (json) process.stdout.write(`${JSON.stringify(r)}\n`);
  else process.stderr.write(`${JSON.stringify(r.comparison)}\n${r.agrees ? "agrees" : "DISAGREES"} within ${r.tolerance * 100}%\n`);
  return r.agrees ? 0 : 1;
}
