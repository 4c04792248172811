/**
 * CPU collector overhead per context switch. A context-switch-heavy load (`perf bench sched
 * pipe`, both ends pinned to CPU 0: 2 switches per op) runs alone, with a no-op sched_switch
 * probe (the floor any eBPF collector pays), and with our collector (both variants of
 * bpf/cpuTime.bt), in alternating rounds of the same run. Reports ns per switch, the cost each
 * adds, and the collector's added cost as a ratio to the no-op probe's (aim: <= 1.3).
 *
 *   node dist/bench/collectorOverhead.js [--json] [--rounds N] [--runs N] [--loops N]
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { pathToFileURL } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { startCpuTimeSource, type CpuTimeSource } from "../collectors/cpu/cpuTimeSource.js";

interface Options {
  json: boolean;
  rounds: number;
  runs: number;
  loops: number;
}

type StateName = "alone" | "noopProbe" | "collector" | "collectorThreadsOnly";
const STATES: StateName[] = ["alone", "noopProbe", "collector", "collectorThreadsOnly"];
const PERF = "/usr/bin/perf";

function parseArgs(argv: string[]): Options {
  const o: Options = { json: false, rounds: 4, runs: 6, loops: 50_000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--json") o.json = true;
    else if (a === "--rounds" || a === "--runs" || a === "--loops") {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`collectorOverhead: ${a} needs a positive integer, got ${JSON.stringify(argv[i])}`);
      o[a.slice(2) as "rounds" | "runs" | "loops"] = v;
    } else throw new Error(`collectorOverhead: unknown argument ${JSON.stringify(a)} (usage: [--json] [--rounds N] [--runs N] [--loops N])`);
  }
  return o;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/** One `perf bench sched pipe` run pinned to CPU 0: ns per context switch. */
async function pipeNsPerSwitch(loops: number): Promise<number> {
  const out = await run("taskset", ["-c", "0", PERF, "bench", "sched", "pipe", "-l", String(loops)]);
  const m = /([\d.]+) usecs\/op/.exec(out);
  if (!m) throw new Error(`perf bench sched pipe: no "usecs/op" in its output: ${out.slice(0, 200)}`);
  return (Number(m[1]) * 1000) / 2; // one op = a round trip = 2 switches
}

/** A no-op sched_switch probe; resolves once bpftrace has attached it. */
async function startNoopProbe(): Promise<ChildProcess> {
  const child = spawn("bpftrace", ["-f", "json", "-e", 'tracepoint:sched:sched_switch {} interval:ms:100 { printf("tick\\n"); }'], { stdio: ["ignore", "pipe", "ignore"] });
  await new Promise<void>((resolve, reject) => {
    // The first interval line is processed only after every probe is attached.
    child.stdout.on("data", (b: Buffer) => { if (b.includes("tick")) resolve(); });
    child.once("exit", (code) => reject(new Error(`no-op bpftrace exited (code ${code}) before attaching`)));
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

export async function main(argv: string[]): Promise<void> {
  const opts = parseArgs(argv);
  await pipeNsPerSwitch(1000).catch((err: Error) => {
    throw new Error(`perf bench sched pipe does not work here (${err.message}); install linux-perf`);
  });
  const samples: Record<StateName, number[]> = { alone: [], noopProbe: [], collector: [], collectorThreadsOnly: [] };
  let batches = 0;
  for (let round = 0; round < opts.rounds; round++) {
    for (const state of STATES) {
      let probe: ChildProcess | null = null;
      let source: CpuTimeSource | null = null;
      try {
        if (state === "noopProbe") probe = await startNoopProbe();
        if (state === "collector" || state === "collectorThreadsOnly") {
          source = await startCpuTimeSource({ intervalMs: 100, processMapInKernel: state === "collector", onBatch: () => { batches++; } });
        }
        await sleep(300);
        for (let i = 0; i < opts.runs; i++) samples[state].push(await pipeNsPerSwitch(opts.loops));
      } finally {
        if (probe) await stopChild(probe);
        if (source) await source.stop();
      }
    }
  }
  // The minimum is the estimate least disturbed by other load (noise only ever adds time).
  const best = Object.fromEntries(STATES.map((s) => [s, Math.min(...samples[s])])) as Record<StateName, number>;
  const med = Object.fromEntries(STATES.map((s) => [s, median(samples[s])])) as Record<StateName, number>;
  const added = (s: StateName, from: Record<StateName, number>): number => from[s] - from.alone;
  const result = {
    bench: "collectorOverhead",
    load: `taskset -c 0 perf bench sched pipe -l ${opts.loops} (2 context switches per op)`,
    rounds: opts.rounds,
    runsPerStatePerRound: opts.runs,
    nsPerSwitchMin: best,
    nsPerSwitchMedian: med,
    addedNsPerSwitch: {
      noopProbe: added("noopProbe", best),
      collector: added("collector", best),
      collectorThreadsOnly: added("collectorThreadsOnly", best),
    },
    ratioToNoopProbe: {
      collector: added("collector", best) / added("noopProbe", best),
      collectorThreadsOnly: added("collectorThreadsOnly", best) / added("noopProbe", best),
      collectorFromMedians: added("collector", med) / added("noopProbe", med),
    },
    target: 1.3,
    collectorBatches: batches,
  };
  if (opts.json) {
    process.stdout.write(JSON.stringify(result) + "\n");
    return;
  }
  const f = (n: number): string => n.toFixed(1).padStart(7);
  const lines = [
    `collector overhead: ${result.load}, ${opts.rounds} alternating rounds x ${opts.runs} runs per state`,
    `                         ns/switch (min)  (median)   added (min)`,
    ...STATES.map((s) => `  ${s.padEnd(22)} ${f(best[s])}        ${f(med[s])}    ${s === "alone" ? "      -" : f(added(s, best))}`),
    `  collector added cost / no-op probe added cost: ${result.ratioToNoopProbe.collector.toFixed(2)} (threads-only variant ${result.ratioToNoopProbe.collectorThreadsOnly.toFixed(2)}; from medians ${result.ratioToNoopProbe.collectorFromMedians.toFixed(2)}); aim <= 1.3`,
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
