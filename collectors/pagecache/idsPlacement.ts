/**
 * Which IDS processes `cage run` moves into their cage's page cache group, the cgroup v2 group
 * the cgroup plan names for the IDS (host/cgroup/cagePlan.ts idsV2): bpftrace filters on those
 * groups' ids, so only processes inside are attributed. Pure: works on a resolution snapshot.
 *
 * Only the agent's own groups are moved into. A group the IDS already has (its systemd unit, or
 * the v2 cgroup its matcher selects it by) is tracked where it is: moving the IDS out of it would
 * take it away from what makes it the IDS, or from its unit.
 */
import type { CageSpec } from "../../config/cageConfig.js";
import type { CageMembers } from "../../host/proc/cageMembership.js";

/** A cage's page cache group as /proc/PID/cgroup's "0::" line shows it, e.g. "/offloadcage/ids". */
export interface IdsGroup {
  v2Path: string;
  /** The agent's own group: IDS processes are moved in. */
  own: boolean;
}

export interface IdsPlacement {
  pid: number;
  cage: string;
}

export interface IdsPlacementPlan {
  /** Processes to write into their cage's group's cgroup.procs, by ascending PID. */
  place: IdsPlacement[];
  /** Cages without a page cache group (the plan said why at start): not attributed. */
  untracked: string[];
}

export function planIdsPlacement(cages: readonly CageSpec[], members: ReadonlyMap<string, CageMembers>, groups: ReadonlyMap<string, IdsGroup>): IdsPlacementPlan {
  const place = new Map<number, string>();
  const untracked: string[] = [];
  for (const cage of cages) {
    const group = groups.get(cage.name);
    if (group === undefined) {
      untracked.push(cage.name);
      continue;
    }
    if (!group.own) continue;
    // libvirt keeps a domain's QEMU in its own cgroup, where the IDS-VM's quota (virsh schedinfo) applies.
    if (cage.idsVms?.some((vm) => vm.kind === "libvirt") === true) continue;
    for (const p of members.get(cage.name)?.ids ?? []) {
      const v2 = p.cgroups.v2;
      if (v2 === group.v2Path || v2?.startsWith(`${group.v2Path}/`) === true) continue;
      if (!place.has(p.pid)) place.set(p.pid, cage.name);
    }
  }
  return { place: [...place].sort((a, b) => a[0] - b[0]).map(([pid, cage]) => ({ pid, cage })), untracked };
}
