/**
 * What the chaos run reads and repairs on the machine: the agent's processes (found by a marker
 * in their environment, which every child inherits, so none is missed after its parent died),
 * the VM's effective CPU cap from its real cpu cgroup, process states, and the clean-up between
 * `cage run` kills.
 */
import { existsSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseProcStat } from "../../host/proc/processTable.js";

/** The environment variable `cage lab chaos` gives `cage run`; its children inherit it. */
export const CHAOS_MARKER_ENV = "OFFLOADCAGE_CHAOS_RUN";

export interface AgentProcess {
  pid: number;
  ppid: number;
  state: string;
  /** What it is: a component name (collector-cpu, pipeline, actuator-cpu, guardian-cpu, ...), "cage run", "bpftrace", "cpuTime" (the libbpf CPU program) or "other". */
  name: string;
  cmdline: string;
}

/** The component a command line belongs to. */
export function componentOf(cmdline: string): string {
  const m = /\/(collectors\/(cpu|memory|pagecache|xentrace)|pipeline|actuators\/(cpu|limiter|balloon))\/main\.js/.exec(cmdline);
  if (m !== null) {
    if (m[2] !== undefined) return `collector-${m[2]}`;
    if (m[3] !== undefined) return `actuator-${m[3]}`;
    return "pipeline";
  }
  const g = /guardianMain\.js --name (\S+)/.exec(cmdline);
  if (g !== null) return `guardian-${g[1]}`;
  if (/\bcage\.js run\b/.test(cmdline)) return "cage run";
  if (/\bbpftrace\b/.test(cmdline)) return "bpftrace";
  if (/\/bpf\/cpuTime(\s|$)/.test(cmdline)) return "cpuTime";
  return "other";
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** The /proc/PID/stat state letter, or null when the process is gone. */
export function processState(pid: number): string | null {
  const text = readText(`/proc/${pid}/stat`);
  if (text === null) return null;
  try {
    return parseProcStat(text).state;
  } catch {
    return null;
  }
}

/** Every live process carrying this run's marker (zombies left out: they hold nothing). */
export function agentProcesses(token: string): AgentProcess[] {
  const needle = `${CHAOS_MARKER_ENV}=${token}\0`;
  const out: AgentProcess[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const environ = readText(`/proc/${entry}/environ`);
    if (environ === null || !`${environ}\0`.includes(needle)) continue;
    const stat = readText(`/proc/${entry}/stat`);
    if (stat === null) continue;
    let parsed;
    try {
      parsed = parseProcStat(stat);
    } catch {
      continue;
    }
    if (parsed.state === "Z" || parsed.state === "X") continue;
    const cmdline = (readText(`/proc/${entry}/cmdline`) ?? "").split("\0").join(" ").trim();
    out.push({ pid: parsed.pid, ppid: parsed.ppid, state: parsed.state, name: componentOf(cmdline), cmdline });
  }
  return out;
}

/** Agent processes whose parent is not an agent process and not `keeper` (the lab, cage run's parent). */
export function orphansOf(processes: readonly AgentProcess[], keeper: number): AgentProcess[] {
  const pids = new Set(processes.map((p) => p.pid));
  return processes.filter((p) => p.ppid !== keeper && !pids.has(p.ppid));
}

/** The process's path in the v1 `cpu` hierarchy (or the v2 path when there is no v1 cpu line). */
function cpuCgroupOf(pid: number): { root: string; path: string } | null {
  const text = readText(`/proc/${pid}/cgroup`);
  if (text === null) return null;
  let v2: string | null = null;
  for (const line of text.split("\n")) {
    const [, controllers, path] = line.split(":");
    if (controllers === undefined || path === undefined) continue;
    if (controllers.split(",").includes("cpu")) return { root: `/sys/fs/cgroup/${controllers}`, path };
    if (controllers === "") v2 = path;
  }
  return v2 === null ? null : { root: "/sys/fs/cgroup/unified", path: v2 };
}

export interface CpuCap {
  /** The tightest CFS quota on the way from the process's cgroup to the root, % of one CPU; null: no limit. */
  pct: number | null;
  /** The cgroup the process is in. */
  cgroup: string;
}

/** Reads the real quota files (cpu.cfs_quota_us / cpu.cfs_period_us, or cpu.max) of the process's cgroup and its ancestors. */
export function effectiveCpuCap(pid: number): CpuCap | null {
  const cg = cpuCgroupOf(pid);
  if (cg === null) return null;
  let dir = join(cg.root, cg.path);
  let pct: number | null = null;
  for (;;) {
    const quota = readText(join(dir, "cpu.cfs_quota_us"));
    const period = readText(join(dir, "cpu.cfs_period_us"));
    let here: number | null = null;
    if (quota !== null && period !== null) {
      const q = Number(quota);
      if (q > 0) here = (q / Number(period)) * 100;
    } else {
      const max = readText(join(dir, "cpu.max"));
      const [q, p] = (max ?? "").trim().split(" ");
      if (q !== undefined && q !== "max" && q !== "" && p !== undefined) here = (Number(q) / Number(p)) * 100;
    }
    if (here !== null) pct = pct === null ? here : Math.min(pct, here);
    if (dir === cg.root || dir.length <= cg.root.length) break;
    dir = dirname(dir);
  }
  return { pct, cgroup: join(cg.root, cg.path) };
}

/** The process's cgroup in the v1 cpu hierarchy (or v2), for reports. */
export function cpuCgroupPath(pid: number): string | null {
  const cg = cpuCgroupOf(pid);
  return cg === null ? null : join(cg.root, cg.path);
}

export function readOptional(path: string): string | null {
  return readText(path);
}

/** SIGKILL, ignoring a process already gone. */
export function killQuietly(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

/** Moves a process back to the root of its cpu hierarchy (undoing an actuator's adoption). */
export function moveToCpuRoot(pid: number): void {
  const cg = cpuCgroupOf(pid);
  if (cg === null || cg.path === "/") return;
  try {
    writeFileSync(join(cg.root, "cgroup.procs"), String(pid));
  } catch {
    // gone
  }
}

/** Removes a cgroup directory tree bottom-up (only empty groups can go); returns what stayed. */
export function removeCgroupTree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const stayed: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) stayed.push(...removeCgroupTree(join(dir, entry.name)));
  }
  try {
    rmdirSync(dir);
  } catch {
    stayed.push(dir);
  }
  return stayed;
}

/** PIDs in a cgroup's cgroup.procs ([] when it does not exist). */
export function cgroupProcs(dir: string): number[] {
  const text = readText(join(dir, "cgroup.procs"));
  return text === null ? [] : text.split("\n").filter((l) => l !== "").map(Number);
}
