/**
 * The real membership source: scans /proc and resolves every cage's matchers
 * (host/proc). Conflicts are logged when they first appear, not on every resolution.
 * Cages with vm.kind libvirt, and libvirt IDS-VMs, get a LibvirtDomainWatcher (host/libvirt) each, started on the
 * first resolution; their state changes are logged once each, never per window.
 * QEMU VMs (vm.kind qemu, libvirt) also get their host threads classified on every resolution
 * (host/libvirt/qemuThreads.ts), so the aggregator splits their CPU by kind.
 *
 * Between scans, resolveNewPids() resolves the PIDs a CPU window names that the last scan did
 * not see (a restarted IDS, a new child of one), so the aggregate of that very window names
 * them: each is read alone (ProcessScanner.readOne) and the cages are resolved against the last
 * scan's table plus the processes so read. Bounded: at most NEW_PID_READS_PER_WINDOW reads per
 * window, and each PID at most NEW_PID_READS_PER_PID times until the next scan (a forked child
 * may not have exec'd or entered its cgroup yet at the first read).
 */
import type { Logger } from "pino";
import type { CageSpec, VmSpec } from "../config/cageConfig.js";
import { describeLibvirtState, LibvirtDomainWatcher, type LibvirtVmState } from "../host/libvirt/libvirtDomain.js";
import { readVmThreads } from "../host/libvirt/qemuThreads.js";
import { CageResolver, idsVmKey, procFieldsFor, type MembershipConflict } from "../host/proc/cageMembership.js";
import { ProcessScanner, type ProcessInfo } from "../host/proc/processTable.js";
import { pidsOf, type CagePids } from "./cageAggregator.js";
import type { MembershipResolver } from "./pipelineService.js";

/**
 * At most this many /proc reads of new PIDs per CPU window: a fork storm must not become a scan
 * storm. A read and the match against 100 cages measured 0.1-0.2 ms of CPU, so at 10 windows a
 * second a host that starts new processes all the time costs at most ~0.8% of one core.
 */
export const NEW_PID_READS_PER_WINDOW = 4;
/** A new PID that matched no cage is read again in later windows at most this many times in all, until the next scan. */
export const NEW_PID_READS_PER_PID = 3;

/**
 * Each resolution lists /proc and reads the processes it has not seen; one it has is read again
 * every this many resolutions (ProcessScanner's refreshEvery; staggered by PID, and on every
 * resolution while it is young). Reading every process's stat (and the owner of every matched
 * one) on every resolution was most of the pipeline's CPU; what a process changes in place is
 * now seen within this many resolutions (docs/metrics.md, "Membership").
 */
export const PROC_REFRESH_RESOLUTIONS = 4;

/** What resolveNewPids did since the resolver started (the pipeline's stats, the bench). */
export type NewPidStats = {
  /** Single-PID /proc reads. */
  reads: number;
  /** Resolutions over the last scan's table plus the new processes (only when one could join). */
  tablePasses: number;
  /** Of those, the ones that made a new PID a member (their membership was returned). */
  resolutions: number;
  /** Time spent in resolveNewPids, ms. */
  busyMs: number;
};

/**
 * stop() ends the libvirt watchers' `virsh event` children (an in-process user that outlives the
 * resolver) and closes the /proc descriptors the scans keep; a resolution after stop() throws.
 * resolveNewPids(pids): `pids` are the PIDs of a CPU window that no cage is charged for; null
 * when none of them joined a cage, else the whole membership (see pipelineService.ts).
 */
