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
 *   descendants that moved out), xen has no processes (its CPU comes from xentrace), libvirt is
 *   the domain's QEMU process as host/libvirt/libvirtDomain.ts last saw it (PID and start time,
 *   so a stale PID reused by another process matches nothing); a domain not running has none.
 * - An IDS-VM (an `ids` entry `{ vm: ... }`, cage.idsVms) resolves like a cage's VM of that kind,
 *   and its processes are IDS: all of a QEMU's threads are charged to the IDS. A Xen IDS-VM has no
 *   host processes (its run time comes from xentrace); a libvirt one is looked up in `libvirtVms`
 *   under idsVmKey(cage, index).
 */
import type { CageSpec, ProcessMatcher, VmSpec } from "../../config/cageConfig.js";
import { compileCmdlinePattern } from "../../config/checks/cmdlinePattern.js";
import type { LibvirtVmState } from "../libvirt/libvirtDomain.js";
import type { ProcFields, ProcessInfo } from "./processTable.js";

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

/** The `libvirtVms` key of a cage's libvirt IDS-VM (its index in cage.idsVms); a cage name never holds "/". */
export function idsVmKey(cage: string, index: number): string {
  return `${cage}/ids/${index}`;
}

/** Cage name → its VM and IDS processes. Conflicts are dropped; use resolveCagesDetailed to see them. */
export function resolveCages(cages: CageSpec[], table: ProcessInfo[], libvirtVms?: ReadonlyMap<string, LibvirtVmState>): Map<string, CageMembers> {
  return resolveCagesDetailed(cages, table, libvirtVms).members;
}

/**
 * The optional /proc files resolving `cages` needs (host/proc/processTable.ts ScanOptions.read):
 * cgroups for a cgroup matcher or a cgroup VM, exe for an exe matcher.
 */
export function procFieldsFor(cages: readonly CageSpec[]): ProcFields {
  const matchers = cages.flatMap(matchersOf);
  return {
    cgroups: cages.some((c) => [c.vm, ...(c.idsVms ?? [])].some((vm) => vm.kind === "cgroup")) || matchers.some((m) => m.cgroup !== undefined),
    exe: matchers.some((m) => m.exe !== undefined),
  };
}

/** Every process matcher of a cage: its IDS's, its VM's and its IDS-VMs' (for process and QEMU VMs). */
function matchersOf(cage: CageSpec): ProcessMatcher[] {
  return [...cage.ids, ...[cage.vm, ...(cage.idsVms ?? [])].flatMap((vm) => (vm.kind === "process" || vm.kind === "qemu" ? vm.match : []))];
}

/** One resolution with nothing remembered; a process that resolves repeatedly keeps a CageResolver. */
export function resolveCagesDetailed(cages: CageSpec[], table: ProcessInfo[], libvirtVms?: ReadonlyMap<string, LibvirtVmState>): CageResolution {
  return new CageResolver(cages).resolve(table, libvirtVms);
}

/**
 * Resolves the same cages against successive process tables. Matchers are compiled once, and
 * what each process matched is remembered while its identity and the fields matchers read stay
 * the same, so a steady host costs a map lookup per process instead of every cmdline pattern
 * against every process (with many cages, those regular expressions were nearly all the cost).
 */
export class CageResolver {
  private readonly matchers: CompiledMatcher[] = [];
  private readonly index = new Map<ProcessMatcher, CompiledMatcher>();
  /** By PID: what the process was when last evaluated, and the memoisable matchers it matched. */
  private readonly memo = new Map<number, MemoEntry>();

  /** The cgroup VMs' (and cgroup IDS-VMs') directories: they select by a path, not by a matcher. */
  private readonly cgroupVmDirs: CgroupDir[];

  constructor(private readonly cages: readonly CageSpec[]) {
    for (const m of cages.flatMap(matchersOf)) this.compiled(m);
    this.cgroupVmDirs = cages.flatMap((c) => [c.vm, ...(c.idsVms ?? [])].flatMap((vm) => (vm.kind === "cgroup" ? [parseCgroupDir(vm.path)] : [])));
  }

