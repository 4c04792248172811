/**
 * The agent's footprint at scale: `cage run` watching many cages of real processes with 10 Hz CPU
 * windows, against the same host and the same workloads without the agent, in one run
 * (without, with, without: the two baselines bracket the agent's run so drift shows).
 *
 * `cage run` is started as the service unit starts it, with the agent's V8 flags (AGENT_NODE_FLAGS).
 *
 * Each cage is a "VM" and an "IDS", each a small perl loop that wakes 20 times a second (so the
 * scheduler switches, and the CPU collector's sched_switch probe runs, as on a busy host). The
 * agent runs its collectors, pipeline (Prometheus exporter on, scraped by this bench every 5 s)
 * and, unless --no-actuators, the CPU actuator and the limiter in dry run (they compute and
 * publish but touch nothing, so no cgroup of the host changes).
 *
 * Reported: the agent's own CPU (its whole process tree from /proc, the eBPF loaders included) as a % of
 * one core; the host's busy CPU with and without the agent (from /proc/stat: the difference is the
 * agent's cost as the host sees it, noisy on a shared machine); the largest RSS of each agent
 * process, split into anonymous and file pages (the node binary's pages count in every node
 * process's RSS, though the processes share them). Targets (issue text): agent CPU ≤ 2% of one
 * core, RSS ≤ 80 MiB per process.
 *
 *   node dist/bench/agentFootprint.js [--json] [--cages N (100)] [--seconds N (60)] [--no-actuators]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../lab/common/realServers.js";
import { agentProcessName, readAgentTree } from "../pipeline/agentProcesses.js";
import { isGone, USER_HZ } from "../host/proc/processTable.js";
import { parseProcStatus } from "../host/proc/procStatus.js";
import { hostBusyTicks, parseHostCpuTicks } from "../host/proc/hostCpu.js";
import { parseCommandLine } from "../runtime/commandLine.js";
import { AGENT_NODE_FLAGS } from "../runtime/agentNodeFlags.js";
import { benchCommand, runBenchMain } from "./benchMain.js";

const MiB = 1024 * 1024;
const CAGE_JS = fileURLToPath(new URL("../cli/cage.js", import.meta.url));
/** Each workload process ends by itself after this long, whatever happens to the bench. */
const WORKLOAD_LIFETIME_S = 3600;

const AGENT_FOOTPRINT_COMMAND = benchCommand("agentFootprint", "CPU and RSS of the agent watching N cages (10 Hz windows) against the same host without it.", {
  cages: { type: "integer", value: "N", min: 1, max: 1000, help: "cages, each a VM and an IDS process (default 100)" },
  seconds: { type: "integer", value: "N", min: 10, max: 3600, help: "length of each measured phase (default 60)" },
  "no-actuators": { type: "boolean", help: "collectors and pipeline only" },
});

interface Options {
  json: boolean;
  cages: number;
  seconds: number;
  actuators: boolean;
}

function parseArgs(argv: string[]): Options {
  const { values } = parseCommandLine(AGENT_FOOTPRINT_COMMAND, argv);
  return { json: values.json, cages: values.cages ?? 100, seconds: values.seconds ?? 60, actuators: !values["no-actuators"] };
}

/** Busy ticks of the whole host (steal apart: it is not this host's CPU running anything). */
function hostJiffies(): { busy: number } {
  return { busy: hostBusyTicks(parseHostCpuTicks(readFileSync("/proc/stat", "utf8"))) };
}

/** Host busy CPU over `seconds`, as % of one core (100 = one core busy). */
async function hostBusyPct(seconds: number): Promise<number> {
  const a = hostJiffies();
  await sleep(seconds * 1000);
  const b = hostJiffies();
  return ((b.busy - a.busy) / USER_HZ / seconds) * 100;
}

