/**
 * What the cgroup plan (cagePlan.ts) needs done on the machine: the host's layout, creating the
 * agent's own groups inside its delegated subtree with the controllers they need, and checking a
 * group before anything is written to it. Every error names the group, file or controller.
 */
import { accessSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { parseCgroupMounts, parseV2CgroupOfProcess, type CgroupMounts } from "./cgroupMounts.js";
import { readCgroupProcs } from "./cgroupProcs.js";
import { cgroupLayout, type CgroupLayout, type CgroupTarget } from "./cagePlan.js";

export type Controller = "cpu" | "memory";

/** A group that does not exist, that the agent may not write, or whose controller is not enabled. */
export class CgroupAccessError extends Error {
  override readonly name = "CgroupAccessError";
}

export function readHostMounts(mountinfo = "/proc/self/mountinfo"): CgroupMounts {
  return parseCgroupMounts(readFileSync(mountinfo, "utf8"));
}

/** This process's cgroup v2 path (`0::` line), or null on a host without cgroup2. */
export function readOwnV2Cgroup(procCgroup = "/proc/self/cgroup"): string | null {
  return parseV2CgroupOfProcess(readFileSync(procCgroup, "utf8"));
}

/** The layout of this host, for this process. */
export function hostCgroupLayout(): CgroupLayout {
  return cgroupLayout(readHostMounts(), readOwnV2Cgroup());
}

function tokens(file: string): string[] {
  try {
    return readFileSync(file, "utf8").split(/\s+/).filter((t) => t !== "");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new CgroupAccessError(`cannot read ${file}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
  }
}

function write(file: string, value: string, what: string): void {
  try {
    writeFileSync(file, value);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new CgroupAccessError(`cannot ${what}: writing ${JSON.stringify(value)} to ${file} failed: ${e.code ?? ""} ${e.message}`.replace("  ", " "));
  }
}

/** The v2 control files each controller brings into a group. */
export const V2_CONTROL_FILES: Record<Controller, readonly string[]> = {
  cpu: ["cpu.max", "cpu.weight"],
  memory: ["memory.high", "memory.max"],
};

/**
 * Checks a group before the agent writes `files` in it: it exists, the files exist (on v2 they
 * appear only when the parent's cgroup.subtree_control enables their controller) and the agent
 * may write them. Throws CgroupAccessError naming the first problem.
 */
export function checkGroup(target: CgroupTarget, files: readonly string[]): void {
  if (!existsSync(target.dir)) throw new CgroupAccessError(`cgroup ${target.dir} does not exist`);
  if (!existsSync(join(target.dir, "cgroup.procs"))) throw new CgroupAccessError(`${target.dir} is not a cgroup directory (no cgroup.procs)`);
  for (const name of files) {
    const file = join(target.dir, name);
    if (!existsSync(file)) {
      const controller = name.split(".")[0] as string;
      if (target.version === 2) {
        const parent = dirname(target.dir);
        throw new CgroupAccessError(
          `cgroup ${target.dir} has no ${name}: the ${controller} controller is not enabled in its parent's subtree (${join(parent, "cgroup.subtree_control")} lacks "${controller}"; ${join(parent, "cgroup.controllers")}: "${safeTokens(join(parent, "cgroup.controllers")).join(" ")}")`,
        );
      }
      throw new CgroupAccessError(`cgroup ${target.dir} has no ${name}: it is not in the v1 ${controller} hierarchy`);
    }
    try {
      accessSync(file, constants.W_OK);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new CgroupAccessError(`cgroup ${target.dir}: the agent may not write ${file} (${e.code ?? e.message}${e.code === "EROFS" ? ": read-only here; under systemd only the delegated subtree is writable" : ""})`);
    }
  }
}

function safeTokens(file: string): string[] {
  try {
    return tokens(file);
  } catch {
    return ["(unreadable)"];
  }
}

const under = (path: string, root: string): boolean => path === root || path.startsWith(`${root}/`);

/**
 * Creates one of the agent's own groups (adopting one left by a crash) with `controllers`
 * enabled for it. v1: mkdir in the controller's hierarchy. v2: only inside the delegated subtree;
 * the controllers are enabled in each cgroup.subtree_control from the subtree down, after the
 * agent's processes moved into their leaf (a group that enables controllers for its children
 * may hold no processes itself).
 */
