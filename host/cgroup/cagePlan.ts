/**
 * The one cgroup plan: for each cage, which cgroup (or systemd unit) is the IDS's and which is
 * the VM's, on cgroup v2, v1 and hybrid hosts. Every component asks this plan, so on a v2 host,
 * where a process sits in exactly one cgroup, the limiter (cpu.max on the IDS group) and page
 * cache attribution (eBPF filtered by that same group's id) use the same group instead of
 * pulling the IDS back and forth. Pure: the host is described by a CgroupLayout.
 *
 * The agent's own groups live only in its delegated subtree (docs/cgroups.md):
 *   v2: <v2 mount><agent's cgroup>/cages/<cage>/{ids,vm}, the agent's processes in <...>/agent
 *       (a group with controllers enabled below it may hold no processes); an agent in the v2
 *       root (no systemd) uses <v2 mount>/offloadcage instead.
 *   v1: <cpu mount>/offloadcage/<cage>/{ids,vm}; the IDS is then tracked for page cache in the
 *       one v2 group <subtree>/ids (v2 has no controllers there, so nothing else uses it).
 */
import { join, relative } from "node:path";
import type { CageSpec, ProcessMatcher } from "../../config/cageConfig.js";
import type { CgroupMounts } from "./cgroupMounts.js";

export type CgroupVersion = 1 | 2;

/** A cgroup directory. own: the agent creates it in its subtree, moves processes in, and removes it. */
export interface CgroupTarget {
  kind: "cgroup";
  dir: string;
  version: CgroupVersion;
  own: boolean;
}

/** A systemd unit whose own properties are set (systemctl set-property --runtime). */
export interface UnitTarget {
  kind: "unit";
  unit: string;
}

/** No cgroup or unit: another back end (xl, virsh, QMP) or nothing can do it; `reason` says which. */
export interface NoTarget {
  kind: "none";
  reason: string;
}

export type CageTarget = CgroupTarget | UnitTarget | NoTarget;

export interface CageCgroupPlan {
  cage: string;
  /** Where the limiter writes idsCap: cpu.max (v2), cpu.cfs_quota_us (v1), or the unit's CPUQuota. */
  idsCpu: CageTarget;
  /** The IDS's cgroup v2 group: eBPF filters on its id and its memory.stat `file` is the cross-check. */
  idsV2: CageTarget;
  /** Where the CPU actuator writes the VM's cap and weight. */
  vmCpu: CageTarget;
  /** Where a cgroup or systemd balloon writes the VM's memory limit. */
  vmMemory: CageTarget;
}

/** The host as the plan needs it. */
export interface CgroupLayout {
  mounts: CgroupMounts;
  /** v2: the folder the agent's groups go in (absolute); null without a cgroup2 mount. */
  v2Subtree: string | null;
  /** v2: the leaf the agent's processes move to before controllers are enabled below its group; null when the subtree holds no agent process. */
  v2AgentLeaf: string | null;
}

/** Name of the leaf the agent's own processes live in, under its service's cgroup. */
export const AGENT_LEAF = "agent";
/** Folder of the agent's groups in the v2 root and in v1 hierarchies. */
export const OWN_FOLDER = "offloadcage";
/** On a hybrid host (cpu on v1), the one v2 group every cage's IDS is tracked in. */
export const TRACKING_GROUP = "ids";

export class CgroupPlanError extends Error {
  override readonly name = "CgroupPlanError";
}

const CAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * The layout from the mounts and the agent's own v2 cgroup (the `0::` line of /proc/self/cgroup).
 * Under systemd with Delegate=yes that group is the service's; after the agent moved itself into
 * its leaf it reads `<service>/agent`, which names the same subtree.
 */
export function cgroupLayout(mounts: CgroupMounts, ownV2Cgroup: string | null): CgroupLayout {
  if (mounts.v2 === null) return { mounts, v2Subtree: null, v2AgentLeaf: null };
  const own = (ownV2Cgroup ?? "/").replace(/\/+$/, "");
  const service = own.endsWith(`/${AGENT_LEAF}`) ? own.slice(0, -AGENT_LEAF.length - 1) : own;
  if (service === "") return { mounts, v2Subtree: join(mounts.v2, OWN_FOLDER), v2AgentLeaf: null };
  const subtree = join(mounts.v2, service);
  return { mounts, v2Subtree: subtree, v2AgentLeaf: join(subtree, AGENT_LEAF) };
}

/** The host's controller for `controller`: v1 when a v1 hierarchy has it, else v2 (null: none mounted). */
export function controllerVersion(mounts: CgroupMounts, controller: "cpu" | "memory"): CgroupVersion | null {
  if (mounts.v1.has(controller)) return 1;
  return mounts.v2 !== null ? 2 : null;
}