  /**
   * Whether resolving with `p` added could make it a member: a matcher selects it, a cgroup VM
   * holds it, a libvirt domain's state names it, or its parent is in `members` (a matcher with
   * descendants may take it in). False means a resolution would leave `p` out for sure, so a
   * caller meeting a new process between scans can skip resolving.
   */
  couldMatch(p: ProcessInfo, members: ReadonlySet<number>, libvirtVms: ReadonlyMap<string, LibvirtVmState> = new Map()): boolean {
    if (members.has(p.ppid)) return true;
    for (const c of this.matchers) if (c.test(p)) return true;
    for (const dir of this.cgroupVmDirs) if (inCgroup(p, dir)) return true;
    for (const s of libvirtVms.values()) if ((s.state === "running" || s.state === "paused") && s.pid === p.pid && s.startTime === p.startTime) return true;
    return false;
  }

  /** libvirtVms: cage name → its libvirt domain's state, for cages with vm.kind libvirt; idsVmKey(…) → a libvirt IDS-VM's. */
  resolve(table: ProcessInfo[], libvirtVms: ReadonlyMap<string, LibvirtVmState> = new Map()): CageResolution {
    const matched = this.matchTable(table);
    return resolveWith(this.cages, table, libvirtVms, (matchers, children) => {
      const out = new Set<ProcessInfo>();
      for (const m of matchers) {
        // The cage file's matchers are compiled in the constructor; a cgroup VM's is made per call.
        const c = this.index.get(m) ?? { ...compileMatcherParts(m), memoisable: false, slot: -1 };
        const direct = c.memoisable ? (matched.get(c) ?? []) : table.filter(c.test);
        for (const p of withDescendants(direct, m.descendants, children)) out.add(p);
      }
      return out;
    });
  }

  private compiled(m: ProcessMatcher): CompiledMatcher {
    let c = this.index.get(m);
    if (c === undefined) {
      // A cgroup selector reads fields that change without a new identity (a process moved): always evaluated.
      c = { ...compileMatcherParts(m), memoisable: m.cgroup === undefined, slot: this.matchers.length };
      this.matchers.push(c);
      this.index.set(m, c);
    }
    return c;
  }

  /**
   * Memoisable matcher → the processes of `table` it matches directly. What is remembered per
   * process is which matchers its identity fields pass; the owner test, on fields a setuid
   * changes without a new identity, runs on every call, and only for those candidates, so the
   * owner of a process no matcher could select is never looked at (a scan may read it lazily).
   */
  private matchTable(table: ProcessInfo[]): Map<CompiledMatcher, ProcessInfo[]> {
    const out = new Map<CompiledMatcher, ProcessInfo[]>();
    const seen = new Set<number>();
    for (const p of table) {
      seen.add(p.pid);
      let e = this.memo.get(p.pid);
      if (e === undefined || !sameProcess(e, p)) {
        const slots: number[] = [];
        for (const c of this.matchers) if (c.memoisable && c.identity(p)) slots.push(c.slot);
        e = { startTime: p.startTime, comm: p.comm, cmdline: p.cmdline, exe: p.exe, slots };
        this.memo.set(p.pid, e);
      }
      for (const slot of e.slots) {
        const c = this.matchers[slot] as CompiledMatcher;
        if (!c.owner(p)) continue;
        const list = out.get(c);
        if (list === undefined) out.set(c, [p]);
        else list.push(p);
      }
    }
    for (const pid of this.memo.keys()) if (!seen.has(pid)) this.memo.delete(pid);
    return out;
  }
}

interface CompiledMatcher extends MatcherParts {
  memoisable: boolean;
  slot: number;
}

/** The identity fields a memoisable matcher reads, as they were when it was evaluated (the owner is tested on every call). */
interface MemoEntry {
  startTime: number;
  comm: string;
  cmdline: string;
  exe: string | null;
  slots: number[];
}

function sameProcess(e: MemoEntry, p: ProcessInfo): boolean {
  return e.startTime === p.startTime && e.comm === p.comm && e.cmdline === p.cmdline && e.exe === p.exe;
}

type MatchProcesses = (matchers: ProcessMatcher[], children: Map<number, ProcessInfo[]>) => Set<ProcessInfo>;

