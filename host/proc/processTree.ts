/**
 * Which processes descend from a root: the bookkeeping `cage measure` needs, and the agent's own
 * process tree. Discovery reads /proc/PID/task/TID/children (exact for live processes) and, for
 * PIDs first seen in a CPU batch, walks the ppid chain. The logic is pure; the /proc readers
 * (procfsReader, the one walk of /proc's parentage) are injected.
 */
import { readdirSync, readFileSync } from "node:fs";
import { isGone, parseProcStat } from "./processTable.js";

export interface ProcReader {
  /** Child PIDs of every thread of `pid`; [] if it is gone. */
  childrenOf(pid: number): number[];
  /** Parent PID, or null if the process is gone. */
  parentOf(pid: number): number | null;
}

export class DescendantSet {
  private readonly members = new Set<number>();
  private readonly outsiders = new Set<number>();

  constructor(
    roots: number[],
    private readonly proc: ProcReader,
  ) {
    for (const r of roots) this.members.add(r);
  }

  has(pid: number): boolean {
    return this.members.has(pid);
  }

  get pids(): number[] {
    return [...this.members];
  }

  /** Adds every live descendant reachable from the current members. */
  discover(): void {
    const queue = [...this.members];
    while (queue.length) {
      const pid = queue.pop() as number;
      for (const c of this.proc.childrenOf(pid)) {
        if (!this.members.has(c)) {
          this.members.add(c);
          this.outsiders.delete(c);
          queue.push(c);
        }
      }
    }
  }

  /**
   * Is `pid` (seen in a CPU batch) one of ours? Walks up its ppid chain; PIDs we have already
   * ruled out are not walked again (PIDs are allocated upwards, so reuse within one
   * measurement is rare, and a false "no" only loses that process's time, never adds).
   */
  classify(pid: number): boolean {
    if (this.members.has(pid)) return true;
    if (this.outsiders.has(pid) || pid <= 1) return false;
    const chain: number[] = [];
    let cur: number | null = pid;
    for (let depth = 0; cur !== null && cur > 1 && depth < 64; depth++) {
      if (this.members.has(cur)) {
        for (const c of chain) this.members.add(c);
        return true;
      }
      if (this.outsiders.has(cur)) break;
      chain.push(cur);
      cur = this.proc.parentOf(cur);
    }
    for (const c of chain) this.outsiders.add(c);
    return false;
  }
}

/** The machine's /proc (or a copy at procRoot) as a ProcReader. A process that exits meanwhile is skipped. */
export function procfsReader(procRoot = "/proc"): ProcReader {
  return {
    childrenOf(pid) {
      const out: number[] = [];
      let tids: string[];
      try {
        tids = readdirSync(`${procRoot}/${pid}/task`);
      } catch (err) {
        if (isGone(err)) return out;
        throw err;
      }
      for (const tid of tids) {
        try {
          for (const c of readFileSync(`${procRoot}/${pid}/task/${tid}/children`, "utf8").split(" ")) if (c.trim() !== "") out.push(Number(c));
        } catch (err) {
          if (!isGone(err)) throw err; // a thread that ended meanwhile has no children to list
        }
      }
      return out;
    },
    parentOf(pid) {
      try {
        return parseProcStat(readFileSync(`${procRoot}/${pid}/stat`, "utf8")).ppid;
      } catch (err) {
        if (isGone(err)) return null;
        throw err;
      }
    },
  };
}

export const procReader: ProcReader = procfsReader();

/** `rootPid` and every live descendant, each once, parents before their children. */
export function processTreePids(rootPid: number, reader: ProcReader = procReader): number[] {
  const out: number[] = [];
  const seen = new Set<number>();
  const queue = [rootPid];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    queue.push(...reader.childrenOf(pid));
  }
  return out;
}