/** The agent's own group for a cage's role, where `controller` is: v1 under <mount>/offloadcage, v2 under the subtree. */
export function ownGroup(layout: CgroupLayout, cage: string, role: "ids" | "vm", controller: "cpu" | "memory" | null): CgroupTarget {
  if (!CAGE_NAME.test(cage)) throw new CgroupPlanError(`cage name ${JSON.stringify(cage)} cannot be a cgroup name`);
  const v1Root = controller === null ? undefined : layout.mounts.v1.get(controller);
  if (v1Root !== undefined) return { kind: "cgroup", dir: join(v1Root, OWN_FOLDER, cage, role), version: 1, own: true };
  if (layout.v2Subtree === null) throw new CgroupPlanError(`no cgroup hierarchy${controller === null ? "" : ` with the ${controller} controller`} is mounted`);
  return { kind: "cgroup", dir: join(layout.v2Subtree, "cages", cage, role), version: 2, own: true };
}

const under = (path: string, root: string): boolean => path === root || path.startsWith(`${root}/`);

/**
 * Where a configured cgroup path is for `controller`: a path in that controller's v1 hierarchy is
 * v1; one in another v1 hierarchy maps to the same relative path in the controller's; one in the
 * v2 hierarchy is v2. The v2 mount may be /sys/fs/cgroup itself, so v1 hierarchies are tested first.
 */
export function existingGroup(path: string, mounts: CgroupMounts, controller: "cpu" | "memory"): CgroupTarget {
  const root = mounts.v1.get(controller) ?? null;
  if (root !== null && under(path, root)) return { kind: "cgroup", dir: path, version: 1, own: false };
  for (const other of new Set(mounts.v1.values())) {
    if (under(path, other)) {
      if (root === null) throw new CgroupPlanError(`${path}: in a v1 hierarchy, but no v1 ${controller} hierarchy is mounted`);
      return { kind: "cgroup", dir: join(root, relative(other, path)), version: 1, own: false };
    }
  }
  if (mounts.v2 !== null && under(path, mounts.v2)) return { kind: "cgroup", dir: path, version: 2, own: false };
  throw new CgroupPlanError(`${path}: not in any mounted cgroup hierarchy`);
}

/** The version of the hierarchy a path is in, or null (not under any mount). */
function versionOf(path: string, mounts: CgroupMounts): CgroupVersion | null {
  for (const root of mounts.v1.values()) if (under(path, root)) return 1;
  return mounts.v2 !== null && under(path, mounts.v2) ? 2 : null;
}

/**
 * The one cgroup the matchers select processes by in the hierarchy `inHierarchy` accepts, or
 * null. Moving such processes would change what selects them, so their group is used as found.
 */
function matcherGroup(matchers: readonly ProcessMatcher[], inHierarchy: (dir: string) => boolean, what: string): string | null {
  const dirs = [...new Set(matchers.flatMap((m) => (m.cgroup !== undefined && inHierarchy(m.cgroup) ? [m.cgroup] : [])))];
  if (dirs.length > 1) throw new CgroupPlanError(`${what} selects by several cgroups (${dirs.join(", ")}): one group cannot hold them; select by one cgroup, or name the unit`);
  return dirs[0] ?? null;
}

function attempt(fn: () => CageTarget): CageTarget {
  try {
    return fn();
  } catch (err) {
    if (err instanceof CgroupPlanError) return { kind: "none", reason: err.message };
    throw err;
  }
}

