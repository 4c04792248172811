/**
 * cgroup v1 (cpu.cfs_quota_us, cpu.shares) and v2 (cpu.max, cpu.weight) back ends, on the group
 * the cgroup plan (host/cgroup/cagePlan.ts) names. Either a group that exists (a `cgroup` VM,
 * cpu.backend.path, or the group an IDS matcher selects by), whose settings are restored as
 * found, or one of the agent's own groups (v1 `<cpu>/offloadcage/<cage>/<role>`, v2 in its
 * delegated subtree `…/cages/<cage>/<role>`): the processes are moved in (and new ones as they
 * appear), moved back to where they came from, and the group removed on exit.
 *
 * Adoption is by process identity (PID, start time): a PID is moved in only if it still has the
 * start time its aggregate gave, checked immediately before the write, and a process we moved in
 * that is no longer a member (left the cage) goes back out to where it came from.
 */
import type { Logger } from "pino";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseCgroupMounts, type CgroupMounts } from "../../host/cgroup/cgroupMounts.js";
import { releaseGroup } from "../../host/cgroup/trackingCgroup.js";
import { moveIntoCgroup, readCgroupProcs } from "../../host/cgroup/cgroupProcs.js";
import { cgroupLayout, existingGroup, OWN_FOLDER, ownGroup, CgroupPlanError, type CageTarget, type CgroupLayout, type CgroupTarget } from "../../host/cgroup/cagePlan.js";
import { checkGroup, ensureOwnGroup, readOwnV2Cgroup } from "../../host/cgroup/cageGroups.js";
import type { UnitClient } from "../../host/systemd/unitProperties.js";
import { isGone, parseProcCgroup } from "../../host/proc/processTable.js";
import { PidReuseCounter, readStartTime, type ProcessIdentity } from "../../host/proc/processIdentity.js";
import type { RestoreAction } from "./guardianProtocol.js";
import { CpuBackendError, sharesForWeight, v2WeightFor, type CpuBackend, type CpuTarget } from "./cpuBackend.js";
import { SystemdCpuBackend } from "./systemdCpuBackend.js";
import { parseV1Period, parseV1Quota, parseV1Shares, parseV2Max, parseV2Weight, quotaUsFor } from "../../host/cgroup/cgroupCpuFiles.js";

export type { CgroupVersion } from "../../host/cgroup/cagePlan.js";
type CgroupVersion = 1 | 2;

export function readMounts(): CgroupMounts {
  return parseCgroupMounts(readFileSync("/proc/self/mountinfo", "utf8"));
}

/** The layout of this host for this process: the plan's input. */
export function readLayout(mounts = readMounts()): CgroupLayout {
  return cgroupLayout(mounts, mounts.v2 === null ? null : readOwnV2Cgroup());
}

/**
 * Where a configured cgroup path is for CPU control (the plan's rule: v1 cpu, another v1
 * hierarchy mapped to cpu, or v2). Pure given the mounts.
 */
export function cpuCgroupFor(path: string, mounts: CgroupMounts): { path: string; version: CgroupVersion } {
  try {
    const t = existingGroup(path, mounts, "cpu");
    return { path: t.dir, version: t.version };
  } catch (err) {
    if (err instanceof CgroupPlanError) throw new CpuBackendError(err.message);
    throw err;
  }
}

