/**
 * Remembers the last cage resolution and reports what changed, so collectors can log IDS
 * processes starting and stopping. Processes are told apart by (pid, start time): a PID that
 * comes back with another start time is a new process that reused the number, not the old one.
 */
import { processKey } from "./processTable.js";

export type Role = "vm" | "ids";

export interface TrackedProcess {
  cage: string;
  role: Role;
  pid: number;
  startTime: number;
  /** The process's name; null when the resolution came without one (the pipeline's `agg.members`). */
  comm: string | null;
}

/** What a resolution tells of a process (a ProcessInfo is one). */
export interface MemberProcess {
  pid: number;
  startTime: number;
  comm: string | null;
}

export type ProcessChange =
  | ({ kind: "started" } & TrackedProcess)
  | ({ kind: "exited" } & TrackedProcess)
  /** Same cage and role, same PID, different start time: the old process exited, a new one got its PID. */
  | ({ kind: "reused"; previousStartTime: number; previousComm: string | null } & TrackedProcess);

export class PidTracker {
  /** "cage\0role\0pid" → the process tracked under it. */
  private tracked = new Map<string, TrackedProcess>();

  /** Takes a new resolution; returns the changes since the previous one (exits first, in PID order). */
  update(members: ReadonlyMap<string, { vm: readonly MemberProcess[]; ids: readonly MemberProcess[] }>): ProcessChange[] {
    const next = new Map<string, TrackedProcess>();
    for (const [cage, m] of members) {
      for (const role of ["vm", "ids"] as const) {
        for (const p of m[role]) next.set(slot(cage, role, p.pid), tracked(cage, role, p));
      }
    }
    const changes: ProcessChange[] = [];
    for (const [key, old] of this.tracked) {
      const now = next.get(key);
      if (now === undefined) changes.push({ kind: "exited", ...old });
      else if (now.startTime !== old.startTime) {
        changes.push({ kind: "reused", ...now, previousStartTime: old.startTime, previousComm: old.comm });
      }
    }
    for (const [key, now] of next) {
      if (!this.tracked.has(key)) changes.push({ kind: "started", ...now });
    }
    this.tracked = next;
    const order = { exited: 0, reused: 1, started: 2 } as const;
    return changes.sort((a, b) => order[a.kind] - order[b.kind] || a.pid - b.pid);
  }

  /** The PIDs of every tracked process (VM and IDS of all cages), sorted, without duplicates. */
  pids(): number[] {
    return [...new Set([...this.tracked.values()].map((t) => t.pid))].sort((a, b) => a - b);
  }

  /** Identity keys (processKey) of every tracked process. */
  keys(): Set<string> {
    return new Set([...this.tracked.values()].map((t) => processKey(t.pid, t.startTime)));
  }

  processes(): TrackedProcess[] {
    return [...this.tracked.values()];
  }
}

function slot(cage: string, role: Role, pid: number): string {
  return `${cage}\u0000${role}\u0000${pid}`;
}

function tracked(cage: string, role: Role, p: MemberProcess): TrackedProcess {
  return { cage, role, pid: p.pid, startTime: p.startTime, comm: p.comm };
}
