/**
 * IDS limiter precision: a real single-threaded CPU burner (demand 100% of a CPU) is limited to
 * --cap % by each method in turn: our `sigstop` duty cycle, our `cgroup` CFS quota, and Debian's
 * `cpulimit` (the tool the paper's OC-Limiter was based on); an unlimited burner runs first as the
 * baseline (what the shared host gives a burner at all). Per 1-second window the burner's on-CPU
 * time is read from the kernel (/proc/PID/task/TID/schedstat). Reports per method the mean, the
 * mean absolute error against the cap, the worst window, and the share of windows ≤ cap + 2 points.
 *
 *   node dist/bench/limiterPrecision.js [--json] [--cap PCT] [--seconds N]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { GuardianClient } from "../actuators/common/guardianClient.js";
import { CgroupLimiter } from "../actuators/limiter/cgroupLimiter.js";
import { SigstopLimiter } from "../actuators/limiter/sigstopLimiter.js";
import { readStartTime } from "../host/proc/processIdentity.js";
import { processCpuNs } from "../actuators/limiter/taskCpuTime.js";
import { readMounts } from "../actuators/common/cgroupCpuBackend.js";
import { runBenchMain } from "./benchMain.js";

interface Options {
  json: boolean;
  cap: number;
  seconds: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { json: false, cap: 30, seconds: 10 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--json") o.json = true;
    else if (a === "--cap" || a === "--seconds") {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0 || (a === "--cap" && v >= 100)) throw new Error(`limiterPrecision: ${a} needs a number${a === "--cap" ? " in (0, 100)" : " > 0"}, got ${JSON.stringify(argv[i])}`);
      o[a.slice(2) as "cap" | "seconds"] = v;
    } else throw new Error(`limiterPrecision: unknown argument ${JSON.stringify(a)} (usage: [--json] [--cap PCT] [--seconds N])`);
  }
  return o;
}

function burner(): ChildProcess & { pid: number } {
  const c = spawn(process.execPath, ["-e", "for(;;){}"], { stdio: "ignore" });
  return c as ChildProcess & { pid: number };
}

async function kill(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once("exit", r));
  try {
    process.kill(c.pid as number, "SIGCONT");
  } catch {
    /* gone */
  }
  c.kill("SIGKILL");
  await exited;
}

/** On-CPU % of one CPU in each 1-second window. */
async function windows(pid: number, seconds: number): Promise<number[]> {
  const out: number[] = [];
  let lastNs = processCpuNs(pid) as number;
  let lastT = performance.now();
  for (let i = 0; i < seconds; i++) {
    await sleep(1000);
    const ns = processCpuNs(pid) as number;
    const t = performance.now();
    out.push(((ns - lastNs) / 1e6 / (t - lastT)) * 100);
    lastNs = ns;
    lastT = t;
  }
  return out;
}

interface Result {
  method: string;
  meanPct: number;
  meanAbsErrPts: number;
  worstPct: number;
  withinCapPlus2: number;
  windows: number[];
}

function summarise(method: string, cap: number, w: number[]): Result {
  const mean = w.reduce((s, x) => s + x, 0) / w.length;
  return {
    method,
    meanPct: round(mean),
    meanAbsErrPts: round(w.reduce((s, x) => s + Math.abs(x - cap), 0) / w.length),
    worstPct: round(Math.max(...w)),
    withinCapPlus2: round(w.filter((x) => x <= cap + 2).length / w.length),
    windows: w.map(round),
  };
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

export async function main(argv: string[]): Promise<void> {
  const o = parseArgs(argv);
  const log = pino({ level: "warn" }, pino.destination(2));
  const results: Result[] = [];

  // Baseline: what the shared host gives an unlimited burner.
  {
    const b = burner();
    await sleep(300);
    results.push(summarise("unlimited", o.cap, await windows(b.pid, o.seconds)));
    await kill(b);
  }

  const guardian = await GuardianClient.start({ name: "bench", watchdogMs: 1000 });
  const hb = setInterval(() => guardian.heartbeat(), 100);
  try {
    for (const method of ["sigstop", "cgroup"] as const) {
      const b = burner();
      const pids = new Map([[b.pid, readStartTime(b.pid) as number]]);
      const cage = `bench${process.pid}`;
      const limiter =
        method === "sigstop"
          ? new SigstopLimiter({ periodMs: 100, logger: log, dryRun: false, guardian: () => guardian })
          : new CgroupLimiter({ logger: log, dryRun: false, mounts: readMounts(), guardian: () => guardian });
      limiter.setCage(cage, o.cap, pids);
      if (limiter instanceof SigstopLimiter) limiter.start();
      await sleep(1000); // settle (registration, first cycles)
      results.push(summarise(method, o.cap, await windows(b.pid, o.seconds)));
      if (limiter instanceof SigstopLimiter) limiter.stop();
      else await limiter.stop();
      await kill(b);
    }
    {
      const b = burner();
      const cl = spawn("cpulimit", ["-p", String(b.pid), "-l", String(o.cap)], { stdio: "ignore" });
      await sleep(1000);
      results.push(summarise("cpulimit", o.cap, await windows(b.pid, o.seconds)));
      cl.kill("SIGTERM");
      await new Promise((r) => cl.once("exit", r));
      await kill(b);
    }
  } finally {
    clearInterval(hb);
    await guardian.disarmAndClose();
  }

  if (o.json) {
    process.stdout.write(`${JSON.stringify({ capPct: o.cap, seconds: o.seconds, results })}\n`);
    return;
  }
  process.stdout.write(`limiter precision: 1 burner (demand 100%), cap ${o.cap}%, ${o.seconds} windows of 1 s\n`);
  process.stdout.write("method      mean%  mean|err|  worst%  share<=cap+2\n");
  for (const r of results) {
    process.stdout.write(`${r.method.padEnd(10)} ${r.meanPct.toFixed(1).padStart(6)} ${r.meanAbsErrPts.toFixed(2).padStart(9)} ${r.worstPct.toFixed(1).padStart(7)} ${r.withinCapPlus2.toFixed(2).padStart(12)}\n`);
  }
}

runBenchMain(import.meta.url, main, "limiterPrecision: ");
