/**
 * The agent's own footprint: CPU seconds and resident memory of the process tree `cage run`
 * supervises (the supervisor, each collector with its bpftrace, the pipeline, actuators),
 * grouped by top-level process, so operators see what watching the cages costs.
 *
 * Processes that belong to a cage (the embedded demo's workloads are children of `cage run`
 * too) are not the agent and are left out. The grouping is pure (agentUsage); readAgentTree
 * reads /proc.
 */
import { readFileSync } from "node:fs";
import { isGone, parseProcCpuTicks, parseProcStat, USER_HZ } from "../host/proc/processTable.js";
import { parseProcStatus } from "../host/proc/procStatus.js";
import { procfsReader, processTreePids } from "../host/proc/processTree.js";


export interface AgentProcessSample {
  pid: number;
  ppid: number;
  cmdline: string;
  /** utime + stime of the process's live threads. */
  cpuTicks: number;
  rssBytes: number;
}

export interface AgentUsage {
  cpuSeconds: number;
  rssBytes: number;
}

/** The name a supervised child is reported under, from its command line (bounded: one per entry file). */
export function agentProcessName(cmdline: string): string {
  const collector = /\/collectors\/([a-z0-9]+)\/main\.js(\s|$)/.exec(cmdline);
  if (collector) return `collector-${collector[1]}`;
  const actuator = /\/actuators\/([a-z0-9]+)\/main\.js(\s|$)/.exec(cmdline);
  if (actuator) return `actuator-${actuator[1]}`;
  if (/\/pipeline\/main\.js(\s|$)/.test(cmdline)) return "pipeline";
  // `cage actuator cpu ...` / `cage collector xentrace ...` run through the CLI.
  const sub = /\/cli\/cage\.js (actuator|collector) ([a-z0-9]+)/.exec(cmdline);
  if (sub) return `${sub[1]}-${sub[2]}`;
  return "other";
}

/**
 * Sums the samples by top-level process: the root is `rootName`, each child of the root names
 * its whole subtree. Samples not below the root, and the subtrees of excluded PIDs, are skipped.
 */
export function agentUsage(samples: readonly AgentProcessSample[], rootPid: number, rootName: string, excluded: ReadonlySet<number>): Map<string, AgentUsage> {
  const byPid = new Map(samples.map((s) => [s.pid, s]));
  const nameOf = new Map<number, string | null>();
  const resolve = (pid: number): string | null => {
    const known = nameOf.get(pid);
    if (known !== undefined) return known;
    nameOf.set(pid, null); // guards against a ppid cycle (PID reuse while we read)
    const s = byPid.get(pid);
    let name: string | null;
    if (excluded.has(pid)) name = null;
    else if (pid === rootPid) name = rootName;
    else if (s === undefined) name = null;
    else if (s.ppid === rootPid) name = excluded.has(rootPid) ? null : agentProcessName(s.cmdline);
    else name = resolve(s.ppid);
    nameOf.set(pid, name);
    return name;
  };
  const out = new Map<string, AgentUsage>();
  for (const s of samples) {
    const name = resolve(s.pid);
    if (name === null) continue;
    const u = out.get(name) ?? { cpuSeconds: 0, rssBytes: 0 };
    u.cpuSeconds += s.cpuTicks / USER_HZ;
    u.rssBytes += s.rssBytes;
    out.set(name, u);
  }
  return out;
}

/** Reads the root and all its descendants from /proc (via task children lists). Gone processes are skipped. */
export function readAgentTree(rootPid: number, procRoot = "/proc"): AgentProcessSample[] {
  const out: AgentProcessSample[] = [];
  for (const pid of processTreePids(rootPid, procfsReader(procRoot))) {
    const dir = `${procRoot}/${pid}`;
    try {
      const stat = readFileSync(`${dir}/stat`, "utf8");
      const { utimeTicks, stimeTicks } = parseProcCpuTicks(stat);
      const { ppid } = parseProcStat(stat);
      const cmdline = readFileSync(`${dir}/cmdline`).toString("utf8").replace(/\0+$/, "").replace(/\0/g, " ");
      const rssBytes = parseProcStatus(pid, readFileSync(`${dir}/status`, "utf8")).vmRssBytes;
      out.push({ pid, ppid, cmdline, cpuTicks: utimeTicks + stimeTicks, rssBytes });
    } catch (err) {
      if (!isGone(err)) throw err;
    }
  }
  return out;
}