export function ensureOwnGroup(layout: CgroupLayout, target: CgroupTarget, controllers: readonly Controller[]): void {
  if (!target.own) throw new CgroupAccessError(`${target.dir} is not one of the agent's own groups: it is used as found, never created`);
  if (target.version === 1) {
    mkdirOrThrow(target.dir);
    return;
  }
  const subtree = layout.v2Subtree;
  const v2Root = layout.mounts.v2;
  if (subtree === null || v2Root === null) throw new CgroupAccessError("no cgroup2 hierarchy is mounted");
  if (!under(target.dir, subtree) || target.dir === subtree) throw new CgroupAccessError(`refusing to create ${target.dir}: outside the agent's subtree ${subtree}`);
  if (controllers.length > 0) {
    if (layout.v2AgentLeaf === null) {
      // The agent runs in the v2 root: its folder there is a child of the root, enabled from the root.
      enableIn(v2Root, controllers);
      mkdirOrThrow(subtree);
    } else {
      const refusal = undelegatedReason(subtree);
      if (refusal !== null) throw new CgroupAccessError(`refusing to create groups under ${subtree}: ${refusal}`);
      const available = tokens(join(subtree, "cgroup.controllers"));
      for (const c of controllers) {
        if (!available.includes(c)) {
          throw new CgroupAccessError(
            `the ${c} controller is not enabled in the agent's subtree ${subtree} (its cgroup.controllers: "${available.join(" ")}"; the parent's cgroup.subtree_control lacks "${c}"; under systemd set Delegate=yes on the service)`,
          );
        }
      }
      moveAgentIntoLeaf(subtree, layout.v2AgentLeaf);
    }
    const levels = relative(subtree, dirname(target.dir)).split("/").filter((p) => p !== "");
    let dir = subtree;
    enableIn(dir, controllers);
    for (const level of levels) {
      dir = join(dir, level);
      mkdirOrThrow(dir);
      enableIn(dir, controllers);
    }
  }
  mkdirOrThrow(target.dir);
}

function mkdirOrThrow(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new CgroupAccessError(`cannot create cgroup ${dir}: ${e.code ?? ""} ${e.message}`.replace("  ", " "));
  }
}

/** Writes +controller to dir/cgroup.subtree_control for each controller not yet there. */
function enableIn(dir: string, controllers: readonly Controller[]): void {
  const control = join(dir, "cgroup.subtree_control");
  const enabled = tokens(control);
  for (const c of controllers) {
    if (enabled.includes(c)) continue;
    write(control, `+${c}`, `enable the ${c} controller below ${dir} (${join(dir, "cgroup.controllers")}: "${safeTokens(join(dir, "cgroup.controllers")).join(" ")}")`);
  }
}

/**
 * Why a group is known not to be delegated to the agent, or null. A login session's scope or
 * systemd's init.scope holds other processes, which must not be moved into the agent's leaf.
 */
export function undelegatedReason(subtree: string): string | null {
  if (/\/session-[^/]+\.scope$/.test(subtree)) return "it is a login session's scope, not delegated to the agent (run it as offloadcage.service, which has Delegate=yes)";
  if (/\/init\.scope$/.test(subtree)) return "it is systemd's init.scope";
  return null;
}

/**
 * Moves every process of the agent's service group into its leaf, so controllers can be enabled
 * below the group. Each agent process does this before it creates a group with controllers;
 * processes the agent starts later are born in the leaf.
 */
export function moveAgentIntoLeaf(subtree: string, leaf: string): number {
  const pids = readCgroupProcs(subtree);
  if (pids.length === 0) return 0;
  mkdirOrThrow(leaf);
  let moved = 0;
  for (const pid of pids) {
    try {
      writeFileSync(join(leaf, "cgroup.procs"), String(pid));
      moved++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ESRCH") continue; // exited meanwhile
      throw new CgroupAccessError(`cannot move the agent's process ${pid} into its leaf ${leaf}: ${(err as Error).message}`);
    }
  }
  return moved;
}