export function footprintConfig(o: { cages: number; runtimeDir: string; port: number; actuators: boolean }): string {
  const lines = [
    "agent:",
    `  runtimeDir: ${o.runtimeDir}`,
    "  cpuIntervalMs: 100",
    "  pageCache: false",
    `  prometheus: { port: ${o.port} }`,
    ...(o.actuators ? ["  actuators:", "    cpu: { dryRun: true }", "    limiter: { dryRun: true }"] : []),
    "cages:",
  ];
  for (let i = 0; i < o.cages; i++) {
    lines.push(
      `  - name: fp${i}`,
      `    vm: { kind: process, match: [{ cmdline: "oc-fp-vm-${i}$" }] }`,
      `    ids: [{ cmdline: "oc-fp-ids-${i}$", user: root }]`,
      "    cpu: { cap: 50, idsCap: 20 }",
    );
  }
  return `${lines.join("\n")}\n`;
}

function startWorkloads(cages: number): ChildProcess[] {
  const loop = "my $end = time + shift; select(undef, undef, undef, 0.05) while time < $end;";
  const out: ChildProcess[] = [];
  for (let i = 0; i < cages; i++) {
    for (const role of ["vm", "ids"]) out.push(spawn("perl", ["-e", loop, String(WORKLOAD_LIFETIME_S), `oc-fp-${role}-${i}`], { stdio: "ignore" }));
  }
  return out;
}

interface ProcessPeak {
  name: string;
  pid: number;
  rssMiB: number;
  /** Of rssMiB, anonymous memory (the process's own: heap, stacks) and file pages (its binary and libraries, shared with other processes that map them). */
  anonMiB: number;
  fileMiB: number;
  /** CPU over the measured phase, % of one core. */
  cpuPct: number;
  firstTicks: number;
  lastTicks: number;
}

function processLabel(cmdline: string): string {
  const name = agentProcessName(cmdline);
  if (name !== "other") return name;
  if (/(^|\/)bpftrace\s/.test(cmdline)) return "bpftrace";
  if (/\/bpf\/cpuTime(\s|$)/.test(cmdline)) return "cpuTime (libbpf loader)";
  if (/cli\/cage\.js run/.test(cmdline)) return "cage run";
  if (/guardian/.test(cmdline)) return "guardian";
  return cmdline.slice(0, 40);
}

/** RssAnon and RssFile + RssShmem of a process, MiB; zeros when it is gone. */
function rssSplitMiB(pid: number): { anonMiB: number; fileMiB: number } {
  try {
    const m = parseProcStatus(pid, readFileSync(`/proc/${pid}/status`, "utf8"));
    return { anonMiB: m.rssAnonBytes / MiB, fileMiB: (m.rssFileBytes + m.rssShmemBytes) / MiB };
  } catch (err) {
    if (isGone(err)) return { anonMiB: 0, fileMiB: 0 };
    throw err;
  }
}

