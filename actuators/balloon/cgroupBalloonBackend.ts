/**
 * Balloon back end for a "process VM" (a VM that is a set of processes in a memory cgroup): the
 * target becomes the cgroup's memory limit (platform-facts §5.4).
 *  - v1 (`/sys/fs/cgroup/memory/...`): `memory.limit_in_bytes`; the kernel rounds it down to pages
 *    and may refuse (EBUSY) when it cannot reclaim below the new limit.
 *  - v2 (a cgroup2 hierarchy): `memory.max` (hard limit, OOM-kills in the cgroup beyond it) or
 *    `memory.high` (throttles and reclaims, never OOM-kills). These files exist only when the
 *    memory controller is enabled for the cgroup (the parent's `cgroup.subtree_control`).
 * The VM's "actual" is the limit read back.
 */
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { RestoreAction } from "../common/guardianProtocol.js";
import { BalloonBackendError, type BalloonBackend } from "./balloonBackend.js";

export type CgroupV2LimitFile = "memory.max" | "memory.high";

/** v1 when the path is in the v1 memory hierarchy, else v2 (hybrid `unified/` or a pure-v2 host). */
export function cgroupMemoryVersion(path: string): 1 | 2 {
  return /^\/sys\/fs\/cgroup\/memory(\/|$)/.test(path) ? 1 : 2;
}

/** Parses a limit file: a byte count, or `max` (v2 unlimited) as null. */
export function parseCgroupLimit(text: string, file: string): number | null {
  const t = text.trim();
  if (t === "max") return null;
  if (!/^\d+$/.test(t)) throw new BalloonBackendError(`${file}: expected a byte count or "max", got ${JSON.stringify(t.slice(0, 40))}`, "bad-output");
  return Number(t);
}

export class CgroupBalloonBackend implements BalloonBackend {
  readonly kind: string;
  readonly target: string;
  readonly limitFile: string;

  constructor(readonly cgroupPath: string, v2File: CgroupV2LimitFile = "memory.max") {
    if (!cgroupPath.startsWith("/sys/fs/cgroup/")) throw new RangeError(`cgroup path must be under /sys/fs/cgroup, got ${JSON.stringify(cgroupPath)}`);
    const version = cgroupMemoryVersion(cgroupPath);
    this.kind = version === 1 ? "cgroup-v1" : "cgroup-v2";
    this.limitFile = join(cgroupPath, version === 1 ? "memory.limit_in_bytes" : v2File);
    this.target = `cgroup ${cgroupPath} (${version === 1 ? "memory.limit_in_bytes" : v2File})`;
  }

  async apply(bytes: number): Promise<void> {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`${this.target}: limit must be a positive integer of bytes, got ${bytes}`);
    try {
      await writeFile(this.limitFile, String(bytes));
    } catch (err) {
      throw this.ioError(err, `write ${bytes} to`);
    }
  }

  async readActual(): Promise<number | null> {
    let text: string;
    try {
      text = await readFile(this.limitFile, "utf8");
    } catch (err) {
      throw this.ioError(err, "read");
    }
    return parseCgroupLimit(text, this.limitFile);
  }

  /** The limit file as found (a byte count or `max`), and the fail-safe limit. */
  async restoreAction(failsafeBytes: number): Promise<RestoreAction> {
    let text: string;
    try {
      text = (await readFile(this.limitFile, "utf8")).trim();
    } catch (err) {
      throw this.ioError(err, "read");
    }
    parseCgroupLimit(text, this.limitFile);
    return { op: "write", path: this.limitFile, value: text, failsafe: String(failsafeBytes) };
  }

  private ioError(err: unknown, what: string): BalloonBackendError {
    const e = err as NodeJS.ErrnoException;
    // cgroupfs cannot create files: writing a missing control file fails with EACCES, not ENOENT.
    if (e.code === "ENOENT" || !existsSync(this.limitFile)) {
      const hint = this.kind === "cgroup-v2"
        ? "the cgroup does not exist, or the v2 memory controller is not enabled for it (see the parent's cgroup.subtree_control; on a hybrid host memory may be bound to v1)"
        : "the cgroup does not exist";
      return new BalloonBackendError(`${this.target}: cannot ${what} ${this.limitFile}: ${hint}`, "unreachable");
    }
    if (e.code === "EBUSY") return new BalloonBackendError(`${this.target}: cannot ${what} ${this.limitFile}: EBUSY (the kernel could not reclaim the cgroup's memory below the new limit)`, "command-failed");
    return new BalloonBackendError(`${this.target}: cannot ${what} ${this.limitFile}: ${e.message}`, "io");
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
