/** The cages list: unique names, then each cage's cpu, memory and matchers. */
import { isRecord } from "../isRecord.js";
import type { PathSegment, Report } from "../yamlLocation.js";
import { cpuProblems } from "./cpuChecks.js";
import { cachedUsers, matcherProblems } from "./matcherChecks.js";
import { memoryProblems } from "./memoryChecks.js";

export function cagesProblems(cages: readonly unknown[], report: Report): void {
  const firstByName = new Map<string, number>();
  const users = cachedUsers();
  cages.forEach((cage, i) => {
    if (!isRecord(cage)) return;
    const at: PathSegment[] = ["cages", i];
    if (typeof cage.name === "string") {
      const first = firstByName.get(cage.name);
      if (first === undefined) firstByName.set(cage.name, i);
      else report([...at, "name"], `duplicate cage name ${JSON.stringify(cage.name)} (also cages[${first}].name)`);
    }
    if (isRecord(cage.cpu)) cpuProblems(cage.cpu, cage.vm, [...at, "cpu"], report);
    if (isRecord(cage.memory)) memoryProblems(cage.memory, cage.vm, [...at, "memory"], report);
    if (isRecord(cage.vm) && Array.isArray(cage.vm.match)) {
      cage.vm.match.forEach((m: unknown, j) => matcherProblems(m, [...at, "vm", "match", j], report, "vm", users));
    }
    if (Array.isArray(cage.ids)) {
      cage.ids.forEach((m: unknown, j) => {
        if (isRecord(m) && (m.vm !== undefined || m.cr3From !== undefined)) idsVmProblems(m, [...at, "ids", j], report, users);
        else matcherProblems(m, [...at, "ids", j], report, "ids", users);
      });
      hypervisorIdsVmProblems(cage, cage.ids, at, report);
    }
    unitProblems(cage, at, report);
  });
}

/** units.vm must name something systemd runs (not a Xen domain); memory.backend systemd needs it. */
function unitProblems(cage: Record<string, unknown>, at: readonly PathSegment[], report: Report): void {
  const vmUnit = isRecord(cage.units) && typeof cage.units.vm === "string" ? cage.units.vm : null;
  if (vmUnit !== null && isRecord(cage.vm) && cage.vm.kind === "xen") report([...at, "units", "vm"], "a Xen domain is not a systemd unit: remove units.vm or change vm.kind");
  if (isRecord(cage.memory) && cage.memory.backend === "systemd" && vmUnit === null) report([...at, "memory", "backend"], "systemd needs units.vm (the VM's unit, whose MemoryHigh is set)");
}

/**
 * One `ids` entry `{ vm: ... }`: nothing beside `vm`, and its matchers are IDS matchers (the
 * owner rule holds, since a process posing as an IDS-VM would get the protected VM capped).
 */
function idsVmProblems(entry: Record<string, unknown>, at: readonly PathSegment[], report: Report, users: () => Map<string, number>): void {
  for (const key of Object.keys(entry)) {
    if (key !== "vm" && key !== "cr3From") report([...at, key], "an IDS-VM entry has only `vm` (and `cr3From`); put process selectors in an entry of their own (or in vm.match)");
  }
  const vm = entry.vm;
  // Only Xen's trace records CR3 writes (collectors/xentrace): no other VM kind can be charged by CR3.
  if (entry.cr3From !== undefined && !(isRecord(vm) && vm.kind === "xen")) {
    const found = vm === undefined ? "the entry has no vm: add vm: { kind: xen, domain: … }" : isRecord(vm) ? `this IDS-VM is ${String(vm.kind)}` : "vm is not a mapping";
    report([...at, "cr3From"], `cr3From needs vm.kind xen (CR3s come from xentrace); ${found}`);
  }
  if (isRecord(vm) && Array.isArray(vm.match)) vm.match.forEach((m: unknown, j) => matcherProblems(m, [...at, "vm", "match", j], report, "ids", users));
}

/**
 * A libvirt or Xen IDS-VM is capped by its hypervisor tool (virsh schedinfo, xl sched-credit),
 * which holds that one VM at idsCap: it cannot share the cap with other IDS entries or units.ids.
 */
function hypervisorIdsVmProblems(cage: Record<string, unknown>, ids: readonly unknown[], at: readonly PathSegment[], report: Report): void {
  ids.forEach((entry, j) => {
    if (!isRecord(entry) || !isRecord(entry.vm) || (entry.vm.kind !== "libvirt" && entry.vm.kind !== "xen")) return;
    const kind = String(entry.vm.kind);
    if (ids.length > 1) report([...at, "ids", j, "vm"], `a ${kind} IDS-VM is capped at idsCap on its own by ${kind === "xen" ? "xl sched-credit" : "virsh schedinfo"}: it must be the cage's only ids entry (give the other IDS its own cage)`);
    if (isRecord(cage.units) && cage.units.ids !== undefined) report([...at, "units", "ids"], `the cage's IDS is a ${kind} IDS-VM (ids[${j}]); units.ids cannot also be capped at idsCap`);
  });
}
