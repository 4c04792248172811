/**
 * Which processes belong to which cage, as VM or as IDS. Pure: it works on a process table
 * snapshot (processTable.ts) and the normalised config, so it is tested on hand-made tables.
 *
 * Rules:
 * - Within one matcher every selector given must match (AND); a list matches any (OR).
 * - An owner (`uids`) matches when the real and the effective UID are both in it: the real UID
 *   says who started the process, the effective one whose rights it has; a setuid binary run by
 *   another user, or a root daemon that switched to another user, is not that owner's process.
 * - `descendants` adds every descendant of a matched process (via ppid), whatever its name.
 * - A process is never both VM and IDS of one cage: IDS wins, because the IDS is what we charge
 *   separately (and cap with idsCap); counting it in the VM too would charge it twice. This is
 *   common: an IDS started from inside the VM's process tree is also the VM's descendant.
 * - A process matched by two cages belongs to the first in the file; the others get a conflict
 *   (a warning), since the config cannot rule this out before run time.
 * - VM kinds: process and qemu use `match`, cgroup uses `path` (its member processes, without
 *   descendants that moved out), xen has no processes (its CPU comes from xentrace).
 */
import type { CageSpec, ProcessMatcher } from "../../config/cageConfig.js";
import { compileCmdlinePattern } from "../../config/checks/cmdlinePattern.js";
import type { ProcessInfo } from "./processTable.js";

export interface CageMembers {
  vm: ProcessInfo[];
  ids: ProcessInfo[];
}

export interface MembershipConflict {
  pid: number;
  startTime: number;
  comm: string;
  /** The cage that got the process (earlier in the file) and its role there. */
  cage: string;
  role: "vm" | "ids";
  /** A later cage that also matched it, and as what. */
  otherCage: string;
  otherRole: "vm" | "ids";
  message: string;
}

export interface CageResolution {
  /** Every configured cage, in file order, members sorted by PID. */
  members: Map<string, CageMembers>;
  conflicts: MembershipConflict[];
}

/** Cage name → its VM and IDS processes. Conflicts are dropped; use resolveCagesDetailed to see them. */
export function resolveCages(cages: CageSpec[], table: ProcessInfo[]): Map<string, CageMembers> {
  return resolveCagesDetailed(cages, table).members;
}

export function resolveCagesDetailed(cages: CageSpec[], table: ProcessInfo[]): CageResolution {
  const children = childrenByPid(table);
  const owner = new Map<ProcessInfo, { cage: string; role: "vm" | "ids" }>();
  const members = new Map<string, CageMembers>();
  const conflicts: MembershipConflict[] = [];

  for (const cage of cages) {
    const ids = matchAll(cage.ids, table, children);
    const vm = vmProcesses(cage, table, children);
    for (const p of ids) vm.delete(p); // IDS wins within a cage
    const mine: CageMembers = { vm: [], ids: [] };
    for (const [role, set] of [["ids", ids], ["vm", vm]] as const) {
      for (const p of set) {
        const prior = owner.get(p);
        if (prior) {
          conflicts.push({
            pid: p.pid, startTime: p.startTime, comm: p.comm,
            cage: prior.cage, role: prior.role, otherCage: cage.name, otherRole: role,
            message: `process ${p.pid} (${p.comm}) matches cage "${prior.cage}" (${prior.role}) and cage "${cage.name}" (${role}); it counts for "${prior.cage}", the first in the file`,
          });
          continue;
        }
        owner.set(p, { cage: cage.name, role });
        mine[role].push(p);
      }
    }
    mine.vm.sort(byPid);
    mine.ids.sort(byPid);
    members.set(cage.name, mine);
  }
  return { members, conflicts };
}

function vmProcesses(cage: CageSpec, table: ProcessInfo[], children: Map<number, ProcessInfo[]>): Set<ProcessInfo> {
  switch (cage.vm.kind) {
    case "process":
    case "qemu":
      return matchAll(cage.vm.match, table, children);
    case "cgroup":
      return matchAll([{ cgroup: cage.vm.path, descendants: false }], table, children);
    case "xen":
      return new Set();
  }
}

