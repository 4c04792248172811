/**
 * The real membership source: scans /proc and resolves every cage's matchers
 * (host/proc). Conflicts are logged when they first appear, not on every resolution.
 * Cages with vm.kind libvirt, and libvirt IDS-VMs, get a LibvirtDomainWatcher (host/libvirt) each, started on the
 * first resolution; their state changes are logged once each, never per window.
 * QEMU VMs (vm.kind qemu, libvirt) also get their host threads classified on every resolution
 * (host/libvirt/qemuThreads.ts), so the aggregator splits their CPU by kind.
 */
import type { Logger } from "pino";
import type { CageSpec, VmSpec } from "../config/cageConfig.js";
import { describeLibvirtState, LibvirtDomainWatcher, type LibvirtVmState } from "../host/libvirt/libvirtDomain.js";
import { readVmThreads } from "../host/libvirt/qemuThreads.js";
import { CageResolver, idsVmKey, procFieldsFor } from "../host/proc/cageMembership.js";
import { ProcessScanner } from "../host/proc/processTable.js";
import { pidsOf, type CagePids } from "./cageAggregator.js";
import type { MembershipResolver } from "./pipelineService.js";

/**
 * stop() ends the libvirt watchers' `virsh event` children (an in-process user that outlives the
 * resolver) and closes the /proc descriptors the scans keep; a resolution after stop() throws.
 */
export function procMembershipResolver(cages: CageSpec[], log: Logger, procRoot = "/proc"): MembershipResolver & { stop(): Promise<void> } {
  let knownConflicts = new Set<string>();
  const resolver = new CageResolver(cages);
  const read = procFieldsFor(cages);
  const libvirt = libvirtWatchers(cages, log, procRoot);
  const scanner = new ProcessScanner(procRoot);
  const resolve = async (): Promise<Map<string, CagePids>> => {
    const libvirtVms = await libvirt.states();
    const table = scanner.scan({ read, onError: (pid, err) => log.debug({ pid, err: err.message }, "process unreadable, skipped") });
    const { members, conflicts } = resolver.resolve(table, libvirtVms);
    const current = new Set<string>();
    for (const c of conflicts) {
      const key = `${c.pid}/${c.startTime}/${c.otherCage}`;
      current.add(key);
      if (!knownConflicts.has(key)) log.warn({ pid: c.pid, comm: c.comm, cage: c.cage, otherCage: c.otherCage }, c.message);
    }
    knownConflicts = current;
    const resolved = pidsOf(members);
    for (const cage of cages) {
      if (cage.vm.kind !== "qemu" && cage.vm.kind !== "libvirt") continue;
      const pids = resolved.get(cage.name);
      if (pids !== undefined) resolved.set(cage.name, { ...pids, vmThreads: readVmThreads(pids.vm, table, procRoot) });
    }
    return resolved;
  };
  return Object.assign(resolve, {
    stop: async () => {
      scanner.close();
      await libvirt.stop();
    },
  });
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