export async function main(argv: string[]): Promise<void> {
  const o = parseArgs(argv);
  const dir = mkdtempSync("/var/tmp/offloadcage-bench-footprint-");
  const workloads = startWorkloads(o.cages);
  let agent: ChildProcess | null = null;
  try {
    await sleep(2000);
    const baselineBefore = await hostBusyPct(o.seconds);
    const port = await freePort();
    const config = join(dir, "cages.yaml");
    writeFileSync(config, footprintConfig({ cages: o.cages, runtimeDir: join(dir, "run"), port, actuators: o.actuators }));
    let agentLog = "";
    // As the service unit starts it (packaging/offloadcage.service): with the agent's V8 flags.
    agent = spawn(process.execPath, [...AGENT_NODE_FLAGS, CAGE_JS, "run", "--config", config], { stdio: ["ignore", "ignore", "pipe"] });
    agent.stderr?.on("data", (d: Buffer) => (agentLog = (agentLog + d.toString()).slice(-4000)));
    const agentPid = agent.pid as number;
    // Warm-up: every child started, membership resolved, first windows through.
    const t0 = Date.now();
    for (;;) {
      const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()).catch(() => "");
      if (text.includes(`cage="fp${o.cages - 1}"`)) break;
      if (Date.now() - t0 > 120_000) throw new Error(`agentFootprint: the agent did not export cage fp${o.cages - 1} within 120 s; its log:\n${agentLog}`);
      await sleep(500);
    }
    await sleep(5000);
    const peaks = new Map<number, ProcessPeak>();
    const sample = (): number => {
      let ticks = 0;
      for (const s of readAgentTree(agentPid)) {
        ticks += s.cpuTicks;
        const peak = peaks.get(s.pid);
        const rssMiB = s.rssBytes / MiB;
        const split = rssSplitMiB(s.pid);
        if (peak === undefined) peaks.set(s.pid, { name: processLabel(s.cmdline), pid: s.pid, rssMiB, ...split, cpuPct: 0, firstTicks: s.cpuTicks, lastTicks: s.cpuTicks });
        else {
          if (rssMiB > peak.rssMiB) Object.assign(peak, { rssMiB, ...split });
          peak.lastTicks = s.cpuTicks;
        }
      }
      return ticks;
    };
    const ticksBefore = sample();
    const jiffiesBefore = hostJiffies();
    const started = Date.now();
    let scrapes = 0;
    while (Date.now() - started < o.seconds * 1000) {
      await sleep(5000);
      await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()).then(() => scrapes++).catch(() => undefined);
      sample();
    }
    const ticksAfter = sample();
    const jiffiesAfter = hostJiffies();
    const elapsed = (Date.now() - started) / 1000;
    const agentCpuPct = ((ticksAfter - ticksBefore) / USER_HZ / elapsed) * 100;
    for (const p of peaks.values()) p.cpuPct = ((p.lastTicks - p.firstTicks) / USER_HZ / elapsed) * 100;
    const withAgent = ((jiffiesAfter.busy - jiffiesBefore.busy) / USER_HZ / elapsed) * 100;
    agent.kill("SIGTERM");
    await new Promise((r) => agent?.once("exit", r));
    agent = null;
    await sleep(2000);
    const baselineAfter = await hostBusyPct(o.seconds);
    const baseline = (baselineBefore + baselineAfter) / 2;
    const processes = [...peaks.values()].sort((a, b) => b.rssMiB - a.rssMiB).map(({ name, pid, rssMiB, anonMiB, fileMiB, cpuPct }) => ({ name, pid, rssMiB, anonMiB, fileMiB, cpuPct }));
    const result = {
      cages: o.cages,
      cpuWindowMs: 100,
      actuators: o.actuators,
      seconds: o.seconds,
      scrapes,
      agentCpuPctOfOneCore: agentCpuPct,
      hostBusyPct: { withoutBefore: baselineBefore, with: withAgent, withoutAfter: baselineAfter, difference: withAgent - baseline },
      maxRssMiB: processes[0]?.rssMiB ?? 0,
      processes,
      targets: { agentCpuPct: 2, rssMiBPerProcess: 80 },
    };
    if (o.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    const f = (v: number): string => v.toFixed(2);
    process.stdout.write(`${o.cages} cages (${2 * o.cages} workload processes), 100 ms CPU windows, actuators ${o.actuators ? "cpu+limiter dry run" : "off"}, ${o.seconds} s per phase\n`);
    process.stdout.write(`agent process tree CPU: ${f(agentCpuPct)}% of one core (target <= 2)\n`);
    process.stdout.write(`host busy CPU: without ${f(baselineBefore)}% / with ${f(withAgent)}% / without ${f(baselineAfter)}% -> difference ${f(result.hostBusyPct.difference)}% of one core\n`);
    process.stdout.write(`largest RSS: ${f(result.maxRssMiB)} MiB (target <= 80 per process)\n`);
    for (const p of processes) {
      process.stdout.write(`  ${p.name.padEnd(22)} pid ${String(p.pid).padStart(7)}  ${f(p.rssMiB).padStart(8)} MiB (anon ${f(p.anonMiB).padStart(7)}, file ${f(p.fileMiB).padStart(6)})  ${f(p.cpuPct).padStart(6)}% CPU\n`);
    }
  } finally {
    agent?.kill("SIGKILL");
    for (const w of workloads) w.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

runBenchMain(import.meta.url, main);