/** The plan of one cage. Never throws for a cage the host cannot serve: that target is `none` with the reason. */
export function planCage(cage: CageSpec, layout: CgroupLayout): CageCgroupPlan {
  const { mounts } = layout;
  const idsUnit = cage.units?.ids ?? null;
  const vmUnit = cage.units?.vm ?? null;
  const prefix = `cage ${cage.name}`;

  const idsCpu = attempt((): CageTarget => {
    if (idsUnit !== null) return { kind: "unit", unit: idsUnit };
    const cpuVersion = controllerVersion(mounts, "cpu");
    if (cpuVersion === null) throw new CgroupPlanError(`${prefix}: no cgroup hierarchy with the cpu controller is mounted`);
    const cpuRoot = cpuVersion === 1 ? (mounts.v1.get("cpu") as string) : (mounts.v2 as string);
    const inCpu = (dir: string): boolean => under(dir, cpuRoot) && versionOf(dir, mounts) === cpuVersion;
    const selected = matcherGroup(cage.ids, inCpu, `${prefix}: ids`);
    if (selected !== null) return { kind: "cgroup", dir: selected, version: cpuVersion, own: false };
    return ownGroup(layout, cage.name, "ids", "cpu");
  });

  const idsV2 = attempt((): CageTarget => {
    if (idsUnit !== null) return { kind: "unit", unit: idsUnit };
    if (layout.v2Subtree === null || mounts.v2 === null) throw new CgroupPlanError(`${prefix}: no cgroup2 hierarchy is mounted`);
    // On a v2-only host the limiter's group is this group: a process is in one v2 group only.
    if (idsCpu.kind === "cgroup" && idsCpu.version === 2) return idsCpu;
    const selected = matcherGroup(cage.ids, (dir) => versionOf(dir, mounts) === 2, `${prefix}: ids`);
    if (selected !== null) return { kind: "cgroup", dir: selected, version: 2, own: false };
    // cpu is bound to v1 (hybrid): v2 only tracks, so every cage's IDS shares one tracking group.
    return { kind: "cgroup", dir: join(layout.v2Subtree, TRACKING_GROUP), version: 2, own: true };
  });

  const vmCpu = attempt((): CageTarget => {
    const explicit = cage.cpu.backend;
    if (explicit?.kind === "virsh") return { kind: "none", reason: `${prefix}: cpu.backend virsh (libvirt domain ${explicit.domain})` };
    if (explicit?.kind === "cgroup") return existingGroup(explicit.path, mounts, "cpu");
    if (cage.vm.kind === "xen") return { kind: "none", reason: `${prefix}: a Xen domain (xl)` };
    // libvirt owns the domain's cgroup: its cap goes through virsh schedinfo (virshCpuBackend.ts).
    if (cage.vm.kind === "libvirt") return { kind: "none", reason: `${prefix}: a libvirt domain (virsh schedinfo)` };
    if (vmUnit !== null) return { kind: "unit", unit: vmUnit };
    if (cage.vm.kind === "cgroup") return existingGroup(cage.vm.path, mounts, "cpu");
    const own = ownGroup(layout, cage.name, "vm", "cpu");
    const root = own.version === 1 ? (mounts.v1.get("cpu") as string) : (mounts.v2 as string);
    const clash = cage.vm.match.find((m) => m.cgroup !== undefined && under(m.cgroup, root) && versionOf(m.cgroup, mounts) === own.version);
    if (clash?.cgroup !== undefined) {
      throw new CgroupPlanError(`${prefix}: vm.match selects by cgroup ${clash.cgroup}, in the cpu hierarchy; moving the VM into ${own.dir} would change what it matches: set cpu.backend {kind: cgroup, path: ${clash.cgroup}} or units.vm`);
    }
    return own;
  });

  const vmMemory = attempt((): CageTarget => {
    const balloon = cage.memory?.balloon;
    if (balloon === undefined) return { kind: "none", reason: `${prefix}: no memory section` };
    const backend = balloon.backend === "auto" ? autoMemoryBackend(cage) : balloon.backend;
    if (backend === "systemd") {
      if (vmUnit === null) throw new CgroupPlanError(`${prefix}: memory.backend systemd needs units.vm`);
      return { kind: "unit", unit: vmUnit };
    }
    if (backend === "cgroup") {
      const path = balloon.cgroup ?? (cage.vm.kind === "cgroup" ? cage.vm.path : null);
      if (path === null) throw new CgroupPlanError(`${prefix}: memory.backend cgroup needs memory.cgroup (or a cgroup VM)`);
      return existingGroup(path, mounts, "memory");
    }
    if (backend === null) throw new CgroupPlanError(`${prefix}: a ${cage.vm.kind} VM has no balloon; set memory.cgroup (its memory cgroup), units.vm or memory.backend`);
    return { kind: "none", reason: `${prefix}: memory.backend ${backend}` };
  });

  return { cage: cage.name, idsCpu, idsV2, vmCpu, vmMemory };
}

/** memory.backend auto: qemu → qmp, xen → xl, libvirt → virsh, a VM with units.vm → systemd, cgroup → cgroup; a process VM needs memory.cgroup. */
export function autoMemoryBackend(cage: CageSpec): "qmp" | "xl" | "virsh" | "systemd" | "cgroup" | null {
  if (cage.vm.kind === "qemu") return "qmp";
  if (cage.vm.kind === "xen") return "xl";
  if (cage.vm.kind === "libvirt") return "virsh";
  if (cage.units?.vm != null) return "systemd";
  if (cage.vm.kind === "cgroup") return "cgroup";
  return cage.memory?.balloon.cgroup != null ? "cgroup" : null;
}

/** The plan of every cage, by name. */
export function planCages(cages: readonly CageSpec[], layout: CgroupLayout): Map<string, CageCgroupPlan> {
  return new Map(cages.map((c) => [c.name, planCage(c, layout)]));
}

/** A target for messages: the directory or the unit. */
export function describeTarget(t: CageTarget): string {
  switch (t.kind) {
    case "cgroup":
      return `cgroup ${t.dir}`;
    case "unit":
      return `unit ${t.unit}`;
    case "none":
      return t.reason;
  }
}
