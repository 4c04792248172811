/**
 * The real membership source: scans /proc and resolves every cage's matchers
 * (host/proc). Conflicts are logged when they first appear, not on every resolution.
 */
import type { Logger } from "pino";
import type { CageSpec } from "../config/cageConfig.js";
import { CageResolver } from "../host/proc/cageMembership.js";
import { scanProcesses } from "../host/proc/processTable.js";
import { pidsOf } from "./cageAggregator.js";
import type { MembershipResolver } from "./pipelineService.js";

export function procMembershipResolver(cages: CageSpec[], log: Logger, procRoot = "/proc"): MembershipResolver {
  let knownConflicts = new Set<string>();
  const resolver = new CageResolver(cages);
  return () => {
    const table = scanProcesses(procRoot, { onError: (pid, err) => log.debug({ pid, err: err.message }, "process unreadable, skipped") });
    const { members, conflicts } = resolver.resolve(table);
    const current = new Set<string>();
    for (const c of conflicts) {
      const key = `${c.pid}/${c.startTime}/${c.otherCage}`;
      current.add(key);
      if (!knownConflicts.has(key)) log.warn({ pid: c.pid, comm: c.comm, cage: c.cage, otherCage: c.otherCage }, c.message);
    }
    knownConflicts = current;
    return pidsOf(members);
  };
}