/** The processes matching any of the matchers, with descendants where asked. */
export function matchAll(matchers: ProcessMatcher[], table: ProcessInfo[], children: Map<number, ProcessInfo[]> = childrenByPid(table)): Set<ProcessInfo> {
  const out = new Set<ProcessInfo>();
  for (const matcher of matchers) {
    const test = compileMatcher(matcher);
    const matched = new Set(table.filter(test));
    if (matcher.descendants) {
      const stack = [...matched];
      for (let p = stack.pop(); p !== undefined; p = stack.pop()) {
        for (const child of children.get(p.pid) ?? []) {
          if (matched.has(child)) continue;
          matched.add(child);
          stack.push(child);
        }
      }
    }
    for (const p of matched) out.add(p);
  }
  return out;
}

function childrenByPid(table: ProcessInfo[]): Map<number, ProcessInfo[]> {
  const children = new Map<number, ProcessInfo[]>();
  for (const p of table) {
    if (p.ppid === p.pid) continue;
    const list = children.get(p.ppid);
    if (list) list.push(p);
    else children.set(p.ppid, [p]);
  }
  return children;
}

function compileMatcher(m: ProcessMatcher): (p: ProcessInfo) => boolean {
  const cmdline = m.cmdline === undefined ? undefined : compileCmdlinePattern(m.cmdline);
  const cgroup = m.cgroup === undefined ? undefined : parseCgroupDir(m.cgroup);
  const hasSelector = m.pid !== undefined || m.comm !== undefined || m.exe !== undefined || cmdline || cgroup;
  const owners = m.uids === undefined ? undefined : new Set(m.uids);
  return (p) =>
    Boolean(hasSelector) &&
    (owners === undefined || (owners.has(p.uids.real) && owners.has(p.uids.effective))) &&
    (m.pid === undefined || p.pid === m.pid) &&
    (m.comm === undefined || p.comm === m.comm) &&
    (m.exe === undefined || (p.exe !== null && stripDeleted(p.exe) === m.exe)) &&
    (cmdline === undefined || cmdline.test(p.cmdline)) &&
    (cgroup === undefined || inCgroup(p, cgroup));
}

/**
 * A binary replaced while running (a package upgrade) reads as "/usr/bin/x (deleted)"; it is
 * still x. Only root can replace a binary under a root-owned directory, so this does not let
 * another user pose as it (the owner check covers a copy elsewhere).
 */
function stripDeleted(exe: string): string {
  return exe.endsWith(" (deleted)") ? exe.slice(0, -" (deleted)".length) : exe;
}

/** A cgroup directory split into its mount directory name and the path inside the hierarchy. */
export interface CgroupDir {
  /** First component under /sys/fs/cgroup: a v1 mount ("memory", "cpu,cpuacct", "systemd"), "unified", or a v2 child. */
  mount: string;
  /** The path inside that hierarchy, as /proc/PID/cgroup prints it ("/" for the root). */
  inner: string;
  /** The path for a pure v2 host, where /sys/fs/cgroup itself is the v2 root. */
  asV2Root: string;
}

export function parseCgroupDir(dir: string): CgroupDir {
  const parts = dir.replace(/^\/sys\/fs\/cgroup\/?/, "").split("/").filter((s) => s !== "");
  const mount = parts[0] ?? "";
  return { mount, inner: `/${parts.slice(1).join("/")}`, asV2Root: `/${parts.join("/")}` };
}

/**
 * Is the process in this cgroup directory or below it? /sys/fs/cgroup/<controller>/X is the v1
 * hierarchy of that controller ("systemd" is the named hierarchy "name=systemd"),
 * /sys/fs/cgroup/unified/X is v2 on a hybrid host, and anything else is v2 on a pure v2 host.
 */
export function inCgroup(p: ProcessInfo, dir: CgroupDir): boolean {
  const v1 = v1PathFor(p, dir.mount);
  if (v1 !== undefined) return isUnder(v1, dir.inner);
  if (p.cgroups.v2 === null) return false;
  return isUnder(p.cgroups.v2, dir.mount === "unified" ? dir.inner : dir.asV2Root);
}

function v1PathFor(p: ProcessInfo, mount: string): string | undefined {
  if (mount === "" || mount === "unified") return undefined;
  const v1 = p.cgroups.v1;
  for (const controller of mount.split(",")) {
    if (Object.hasOwn(v1, controller)) return v1[controller];
    if (Object.hasOwn(v1, `name=${controller}`)) return v1[`name=${controller}`];
  }
  return undefined;
}

function isUnder(path: string, dir: string): boolean {
  return dir === "/" || path === dir || path.startsWith(`${dir}/`);
}

function byPid(a: ProcessInfo, b: ProcessInfo): number {
  return a.pid - b.pid;
}