/** The root under which the actuator makes its own cgroups for CPU: v1 cpu if mounted, else v2. */
export function ownCpuRoot(mounts: CgroupMounts): { root: string; version: CgroupVersion } {
  const cpuRoot = mounts.v1.get("cpu");
  if (cpuRoot !== undefined) return { root: cpuRoot, version: 1 };
  if (mounts.v2 !== null) return { root: mounts.v2, version: 2 };
  throw new CpuBackendError("no cgroup hierarchy with the cpu controller is mounted");
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new CpuBackendError(`cannot read ${path}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
  }
}

function writeText(path: string, value: string): void {
  try {
    writeFileSync(path, value);
  } catch (err) {
    throw new CpuBackendError(`cannot write ${JSON.stringify(value)} to ${path}: ${(err as Error).message}`);
  }
}

interface Originals {
  /** v1: cpu.cfs_quota_us text; v2: cpu.max text. */
  max: string;
  /** v1: cpu.shares; v2: cpu.weight. */
  weight: string;
  periodUs: number;
}

export interface CgroupCpuBackendOptions {
  path: string;
  version: CgroupVersion;
  /** Ours: created by prepare(), PIDs adopted, removed by restore(). */
  own: boolean;
  /** For own cgroups: the hierarchy root (where PIDs go back to when their origin is gone). */
  root?: string;
  /** The topmost folder we created (removed by restore when empty). */
  ownTop?: string;
  /** For own v2 groups: the layout whose delegated subtree they are made in (default: this host's). */
  layout?: CgroupLayout;
  /** Where skipped moves of reused PIDs are reported (rate-limited); without it they are only counted. */
  logger?: Logger;
}

/** A process we moved into our cgroup: who it is and the cgroup (path in the hierarchy) it came from. */
interface Adopted {
  startTime: number;
  origin: string | null;
}

export class CgroupCpuBackend implements CpuBackend {
  readonly kind: string;
  readonly target: string;
  private originals: Originals | null = null;
  /** PID → the process we moved in; its origin is where it goes back to. */
  private readonly adopted = new Map<number, Adopted>();
  /** Moves not made because the PID now names another process. */
  readonly reusedPids = new PidReuseCounter();
  /** Processes moved back out because they left the cage. */
  movedOut = 0;

  constructor(private readonly options: CgroupCpuBackendOptions) {
    this.kind = options.version === 1 ? "cgroup-v1" : "cgroup-v2";
    this.target = options.path;
  }

  private file(name: string): string {
    return join(this.options.path, name);
  }

  private get maxFile(): string {
    return this.file(this.options.version === 1 ? "cpu.cfs_quota_us" : "cpu.max");
  }

  private get weightFile(): string {
    return this.file(this.options.version === 1 ? "cpu.shares" : "cpu.weight");
  }

  async open(): Promise<void> {
    if (this.options.own && !existsSync(this.options.path)) return; // made by prepare(); nothing to read yet
    this.originals = this.readOriginals();
    await Promise.resolve();
  }

  private get groupTarget(): CgroupTarget {
    return { kind: "cgroup", dir: this.options.path, version: this.options.version, own: this.options.own };
  }

  private readOriginals(): Originals {
    // Exists, the cpu controller is enabled for it, and we may write its files: else an error naming which.
    try {
      checkGroup(this.groupTarget, this.options.version === 1 ? ["cpu.cfs_quota_us", "cpu.shares"] : ["cpu.max", "cpu.weight"]);
    } catch (err) {
      throw new CpuBackendError((err as Error).message);
    }
    if (this.options.version === 1) {
      const max = readText(this.maxFile);
      parseV1Quota(max, this.maxFile);
      const weight = readText(this.weightFile);
      parseV1Shares(weight, this.weightFile);
      return { max: max.trim(), weight: weight.trim(), periodUs: parseV1Period(readText(this.file("cpu.cfs_period_us")), this.file("cpu.cfs_period_us")) };
    }
    const max = readText(this.maxFile);
    const { periodUs } = parseV2Max(max, this.maxFile);
    const weight = readText(this.weightFile);
    parseV2Weight(weight, this.weightFile);
    return { max: max.trim(), weight: weight.trim(), periodUs };
  }

  async prepare(): Promise<void> {
    if (this.options.own) {
      try {
        if (this.options.version === 2) ensureOwnGroup(this.options.layout ?? readLayout(), this.groupTarget, ["cpu"]);
        else mkdirSync(this.options.path, { recursive: true });
      } catch (err) {
        throw new CpuBackendError((err as Error).message);
      }
      // Our group's original is "no limit". One left by a crash keeps the fail-safe its guardian
      // wrote until apply() replaces it: resetting it here would leave the VM uncapped in between.
      this.originals = { ...this.readOriginals(), max: this.options.version === 1 ? "-1" : "max" };
    }
    if (this.originals === null) this.originals = this.readOriginals();
    await Promise.resolve();
  }

  restoreActions(failsafeCapPct?: number): RestoreAction[] {
    const orig = this.requireOriginals();
    const failsafe = failsafeCapPct === undefined ? {} : { failsafe: String(quotaUsFor(failsafeCapPct, orig.periodUs)) };
    return [
      { op: "write", path: this.maxFile, value: this.options.version === 2 ? orig.max.split(" ")[0]! : orig.max, ...failsafe },
      { op: "write", path: this.weightFile, value: orig.weight },
    ];
  }

  isInPlace(t: CpuTarget): boolean {
    const orig = this.requireOriginals();
    const { quotaUs } = this.readCurrent();
    if (t.capPct === null) return this.options.version === 1 ? String(quotaUs ?? -1) === orig.max : quotaUs === parseV2Max(orig.max).quotaUs;
    return quotaUs === quotaUsFor(t.capPct, orig.periodUs);
  }

  private requireOriginals(): Originals {
    if (this.originals === null) throw new CpuBackendError(`cgroup ${this.options.path}: not opened`);
    return this.originals;
  }

  async apply(t: CpuTarget): Promise<void> {
    const orig = this.requireOriginals();
    if (this.options.version === 1) {
      writeText(this.maxFile, t.capPct === null ? orig.max : String(quotaUsFor(t.capPct, orig.periodUs)));
      if (t.weight !== null) writeText(this.weightFile, String(sharesForWeight(t.weight)));
    } else {
      // Only MAX is written: the period stays as found.
      writeText(this.maxFile, t.capPct === null ? orig.max.split(" ")[0]! : String(quotaUsFor(t.capPct, orig.periodUs)));
      if (t.weight !== null) writeText(this.weightFile, String(v2WeightFor(t.weight)));
    }
    await Promise.resolve();
  }

  /** Settings as they are now: quota µs (null = unlimited), period µs, native weight. */
  readCurrent(): { quotaUs: number | null; periodUs: number; weight: number } {
    if (this.options.version === 1) {
      return { quotaUs: parseV1Quota(readText(this.maxFile)), periodUs: parseV1Period(readText(this.file("cpu.cfs_period_us"))), weight: parseV1Shares(readText(this.weightFile)) };
    }
    const m = parseV2Max(readText(this.maxFile));
    return { quotaUs: m.quotaUs, periodUs: m.periodUs, weight: parseV2Weight(readText(this.weightFile)) };
  }

  /**
   * Makes our cgroup hold exactly the processes given (own cgroups only): members not inside are
   * moved in, and processes we moved in earlier that are no longer members are moved back out.
   * Each move first checks the PID still has the start time given (or recorded at adoption).
   */
  async adoptPids(members: readonly ProcessIdentity[]): Promise<void> {
    if (!this.options.own) return;
    const wanted = new Map(members.map((p) => [p.pid, p.startTime]));
    for (const [pid, a] of [...this.adopted]) {
      if (wanted.get(pid) === a.startTime) continue;
      this.adopted.delete(pid);
      this.moveBack({ pid, startTime: a.startTime }, a.origin);
    }
    if (members.length === 0) return;
    const inside = new Set(readPids(this.file("cgroup.procs")));
    for (const p of members) {
      if (inside.has(p.pid) && this.adopted.get(p.pid)?.startTime === p.startTime) continue;
      this.moveIn(p, inside.has(p.pid));
    }
    await Promise.resolve();
  }

  /** The one place a process enters this group: checked to be the process meant, its origin remembered for restore(). */
  private moveIn(p: ProcessIdentity, alreadyInside: boolean): void {
    try {
      const cg = parseProcCgroup(readFileSync(`/proc/${p.pid}/cgroup`, "utf8"));
      const origin = (this.options.version === 1 ? cg.v1.cpu : cg.v2) ?? null;
      if (!this.stillSame(p, "move into")) return;
      if (!alreadyInside) moveIntoCgroup(this.file("cgroup.procs"), p.pid);
      // Already inside (left by a crashed run, or a child of an adopted process): its origin is not known.
      if (!this.adopted.has(p.pid)) this.adopted.set(p.pid, { startTime: p.startTime, origin: alreadyInside ? null : origin });
    } catch (err) {
      if (isGone(err) || (err as NodeJS.ErrnoException).code === "ESRCH") return;
      throw new CpuBackendError(`cannot move PID ${p.pid} into ${this.options.path}: ${(err as Error).message}`);
    }
  }

  /** True when the PID still has this start time; a reused PID is counted and reported (rate-limited). */
  private stillSame(p: ProcessIdentity, action: string): boolean {
    const now = readStartTime(p.pid);
    if (now === p.startTime) return true;
    if (now !== null && this.reusedPids.note()) {
      this.options.logger?.warn({ pid: p.pid, startTime: p.startTime, nowStartTime: now, cgroup: this.options.path, skipped: this.reusedPids.skipped }, `PID reused by another process: not moved (${action})`);
    }
    return false;
  }

  /**
   * A process that left the cage goes back to the cgroup it came from if that still exists, else
   * to the hierarchy's root. Only if it is still in our cgroup: it may have been moved elsewhere since.
   */
  private moveBack(p: ProcessIdentity, origin: string | null): void {
    const root = this.options.root as string;
    if (!readPids(this.file("cgroup.procs")).includes(p.pid)) return;
    if (!this.stillSame(p, "move back out")) return;
    const back = origin !== null && existsSync(join(root, origin, "cgroup.procs")) ? join(root, origin) : root;
    try {
      writeFileSync(join(back, "cgroup.procs"), String(p.pid));
      this.movedOut++;
    } catch (err) {
      if (isGone(err) || (err as NodeJS.ErrnoException).code === "ESRCH") return;
      throw new CpuBackendError(`cannot move PID ${p.pid} back out of ${this.options.path} to ${back}: ${(err as Error).message}`);
    }
  }

  async restore(): Promise<void> {
    if (this.originals === null) return;
    if (!this.options.own) {
      writeText(this.maxFile, this.options.version === 2 ? this.originals.max.split(" ")[0]! : this.originals.max);
      writeText(this.weightFile, this.originals.weight);
      return;
    }
    // The folders above it that we made go too, when no other cage still uses them.
    releaseGroup(this.options.path, this.options.root as string, (pid) => this.adopted.get(pid)?.origin ?? undefined, this.options.ownTop ?? null);
    await Promise.resolve();
  }
}

export function readPids(procsFile: string): number[] {
  try {
    return readCgroupProcs(dirname(procsFile));
  } catch (err) {
    throw new CpuBackendError((err as Error).message);
  }
}

/**
 * The agent's own group for a cage's VM or IDS, where the plan puts it: v1
 * `<cpu>/offloadcage/<cage>/<role>`, v2 `<delegated subtree>/cages/<cage>/<role>`.
 */
export function ownCageCgroup(cage: string, role: "vm" | "ids", mounts: CgroupMounts, layout: CgroupLayout = readLayout(mounts), logger?: Logger): CgroupCpuBackend {
  let t: CgroupTarget;
  try {
    t = ownGroup(layout, cage, role, "cpu");
  } catch (err) {
    throw new CpuBackendError((err as Error).message);
  }
  return cgroupBackendFor(t, layout, logger);
}

function cgroupBackendFor(t: CgroupTarget, layout: CgroupLayout, logger?: Logger): CgroupCpuBackend {
  if (!t.own) return new CgroupCpuBackend({ path: t.dir, version: t.version, own: false });
  const root = t.version === 1 ? (layout.mounts.v1.get("cpu") as string) : (layout.mounts.v2 as string);
  // v2: the subtree is the service's own group (never removed) unless it is our folder in the root.
  const ownTop = t.version === 1 ? join(root, OWN_FOLDER) : layout.v2AgentLeaf === null ? (layout.v2Subtree as string) : join(layout.v2Subtree as string, "cages");
  return new CgroupCpuBackend({ path: t.dir, version: t.version, own: true, root, ownTop, layout, ...(logger ? { logger } : {}) });
}

/**
 * The CPU back end of a plan target: a cgroup (own or as found) or a systemd unit's CPUQuota and
 * CPUWeight. A `none` target has no CPU back end here: its reason is the error.
 */
export function cpuBackendForTarget(t: CageTarget, layout: CgroupLayout, units: () => UnitClient, logger?: Logger): CpuBackend {
  switch (t.kind) {
    case "cgroup":
      return cgroupBackendFor(t, layout, logger);
    case "unit":
      return new SystemdCpuBackend(t.unit, units());
    case "none":
      throw new CpuBackendError(`no cgroup for CPU control: ${t.reason}`);
  }
}