export function procMembershipResolver(
  cages: CageSpec[],
  log: Logger,
  procRoot = "/proc",
): MembershipResolver & { stop(): Promise<void>; resolveNewPids(pids: readonly number[]): Map<string, CagePids> | null; readonly newPidStats: NewPidStats } {
  let knownConflicts = new Set<string>();
  const resolver = new CageResolver(cages);
  const read = procFieldsFor(cages);
  const libvirt = libvirtWatchers(cages, log, procRoot);
  const scanner = new ProcessScanner(procRoot);
  /** The last scan: its table, its PIDs, the libvirt states it was resolved with, and each QEMU cage's threads. */
  let scanned: { table: ProcessInfo[]; pids: Set<number>; libvirtVms: Map<string, LibvirtVmState>; vmThreads: Map<string, CagePids["vmThreads"]> } | null = null;
  /** Every member PID of the last resolution (a scan's, or one of resolveNewPids'). */
  let members = new Set<number>();
  /** New PIDs read since the last scan: what the read found (null: gone), and how often read. */
  let newPids = new Map<number, { info: ProcessInfo | null; reads: number; member: boolean }>();
  const newPidStats: NewPidStats = { reads: 0, tablePasses: 0, resolutions: 0, busyMs: 0 };

  const membersOf = (table: ProcessInfo[], libvirtVms: Map<string, LibvirtVmState>): { resolved: Map<string, CagePids>; conflicts: MembershipConflict[] } => {
    const { members, conflicts } = resolver.resolve(table, libvirtVms);
    return { resolved: pidsOf(members), conflicts };
  };

  const resolveNewPids = (pids: readonly number[]): Map<string, CagePids> | null => {
    if (scanned === null) return null;
    const t0 = performance.now();
    const readNow: number[] = [];
    const readPid = (pid: number, reads: number): void => {
      newPidStats.reads++;
      let info: ProcessInfo | null;
      try {
        info = scanner.readOne(pid, read);
      } catch (err) {
        log.debug({ pid, err: (err as Error).message }, "new process unreadable, left to the next scan");
        info = null;
      }
      newPids.set(pid, { info, reads: reads + 1, member: false });
      if (info !== null) readNow.push(pid);
    };
    // PIDs never read first, then those read before that may have exec'd since: many short-lived
    // processes that match nothing must not keep a new IDS waiting.
    const again: number[] = [];
    // Joined a cage, yet uncharged: a resolution computed before it joined replaced the membership.
    const rejoin: number[] = [];
    let budget = NEW_PID_READS_PER_WINDOW;
    for (const pid of pids) {
      if (pid <= 0 || scanned.pids.has(pid)) continue; // 0: the idle task
      const before = newPids.get(pid);
      if (before === undefined) {
        if (budget === 0) continue;
        budget--;
        readPid(pid, 0);
      } else if (before.member) rejoin.push(pid);
      else if (before.info !== null && before.reads < NEW_PID_READS_PER_PID) again.push(pid);
    }
    for (const pid of again.slice(0, budget)) readPid(pid, newPids.get(pid)!.reads);
    let out: Map<string, CagePids> | null = null;
    // Resolving costs a pass over the whole table: only when a process read now could join (most
    // new processes on a busy host are no cage's), or one that joined must rejoin.
    const candidates = readNow.filter((pid) => resolver.couldMatch(newPids.get(pid)!.info!, members, scanned!.libvirtVms));
    if (candidates.length > 0 || rejoin.length > 0) {
      newPidStats.tablePasses++;
      const extra: ProcessInfo[] = [];
      for (const e of newPids.values()) if (e.info !== null) extra.push(e.info);
      const { resolved } = membersOf([...scanned.table, ...extra], scanned.libvirtVms);
      const joined = new Set<number>();
      for (const m of resolved.values()) for (const pid of [...m.vm, ...m.ids]) if (newPids.has(pid)) joined.add(pid);
      const fresh = [...candidates, ...rejoin].filter((pid) => joined.has(pid));
      for (const pid of joined) newPids.get(pid)!.member = true;
      if (fresh.length > 0) {
        members = memberSet(resolved);
        newPidStats.resolutions++;
        for (const [name, threads] of scanned.vmThreads) {
          const m = resolved.get(name);
          if (m !== undefined) resolved.set(name, { ...m, vmThreads: threads });
        }
        out = resolved;
      }
    }
    newPidStats.busyMs += performance.now() - t0;
    return out;
  };

  const resolve = async (): Promise<Map<string, CagePids>> => {
    const libvirtVms = await libvirt.states();
    const table = scanner.scan({ read, refreshEvery: PROC_REFRESH_RESOLUTIONS, onError: (pid, err) => log.debug({ pid, err: err.message }, "process unreadable, skipped") });
    const { resolved, conflicts } = membersOf(table, libvirtVms);
    const current = new Set<string>();
    for (const c of conflicts) {
      const key = `${c.pid}/${c.startTime}/${c.otherCage}`;
      current.add(key);
      if (!knownConflicts.has(key)) log.warn({ pid: c.pid, comm: c.comm, cage: c.cage, otherCage: c.otherCage }, c.message);
    }
    knownConflicts = current;
    const vmThreads = new Map<string, CagePids["vmThreads"]>();
    for (const cage of cages) {
      if (cage.vm.kind !== "qemu" && cage.vm.kind !== "libvirt") continue;
      const pids = resolved.get(cage.name);
      if (pids === undefined) continue;
      const threads = readVmThreads(pids.vm, table, procRoot);
      vmThreads.set(cage.name, threads);
      resolved.set(cage.name, { ...pids, vmThreads: threads });
    }
    scanned = { table, pids: new Set(table.map((p) => p.pid)), libvirtVms, vmThreads };
    members = memberSet(resolved);
    newPids = new Map();
    return resolved;
  };
  return Object.assign(resolve, {
    resolveNewPids,
    newPidStats,
    stop: async () => {
      scanner.close();
      await libvirt.stop();
    },
  });
}

function memberSet(resolved: ReadonlyMap<string, CagePids>): Set<number> {
  const out = new Set<number>();
  for (const m of resolved.values()) for (const pid of [...m.vm, ...m.ids]) out.add(pid);
  return out;
}

function libvirtWatchers(cages: CageSpec[], log: Logger, procRoot: string): { states: () => Promise<Map<string, LibvirtVmState>>; stop: () => Promise<void> } {
  const watchers = new Map<string, LibvirtDomainWatcher>();
  const watch = (cage: string, key: string, what: string, vm: VmSpec): void => {
    if (vm.kind !== "libvirt") return;
    const watcher = new LibvirtDomainWatcher(vm.domain, { uri: vm.uri, procRoot }, (s) => {
      // A domain libvirt does not know is most often a misspelt name: worth a warning, not an error storm.
      const level = s.state === "error" ? "error" : s.state === "undefined" ? "warn" : "info";
      log[level]({ cage, libvirt: s }, `cage ${cage}${what}: ${describeLibvirtState(s)}`);
    });
    watchers.set(key, watcher);
  };
  for (const cage of cages) {
    watch(cage.name, cage.name, "", cage.vm);
    (cage.idsVms ?? []).forEach((vm, i) => watch(cage.name, idsVmKey(cage.name, i), " (IDS-VM)", vm));
  }
  let started: Promise<void> | null = null;
  return {
    async states() {
      started ??= Promise.all([...watchers.values()].map((w) => w.start())).then(() => {
        // The watchers' virsh children must not outlive the pipeline process.
        process.once("exit", () => {
          for (const w of watchers.values()) void w.stop();
        });
      });
      await started;
      return new Map([...watchers].map(([name, w]) => [name, w.state]));
    },
    async stop() {
      await Promise.all([...watchers.values()].map((w) => w.stop()));
    },
  };
}
