/**
 * The cgroup v2 group whose tasks the page cache collector tracks (bpftrace filters on
 * `cgroup == cgroupid(path)`). On this hybrid host v2 carries no controllers, so moving a
 * process there changes nothing but what we trace.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseCgroupMounts, parseV2CgroupOfProcess } from "./cgroupMounts.js";
import { moveIntoCgroup, readCgroupProcs } from "./cgroupProcs.js";

export interface TrackingCgroup {
  /** Absolute directory, the `cgroupV2Path` to give the collector. */
  readonly path: string;
  readonly procsFile: string;
  /** Moves a process (all its threads) into the group; remembers where it was, for remove(). */
  addPid(pid: number): void;
  /** Processes in the group now. */
  pids(): number[];
  /** Moves the processes still inside back where they came from (else to the v2 root) and removes the group. */
  remove(): void;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The cgroup v2 mount point of this host; throws if there is none. */
export function cgroupV2Root(): string {
  const root = parseCgroupMounts(readFileSync("/proc/self/mountinfo", "utf8")).v2;
  if (root === null) throw new Error("tracking cgroup: no cgroup2 hierarchy is mounted (need /sys/fs/cgroup or /sys/fs/cgroup/unified)");
  return root;
}

/**
 * Creates (or adopts, after a crash) `<v2 root>/<parent>/<name>`.
 * @param parent folder under the v2 root; default "offloadcage".
 */
export function createTrackingCgroup(name: string, parent = "offloadcage"): TrackingCgroup {
  if (!NAME.test(name)) throw new Error(`tracking cgroup: name must match ${NAME.source}, got ${JSON.stringify(name)}`);
  if (parent !== "" && !parent.split("/").every((p) => NAME.test(p))) {
    throw new Error(`tracking cgroup: parent must be folder names matching ${NAME.source}, got ${JSON.stringify(parent)}`);
  }
  const root = cgroupV2Root();
  const parentDir = parent === "" ? root : join(root, parent);
  const path = join(parentDir, name);
  mkdirSync(path, { recursive: true });
  const procsFile = join(path, "cgroup.procs");
  const origins = new Map<number, string>();

  const pids = (): number[] => readCgroupProcs(path);

  return {
    path,
    procsFile,
    addPid(pid: number): void {
      if (!Number.isInteger(pid) || pid <= 0) throw new Error(`tracking cgroup: not a PID: ${String(pid)}`);
      let origin: string | null;
      try {
        origin = parseV2CgroupOfProcess(readFileSync(`/proc/${pid}/cgroup`, "utf8"));
      } catch {
        throw new Error(`tracking cgroup: no process with PID ${pid}`);
      }
      moveIntoCgroup(procsFile, pid);
      if (origin !== null && !origins.has(pid)) origins.set(pid, origin);
    },
    pids,
    remove(): void {
      // Only the parent is ours to remove above the group (another tracking group may live there).
      releaseGroup(path, root, (pid) => origins.get(pid), parent === "" ? null : parentDir);
    },
  };
}

/**
 * Empties one of the agent's own groups and removes it: each process goes back to the group it
 * came from (`originOf`, a path under `root`) while that exists, else to `root`; then the empty
 * folders above it are removed up to and including `top` (null: none), stopping at the first one
 * another group or process still uses.
 */
export function releaseGroup(dir: string, root: string, originOf: (pid: number) => string | undefined, top: string | null): void {
  if (!existsSync(dir)) return;
  const rootProcs = join(root, "cgroup.procs");
  for (const pid of readCgroupProcs(dir)) {
    const origin = originOf(pid);
    const originProcs = origin === undefined ? null : join(root, origin, "cgroup.procs");
    try {
      writeFileSync(originProcs !== null && existsSync(originProcs) ? originProcs : rootProcs, String(pid));
    } catch {
      // Exited meanwhile, or the origin refuses it: the root always takes it.
      try {
        writeFileSync(rootProcs, String(pid));
      } catch {
        /* gone */
      }
    }
  }
  rmdirWithRetry(dir);
  if (top === null) return;
  for (let d = dirname(dir); d === top || d.startsWith(`${top}/`); d = dirname(d)) {
    try {
      rmdirSync(d);
    } catch {
      return;
    }
  }
}

/** A cgroup can be briefly busy after its last task left (exit is asynchronous); retry a little. */
export function rmdirWithRetry(path: string, attempts = 50): void {
  for (let i = 0; ; i++) {
    try {
      rmdirSync(path);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return;
      if (i >= attempts || (code !== "EBUSY" && code !== "ENOTEMPTY")) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}
