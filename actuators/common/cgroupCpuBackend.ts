/**
 * cgroup v1 (cpu.cfs_quota_us, cpu.shares) and v2 (cpu.max, cpu.weight) back ends. Either on a
 * cgroup that exists (a `cgroup` VM, or cpu.backend.path), whose settings are restored as found,
 * or on the actuator's own cgroup `offloadcage/<cage>/vm` under the cpu hierarchy, for process
 * and QEMU VMs: the VM's PIDs are moved in (and new ones as they appear), and moved back to where
 * they came from and the cgroup removed on exit.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { parseCgroupMounts, type CgroupMounts } from "../../host/cgroup/cgroupMounts.js";
import { rmdirWithRetry } from "../../host/cgroup/trackingCgroup.js";
import { readCgroupProcs } from "../../host/cgroup/cgroupProcs.js";
import { isGone, parseProcCgroup } from "../../host/proc/processTable.js";
import type { RestoreAction } from "./guardianProtocol.js";
import { CpuBackendError, sharesForWeight, v2WeightFor, type CpuBackend, type CpuTarget } from "./cpuBackend.js";
import { parseV1Period, parseV1Quota, parseV1Shares, parseV2Max, parseV2Weight, quotaUsFor } from "../../host/cgroup/cgroupCpuFiles.js";

export type CgroupVersion = 1 | 2;

export function readMounts(): CgroupMounts {
  return parseCgroupMounts(readFileSync("/proc/self/mountinfo", "utf8"));
}

/**
 * Where a configured cgroup path is for CPU control: a path in the v1 cpu hierarchy is v1, one
 * in the v2 hierarchy is v2, and one in another v1 hierarchy (e.g. memory) maps to the same
 * relative path in the cpu hierarchy. Pure given the mounts.
 */
export function cpuCgroupFor(path: string, mounts: CgroupMounts): { path: string; version: CgroupVersion } {
  const under = (root: string): boolean => path === root || path.startsWith(`${root}/`);
  const cpuRoot = mounts.v1.get("cpu") ?? null;
  if (cpuRoot !== null && under(cpuRoot)) return { path, version: 1 };
  // The v2 mount may be /sys/fs/cgroup itself (pure v2): test v1 hierarchies first, as above.
  for (const root of new Set(mounts.v1.values())) {
    if (under(root)) {
      if (cpuRoot === null) throw new CpuBackendError(`${path}: in a v1 hierarchy, but no v1 cpu hierarchy is mounted`);
      return { path: join(cpuRoot, relative(root, path)), version: 1 };
    }
  }
  if (mounts.v2 !== null && under(mounts.v2)) return { path, version: 2 };
  throw new CpuBackendError(`${path}: not in any mounted cgroup hierarchy`);
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
}

export class CgroupCpuBackend implements CpuBackend {
  readonly kind: string;
  readonly target: string;
  private originals: Originals | null = null;
  private readonly origins = new Map<number, string>();

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

  private readOriginals(): Originals {
    if (!existsSync(this.options.path)) throw new CpuBackendError(`cgroup ${this.options.path} does not exist`);
    if (this.options.version === 2 && !existsSync(this.file("cpu.max"))) {
      const parent = dirname(this.options.path);
      throw new CpuBackendError(
        `cgroup v2 ${this.options.path} has no cpu.max: the cpu controller is not enabled there (${parent}/cgroup.subtree_control lacks "cpu"; on a hybrid host cpu is usually bound to v1: ${readControllers(parent)})`,
      );
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
      if (this.options.version === 2) enableCpuDownTo(this.options.root as string, this.options.path);
      mkdirSync(this.options.path, { recursive: true });
      // Adopting one left by a crash: its PIDs stay, and the cap it had is reset below.
      this.originals = this.readOriginals();
      const unlimited = this.options.version === 1 ? "-1" : "max";
      this.originals.max = unlimited;
      writeText(this.maxFile, unlimited);
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

  async adoptPids(pids: readonly number[]): Promise<void> {
    if (!this.options.own || pids.length === 0) return;
    const inside = new Set(readPids(this.file("cgroup.procs")));
    for (const pid of pids) {
      if (inside.has(pid)) continue;
      try {
        const cg = parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, "utf8"));
        const origin = this.options.version === 1 ? cg.v1.cpu : cg.v2;
        writeFileSync(this.file("cgroup.procs"), String(pid));
        if (origin !== undefined && origin !== null && !this.origins.has(pid)) this.origins.set(pid, origin);
      } catch (err) {
        if (isGone(err) || (err as NodeJS.ErrnoException).code === "ESRCH") continue;
        throw new CpuBackendError(`cannot move PID ${pid} into ${this.options.path}: ${(err as Error).message}`);
      }
    }
    await Promise.resolve();
  }

  async restore(): Promise<void> {
    if (this.originals === null) return;
    if (!this.options.own) {
      writeText(this.maxFile, this.options.version === 2 ? this.originals.max.split(" ")[0]! : this.originals.max);
      writeText(this.weightFile, this.originals.weight);
      return;
    }
    if (!existsSync(this.options.path)) return;
    const root = this.options.root as string;
    for (const pid of readPids(this.file("cgroup.procs"))) {
      const origin = this.origins.get(pid);
      const back = origin !== undefined && existsSync(join(root, origin, "cgroup.procs")) ? join(root, origin, "cgroup.procs") : join(root, "cgroup.procs");
      try {
        writeFileSync(back, String(pid));
      } catch {
        try {
          writeFileSync(join(root, "cgroup.procs"), String(pid));
        } catch {
          /* exited meanwhile */
        }
      }
    }
    rmdirWithRetry(this.options.path);
    // Remove the folders above it that we made, when no other cage still uses them.
    for (let dir = dirname(this.options.path); this.options.ownTop !== undefined && dir.startsWith(this.options.ownTop); dir = dirname(dir)) {
      try {
        rmdirSync(dir);
      } catch {
        break;
      }
    }
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

function readControllers(dir: string): string {
  try {
    return `cgroup.controllers there: "${readFileSync(join(dir, "cgroup.controllers"), "utf8").trim()}"`;
  } catch {
    return "no cgroup.controllers there";
  }
}

/** v2: a controller must be enabled in every ancestor's subtree_control down to the group. */
function enableCpuDownTo(root: string, path: string): void {
  const rel = relative(root, dirname(path)).split("/").filter((p) => p !== "");
  let dir = root;
  for (let i = 0; i <= rel.length; i++) {
    const control = join(dir, "cgroup.subtree_control");
    if (!readFileSync(control, "utf8").split(/\s+/).includes("cpu")) {
      try {
        writeFileSync(control, "+cpu");
      } catch (err) {
        throw new CpuBackendError(`cannot enable the cpu controller in ${control}: ${(err as Error).message} (${readControllers(dir)})`);
      }
    }
    if (i < rel.length) {
      dir = join(dir, rel[i] as string);
      mkdirSync(dir, { recursive: true });
    }
  }
}

/** The actuators' own cgroup for a cage's VM or IDS: `<cpu root>/offloadcage/<cage>/<role>`. */
export function ownCageCgroup(cage: string, role: "vm" | "ids", mounts: CgroupMounts): CgroupCpuBackend {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(cage)) throw new CpuBackendError(`cage name ${JSON.stringify(cage)} cannot be a cgroup name`);
  const { root, version } = ownCpuRoot(mounts);
  return new CgroupCpuBackend({ path: join(root, "offloadcage", cage, role), version, own: true, root, ownTop: join(root, "offloadcage") });
}
