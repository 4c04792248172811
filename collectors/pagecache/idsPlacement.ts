/**
 * Which IDS processes `cage run` moves into the page cache collector's cgroup v2 tracking group
 * (bpftrace filters on one cgroup id, so only processes inside are attributed). Pure: works on
 * a resolution snapshot.
 *
 * An IDS selected through a cgroup v2 directory is left where it is: moving it would take it
 * out of the very group that makes it an IDS. Such cages are reported, not silently missed.
 */
import type { CageSpec } from "../../config/cageConfig.js";
import type { CageMembers } from "../../host/proc/cageMembership.js";

export interface IdsPlacementPlan {
  /** PIDs to write into the tracking group's cgroup.procs, ascending. */
  place: number[];
  /** Cages whose IDS is selected by a cgroup v2 matcher, so cannot be moved (and is not tracked). */
  unplaceable: string[];
}

/**
 * @param trackingV2Path the tracking group as /proc/PID/cgroup's "0::" line shows it, e.g. "/offloadcage/ids"
 * @param isV2Dir tells whether a matcher's cgroup directory is on the v2 hierarchy
 */
export function planIdsPlacement(
  cages: readonly CageSpec[],
  members: ReadonlyMap<string, CageMembers>,
  trackingV2Path: string,
  isV2Dir: (dir: string) => boolean,
): IdsPlacementPlan {
  const place = new Set<number>();
  const unplaceable: string[] = [];
  for (const cage of cages) {
    if (cage.ids.some((m) => m.cgroup !== undefined && isV2Dir(m.cgroup))) {
      unplaceable.push(cage.name);
      continue;
    }
    for (const p of members.get(cage.name)?.ids ?? []) {
      const v2 = p.cgroups.v2;
      if (v2 === trackingV2Path || v2?.startsWith(`${trackingV2Path}/`) === true) continue;
      place.add(p.pid);
    }
  }
  return { place: [...place].sort((a, b) => a - b), unplaceable };
}