function resolveWith(cages: readonly CageSpec[], table: ProcessInfo[], libvirtVms: ReadonlyMap<string, LibvirtVmState>, matchProcesses: MatchProcesses): CageResolution {
  const children = childrenByPid(table);
  const owner = new Map<ProcessInfo, { cage: string; role: "vm" | "ids" }>();
  const members = new Map<string, CageMembers>();
  const conflicts: MembershipConflict[] = [];

  for (const cage of cages) {
    const ids = matchProcesses(cage.ids, children);
    (cage.idsVms ?? []).forEach((idsVm, i) => {
      for (const p of vmProcesses(idsVm, table, children, matchProcesses, libvirtVms.get(idsVmKey(cage.name, i)))) ids.add(p);
    });
    const vm = vmProcesses(cage.vm, table, children, matchProcesses, libvirtVms.get(cage.name));
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

/** The host processes of a VM (a cage's, or an IDS-VM). */
function vmProcesses(vm: VmSpec, table: ProcessInfo[], children: Map<number, ProcessInfo[]>, matchProcesses: MatchProcesses, libvirtVm: LibvirtVmState | undefined): Set<ProcessInfo> {
  switch (vm.kind) {
    case "process":
    case "qemu":
      return matchProcesses(vm.match, children);
    case "cgroup":
      return matchProcesses([{ cgroup: vm.path, descendants: false }], children);
    case "xen":
      return new Set();
    case "libvirt":
      return libvirtQemu(table, libvirtVm);
  }
}

function libvirtQemu(table: ProcessInfo[], s: LibvirtVmState | undefined): Set<ProcessInfo> {
  if (s === undefined || (s.state !== "running" && s.state !== "paused")) return new Set();
  return new Set(table.filter((p) => p.pid === s.pid && p.startTime === s.startTime));
}

/** The processes matching any of the matchers, with descendants where asked. */
export function matchAll(matchers: ProcessMatcher[], table: ProcessInfo[], children: Map<number, ProcessInfo[]> = childrenByPid(table)): Set<ProcessInfo> {
  const out = new Set<ProcessInfo>();
  for (const matcher of matchers) for (const p of withDescendants(table.filter(compileMatcher(matcher)), matcher.descendants, children)) out.add(p);
  return out;
}

/** `direct`, and with `descendants` every process below them. */
function withDescendants(direct: readonly ProcessInfo[], descendants: boolean, children: Map<number, ProcessInfo[]>): Set<ProcessInfo> {
  const matched = new Set(direct);
  if (descendants) {
    const stack = [...matched];
    for (let p = stack.pop(); p !== undefined; p = stack.pop()) {
      for (const child of children.get(p.pid) ?? []) {
        if (matched.has(child)) continue;
        matched.add(child);
        stack.push(child);
      }
    }
  }
  return matched;
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

/** A matcher's test in two parts: every selector but the owner, and the owner (true when none is given). */
interface MatcherParts {
  identity: (p: ProcessInfo) => boolean;
  owner: (p: ProcessInfo) => boolean;
  /** identity && owner, the owner last: it is only looked at for a process the rest selects. */
  test: (p: ProcessInfo) => boolean;
}

function compileMatcher(m: ProcessMatcher): (p: ProcessInfo) => boolean {
  return compileMatcherParts(m).test;
}

function compileMatcherParts(m: ProcessMatcher): MatcherParts {
  const cmdline = m.cmdline === undefined ? undefined : compileCmdlinePattern(m.cmdline);
  const cgroup = m.cgroup === undefined ? undefined : parseCgroupDir(m.cgroup);
  const hasSelector = m.pid !== undefined || m.comm !== undefined || m.exe !== undefined || cmdline || cgroup;
  const owners = m.uids === undefined ? undefined : new Set(m.uids);
  const identity = (p: ProcessInfo): boolean =>
    Boolean(hasSelector) &&
    (m.pid === undefined || p.pid === m.pid) &&
    (m.comm === undefined || p.comm === m.comm) &&
    (m.exe === undefined || (p.exe !== null && stripDeleted(p.exe) === m.exe)) &&
    (cmdline === undefined || cmdline.test(p.cmdline)) &&
    (cgroup === undefined || inCgroup(p, cgroup));
  const owner = (p: ProcessInfo): boolean => owners === undefined || (owners.has(p.uids.real) && owners.has(p.uids.effective));
  return { identity, owner, test: (p) => identity(p) && owner(p) };
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
