/**
 * CPU collector overhead per context switch. A context-switch-heavy load (`perf bench sched
 * pipe`, both ends pinned to CPU 0: 2 switches per op) runs in alternating rounds of the same run:
 * - alone;
 * - noopProbe: a bpftrace no-op `tracepoint:sched:sched_switch` probe (the floor the issue names);
 * - noopTpBtf: a no-op `tp_btf/sched_switch` program (`dist/bpf/cpuTime --noop`): the floor of
 *   the libbpf program's own attach type;
 * - collector: bpf/cpuTime.bt under bpftrace;
 * - libbpf: the libbpf program (dist/bpf/cpuTime), when it is built.
 * Optionally a second script (`--compare FILE`, e.g. an older version of the collector) runs as
 * one more state, for before/after figures from one run.
 *
 * The cost is the CPU time of the load (perf stat task-clock, which includes the probe: it runs
 * in the switching task's context) per switch: on a shared machine, wall time also counts the
 * time the load waited for other tasks. Wall time is reported too. Figures are medians over all
 * runs of a state; the headline is the collector's added cost over the no-op probe's.
 *
 *   node dist/bench/collectorOverhead.js [--json] [--rounds N] [--runs N] [--loops N]
 *                                       [--compare FILE [--compare-args "A B C"]]
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { existsSync } from "node:fs";
import { defaultLoaderPath, startCpuTimeSource, type CpuTimeSource } from "../collectors/cpu/cpuTimeSource.js";
import { runBenchMain } from "./benchMain.js";

interface Options {
  json: boolean;
  rounds: number;
  runs: number;
  loops: number;
  compare: string | null;
  compareArgs: string[];
}

type StateName = "alone" | "noopProbe" | "noopTpBtf" | "collector" | "libbpf" | "compare";
const PERF = "/usr/bin/perf";
const USAGE = '[--json] [--rounds N] [--runs N] [--loops N] [--compare FILE [--compare-args "A B C"]]';

function parseArgs(argv: string[]): Options {
  const o: Options = { json: false, rounds: 8, runs: 3, loops: 20_000, compare: null, compareArgs: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--json") o.json = true;
    else if (a === "--rounds" || a === "--runs" || a === "--loops") {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`collectorOverhead: ${a} needs a positive integer, got ${JSON.stringify(argv[i])}`);
      o[a.slice(2) as "rounds" | "runs" | "loops"] = v;
    } else if (a === "--compare") {
      const file = argv[++i];
      if (file === undefined || file === "") throw new Error("collectorOverhead: --compare needs a bpftrace script path");
      o.compare = file;
    } else if (a === "--compare-args") {
      const v = argv[++i];
      if (v === undefined) throw new Error("collectorOverhead: --compare-args needs a value");
      o.compareArgs = v.split(/\s+/).filter((s) => s !== "");
    } else throw new Error(`collectorOverhead: unknown argument ${JSON.stringify(a)} (usage: ${USAGE})`);
  }
  if (o.compareArgs.length > 0 && o.compare === null) throw new Error("collectorOverhead: --compare-args needs --compare FILE");
  return o;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")}: ${stderr.trim() || err.message}`));
      else resolve(stdout + stderr);
    });
  });
}

interface Sample {
  /** CPU time of the load (task-clock) per context switch. */
  cpuNs: number;
  /** Wall time per context switch. */
  wallNs: number;
}

/** One `perf bench sched pipe` run pinned to CPU 0, under `perf stat -e task-clock`. */
async function pipeRun(loops: number): Promise<Sample> {
  const out = await run("taskset", ["-c", "0", PERF, "stat", "-x", ",", "-e", "task-clock", "--", PERF, "bench", "sched", "pipe", "-l", String(loops)]);
  const wall = /([\d.]+) usecs\/op/.exec(out);
  const clock = /^([\d.]+),msec,task-clock/m.exec(out);
  if (!wall || !clock) throw new Error(`perf bench sched pipe under perf stat: no "usecs/op" or task-clock line in: ${out.slice(0, 300)}`);
  const switches = 2 * loops; // one op = a round trip = 2 switches
  return { cpuNs: (Number(clock[1]) * 1e6) / switches, wallNs: (Number(wall[1]) * 1000) / 2 };
}

