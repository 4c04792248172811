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
      cage.ids.forEach((m: unknown, j) => matcherProblems(m, [...at, "ids", j], report, "ids", users));
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
