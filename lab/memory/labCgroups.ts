/**
 * The lab's own cgroups (v1 memory, on this hybrid host):
 *  - the IDS's accounting group: the lab's independent measure of the IDS's memory, VmRSS of
 *    its processes plus the page cache the kernel charged to the group (first touch, uncharged
 *    on eviction: the same rule as the agent's eBPF attribution, measured another way);
 *  - the process VM: a v1 memory cgroup whose memory.limit_in_bytes the balloon actuator moves.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseCgroupMounts } from "../../host/cgroup/cgroupMounts.js";
import { parseProcStatus } from "../../host/proc/procStatus.js";
import { createMemoryAccountingGroup, type MemoryAccountingGroup } from "../../collectors/pagecache/memoryCgroupCrossCheck.js";
import { rmdirWithRetry, type TrackingCgroup } from "../../host/cgroup/trackingCgroup.js";

function procsOf(procsFile: string): number[] {
  return readFileSync(procsFile, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map(Number);
}

/** Sum of VmRSS over the PIDs (a process that exits meanwhile counts 0). */
export function sumVmRss(pids: readonly number[]): number {
  let sum = 0;
  for (const pid of pids) {
    try {
      sum += parseProcStatus(pid, readFileSync(`/proc/${pid}/status`, "utf8")).vmRssBytes;
    } catch {
      // Exited between listing and reading.
    }
  }
  return sum;
}

export interface IdsAccounting {
  group: MemoryAccountingGroup;
  procsFile: string;
  /** VmRSS of the processes in the group + the group's charged page cache, bytes. */
  idsBytes(): { rssBytes: number; cacheBytes: number; totalBytes: number };
  remove(): void;
}

export function createIdsAccounting(name: string, tracking: TrackingCgroup): IdsAccounting {
  const group = createMemoryAccountingGroup(name, tracking);
  return {
    group,
    procsFile: group.procsFile,
    idsBytes() {
      const rssBytes = sumVmRss(procsOf(group.procsFile));
      const cacheBytes = group.cachedBytes();
      return { rssBytes, cacheBytes, totalBytes: rssBytes + cacheBytes };
    },
    remove: () => group.remove(),
  };
}

export interface ProcessVmGroup {
  path: string;
  procsFile: string;
  /** memory.limit_in_bytes as the kernel has it now. */
  limitBytes(): number;
  /** Bytes charged to the VM (memory.usage_in_bytes). */
  usageBytes(): number;
  remove(): void;
}

/** A v1 memory cgroup for the process VM, its limit set to the base. */
export function createProcessVmGroup(name: string, baseBytes: number): ProcessVmGroup {
  const v1 = parseCgroupMounts(readFileSync("/proc/self/mountinfo", "utf8")).v1.get("memory");
  if (v1 === undefined) throw new Error("lab memory: the process VM needs the cgroup v1 memory controller (memory.limit_in_bytes), which is not mounted");
  const path = join(v1, name);
  mkdirSync(path);
  writeFileSync(join(path, "memory.limit_in_bytes"), String(baseBytes));
  const read = (file: string): number => Number(readFileSync(join(path, file), "utf8").trim());
  return {
    path,
    procsFile: join(path, "cgroup.procs"),
    limitBytes: () => read("memory.limit_in_bytes"),
    usageBytes: () => read("memory.usage_in_bytes"),
    remove(): void {
      try {
        writeFileSync(join(path, "memory.force_empty"), "0");
      } catch {
        /* tasks still inside or already gone: rmdir decides */
      }
      rmdirWithRetry(path);
    },
  };
}

