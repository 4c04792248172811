/**
 * Keeps the cages' IDS processes inside the page cache collector's tracking group: every
 * resolveMs it resolves the cage file against /proc and moves IDS processes that are not in
 * the group yet (their children are born inside). At stop it moves them back where they came from.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import type { CageSpec } from "../../config/cageConfig.js";
import { resolveCages } from "../../host/proc/cageMembership.js";
import { scanProcesses } from "../../host/proc/processTable.js";
import { planIdsPlacement } from "./idsPlacement.js";
import { cgroupV2Root, createTrackingCgroup, type TrackingCgroup } from "../../host/cgroup/trackingCgroup.js";

export interface IdsPlacerCounters {
  placed: number;
  placeErrors: number;
  resolveErrors: number;
}

export class IdsPlacer {
  readonly group: TrackingCgroup;
  readonly counters: IdsPlacerCounters = { placed: 0, placeErrors: 0, resolveErrors: 0 };
  private readonly trackingV2Path: string;
  private readonly warnedUnplaceable = new Set<string>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly cages: readonly CageSpec[],
    private readonly log: Logger,
  ) {
    this.group = createTrackingCgroup("ids");
    this.trackingV2Path = this.group.path.slice(cgroupV2Root().length);
  }

  start(resolveMs: number): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), resolveMs);
  }

  /** One resolution and placement; never throws (a failed pass is counted and retried next period). */
  tick(): void {
    let plan;
    try {
      const members = resolveCages([...this.cages], scanProcesses("/proc"));
      plan = planIdsPlacement(this.cages, members, this.trackingV2Path, (dir) => existsSync(join(dir, "cgroup.controllers")));
    } catch (err) {
      this.counters.resolveErrors++;
      this.log.warn({ err: (err as Error).message }, "IDS resolution failed; retrying next period");
      return;
    }
    for (const cage of plan.unplaceable) {
      if (this.warnedUnplaceable.has(cage)) continue;
      this.warnedUnplaceable.add(cage);
      this.log.warn({ cage }, "the IDS is selected by a cgroup v2 directory: it is not moved into the tracking group, so its page cache is not attributed");
    }
    for (const pid of plan.place) {
      try {
        this.group.addPid(pid);
        this.counters.placed++;
        this.log.info({ pid, group: this.group.path }, "IDS process moved into the page cache tracking group");
      } catch (err) {
        // Exited between the scan and the move, usually.
        this.counters.placeErrors++;
        this.log.debug({ pid, err: (err as Error).message }, "could not move an IDS process into the tracking group");
      }
    }
  }

  /** Stops placing and returns every process still in the group to where it came from. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    try {
      this.group.remove();
    } catch (err) {
      this.log.warn({ err: (err as Error).message, group: this.group.path }, "could not remove the tracking group");
    }
  }
}