/** A bpftrace script (or another program) that prints a line once attached; resolves when it has. */
async function startScript(args: string[], attachedText: string, command = "bpftrace"): Promise<ChildProcess> {
  const argv = command === "bpftrace" ? ["-f", "json", ...args] : args;
  // A pipe as stdin: the libbpf loader exits when it closes, so a killed bench leaves nothing attached.
  const child = spawn(command, argv, { stdio: ["pipe", "pipe", "ignore"] });
  await new Promise<void>((resolve, reject) => {
    // The first interval line is processed only after every probe is attached.
    child.stdout.on("data", (b: Buffer) => { if (b.includes(attachedText)) resolve(); });
    child.once("exit", (code) => reject(new Error(`${command} ${args.join(" ")} exited (code ${code}) before attaching`)));
  });
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGINT");
  const t = setTimeout(() => child.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(t);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

export async function main(argv: string[]): Promise<void> {
  const opts = parseArgs(argv);
  await pipeRun(1000).catch((err: Error) => {
    throw new Error(`perf bench sched pipe under perf stat does not work here (${err.message}); install linux-perf`);
  });
  const loader = defaultLoaderPath();
  const libbpf = existsSync(loader);
  const states: StateName[] = [
    "alone", "noopProbe", ...(libbpf ? ["noopTpBtf" as const] : []), "collector", ...(libbpf ? ["libbpf" as const] : []), ...(opts.compare === null ? [] : ["compare" as const]),
  ];
  const samples = Object.fromEntries(states.map((s) => [s, [] as Sample[]])) as Record<StateName, Sample[]>;
  const loadBefore = loadAverage();
  let batches = 0;
  for (let round = 0; round < opts.rounds; round++) {
    for (const state of states) {
      let probe: ChildProcess | null = null;
      let source: CpuTimeSource | null = null;
      try {
        if (state === "noopProbe") probe = await startScript(["-e", 'tracepoint:sched:sched_switch {} interval:ms:100 { printf("tick\\n"); }'], "tick");
        if (state === "noopTpBtf") probe = await startScript(["--noop"], "noop_attached", loader);
        if (state === "compare") probe = await startScript([opts.compare!, ...opts.compareArgs], '"printf"');
        if (state === "collector") source = await startCpuTimeSource({ intervalMs: 100, program: "bpftrace", onBatch: () => { batches++; } });
        if (state === "libbpf") source = await startCpuTimeSource({ intervalMs: 100, program: "libbpf", onBatch: () => { batches++; } });
        await sleep(300);
        for (let i = 0; i < opts.runs; i++) samples[state].push(await pipeRun(opts.loops));
      } finally {
        if (probe) await stopChild(probe);
        if (source) await source.stop();
      }
    }
  }
  const loadAfter = loadAverage();
  const med = (s: StateName, k: keyof Sample): number => median(samples[s].map((x) => x[k]));
  const added = (s: StateName, k: keyof Sample): number => med(s, k) - med("alone", k);
  const ratio = (s: StateName, k: keyof Sample, floor: StateName = "noopProbe"): number => added(s, k) / added(floor, k);
  const collectors = states.filter((s) => s !== "alone" && s !== "noopProbe" && s !== "noopTpBtf");
  const figures = (k: keyof Sample): Record<string, unknown> => ({
    nsPerSwitchMedian: Object.fromEntries(states.map((s) => [s, med(s, k)])),
    addedNsPerSwitch: Object.fromEntries(states.filter((s) => s !== "alone").map((s) => [s, added(s, k)])),
    ratioToNoopProbe: Object.fromEntries(states.filter((s) => s !== "alone" && s !== "noopProbe").map((s) => [s, ratio(s, k)])),
    ...(libbpf ? { ratioToNoopTpBtf: Object.fromEntries(collectors.map((s) => [s, ratio(s, k, "noopTpBtf")])) } : {}),
  });
  const result = {
    bench: "collectorOverhead",
    load: `taskset -c 0 perf bench sched pipe -l ${opts.loops} (2 context switches per op) under perf stat -e task-clock`,
    rounds: opts.rounds,
    runsPerStatePerRound: opts.runs,
    compareScript: opts.compare,
    loadAverage: { before: loadBefore, after: loadAfter },
    cpuTime: figures("cpuNs"),
    wallTime: figures("wallNs"),
    floors: {
      noopProbe: "bpftrace: tracepoint:sched:sched_switch {} (the issue's floor)",
      noopTpBtf: libbpf ? `${loader} --noop: an empty tp_btf/sched_switch program (the libbpf program's attach type)` : "not run: the libbpf program is not built",
    },
    headline: libbpf ? "libbpf" : "collector",
    ratio: ratio(libbpf ? "libbpf" : "collector", "cpuNs"),
    ratioToNoopTpBtf: libbpf ? ratio("libbpf", "cpuNs", "noopTpBtf") : null,
    bpftraceRatio: ratio("collector", "cpuNs"),
    target: 1.3,
    collectorBatches: batches,
  };
  if (opts.json) {
    process.stdout.write(JSON.stringify(result) + "\n");
    return;
  }
  const f = (n: number): string => n.toFixed(1).padStart(8);
  const floorOf = (s: StateName): boolean => s === "alone" || s === "noopProbe";
  const lines = [
    `collector overhead: ${result.load}`,
    `  ${opts.rounds} alternating rounds x ${opts.runs} runs per state; load average ${loadBefore} before, ${loadAfter} after`,
    `                      CPU ns/switch  added   ratio | wall ns/switch  added   ratio   (medians)`,
    ...states.map((s) => {
      const cols = (k: keyof Sample): string => `${f(med(s, k))} ${s === "alone" ? "       -" : f(added(s, k))} ${floorOf(s) ? "      -" : ratio(s, k).toFixed(2).padStart(7)}`;
      return `  ${s.padEnd(18)} ${cols("cpuNs")}   | ${cols("wallNs")}`;
    }),
    `  ratio = added cost / added cost of noopProbe (${result.floors.noopProbe})`,
    `  ${result.headline} (CPU time): ${result.ratio.toFixed(2)} to noopProbe; aim <= 1.3` +
      (result.ratioToNoopTpBtf === null ? "" : `; ${result.ratioToNoopTpBtf.toFixed(2)} to noopTpBtf (${result.floors.noopTpBtf})`),
    `  bpftrace collector (CPU time): ${result.bpftraceRatio.toFixed(2)} to noopProbe`,
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

runBenchMain(import.meta.url, main);
