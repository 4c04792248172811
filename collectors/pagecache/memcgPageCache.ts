/**
 * Page cache from the kernel's own accounting when eBPF cannot attach (cgroup v2 only): each
 * tracked group's memory.stat `file`, the page cache the kernel charged to it. memcg ownership
 * charges a page to the cgroup of the task that first brought it in, like the eBPF attribution,
 * so on a v2 host where each cage's IDS has its own group this is the IDS's page cache; pages
 * first touched by someone else stay charged to them (docs/cgroups.md).
 * The kernel knows the group, not the process: the group's figure is reported under its lowest
 * PID (the pipeline sums a cage's IDS processes, so the cage total is the group's). Inserted
 * bytes are not known either: they are reported equal to the resident bytes.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { PageCacheBatch, ProcessPageCache } from "../../protocol/rawBatches.js";
import { parseMemoryStat } from "../../host/cgroup/cgroupMounts.js";
import { readCgroupProcs } from "../../host/cgroup/cgroupProcs.js";

/** Why the fallback cannot serve these groups, or null when every one has memory.stat. */
export function memcgFallbackProblem(groups: readonly string[]): string | null {
  if (groups.length === 0) return "no tracked group";
  const missing = groups.filter((g) => !existsSync(join(g, "memory.stat")));
  if (missing.length > 0) return `no memory.stat in ${missing.join(", ")} (the v2 memory controller is not enabled there)`;
  return null;
}

/** One batch: each group's memory.stat `file` under its lowest PID; an empty group or an unreadable one is left out. */
export function memcgBatch(groups: readonly string[], sampledAtNs: bigint): PageCacheBatch {
  const processes: ProcessPageCache[] = [];
  for (const g of groups) {
    try {
      const pids = readCgroupProcs(g);
      if (pids.length === 0) continue;
      const file = parseMemoryStat(readFileSync(join(g, "memory.stat"), "utf8")).get("file");
      if (file === undefined) continue;
      processes.push({ pid: Math.min(...pids), insertedBytes: file, residentBytes: file });
    } catch {
      // Removed meanwhile: nothing to report for it this time.
    }
  }
  return { sampledAtNs, untrackedInserts: 0, processes };
}

/** Publishes memcgBatch every intervalMs until stopped. */
export class MemcgPageCacheSource {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly groups: readonly string[],
    private readonly onBatch: (batch: PageCacheBatch) => void,
  ) {
    const problem = memcgFallbackProblem(groups);
    if (problem !== null) throw new Error(`page cache from memory.stat: ${problem}`);
  }

  start(intervalMs: number): void {
    const tick = (): void => this.onBatch(memcgBatch(this.groups, process.hrtime.bigint()));
    tick();
    this.timer = setInterval(tick, intervalMs);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}

export interface MemcgCrossCheck {
  /** eBPF's resident page cache of the processes now in the groups. */
  ebpfResidentBytes: number;
  /** The kernel's charge to the same groups (memory.stat `file`). */
  memcgFileBytes: number;
}

/**
 * The cross-check of a batch against the kernel: over the groups that have memory.stat, eBPF's
 * resident bytes of their processes beside their `file`. Null when no group has memory.stat.
 */
export function memcgCrossCheck(batch: PageCacheBatch, groups: readonly string[]): MemcgCrossCheck | null {
  const resident = new Map(batch.processes.map((p) => [p.pid, p.residentBytes]));
  let ebpfResidentBytes = 0;
  let memcgFileBytes = 0;
  let any = false;
  for (const g of groups) {
    try {
      const file = parseMemoryStat(readFileSync(join(g, "memory.stat"), "utf8")).get("file");
      if (file === undefined) continue;
      const ebpf = readCgroupProcs(g).reduce((sum, pid) => sum + (resident.get(pid) ?? 0), 0);
      ebpfResidentBytes += ebpf;
      memcgFileBytes += file;
      any = true;
    } catch {
      // No memory controller there, or the group is gone.
    }
  }
  return any ? { ebpfResidentBytes, memcgFileBytes } : null;
}
