/**
 * Keeps the cages' IDS processes in their page cache groups, the cgroup v2 group the cgroup plan
 * names for each cage's IDS (host/cgroup/cagePlan.ts idsV2): on a v2-only host the same group
 * the limiter caps, on a hybrid host the agent's one tracking group, or the IDS's own unit or
 * matcher group, tracked where it is. Every resolveMs it resolves the cage file against /proc
 * and moves IDS processes not yet in their own-group (their children are born inside). At stop
 * it moves them back where they came from and removes the groups it made.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import type { CageSpec } from "../../config/cageConfig.js";
import { resolveCages } from "../../host/proc/cageMembership.js";
import { scanProcesses } from "../../host/proc/processTable.js";
import { parseV2CgroupOfProcess } from "../../host/cgroup/cgroupMounts.js";
import { describeTarget, planCage, type CgroupLayout, type CgroupTarget } from "../../host/cgroup/cagePlan.js";
import { checkGroup, ensureOwnGroup, hostCgroupLayout } from "../../host/cgroup/cageGroups.js";
import { releaseGroup } from "../../host/cgroup/trackingCgroup.js";
import { systemctlClient, unitCgroupDir, type UnitClient } from "../../host/systemd/unitProperties.js";
import { planIdsPlacement, type IdsGroup } from "./idsPlacement.js";

export interface IdsPlacerCounters {
  placed: number;
  placeErrors: number;
  resolveErrors: number;
}

export interface IdsPlacerOptions {
  layout?: CgroupLayout;
  units?: () => UnitClient;
}

/**
 * An own page cache group. Where memory is a v2 controller it is enabled for the group, so its
 * memory.stat `file` is there for the cross-check and the fallback; without it the group still tracks.
 */
function ensureTrackingGroup(layout: CgroupLayout, target: CgroupTarget, log: Logger, cage: string): void {
  if (target.version === 2 && !layout.mounts.v1.has("memory")) {
    try {
      ensureOwnGroup(layout, target, ["memory"]);
      return;
    } catch (err) {
      log.warn({ cage, err: (err as Error).message }, "no memory controller for the IDS's page cache group: no memory.stat cross-check or fallback");
    }
  }
  ensureOwnGroup(layout, target, []);
}

interface CageGroup extends IdsGroup {
  dir: string;
}

export class IdsPlacer {
  readonly counters: IdsPlacerCounters = { placed: 0, placeErrors: 0, resolveErrors: 0 };
  private readonly origins = new Map<number, string>();
  private timer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly cages: readonly CageSpec[],
    private readonly log: Logger,
    private readonly layout: CgroupLayout,
    private readonly groups: ReadonlyMap<string, CageGroup>,
  ) {}

  /**
   * Plans each cage's page cache group, creates the agent's own ones and resolves units' groups.
   * A cage whose group cannot be had is logged with the reason and left untracked; the others go on.
   */
  static async open(cages: readonly CageSpec[], log: Logger, options: IdsPlacerOptions = {}): Promise<IdsPlacer> {
    const layout = options.layout ?? hostCgroupLayout();
    const v2Root = layout.mounts.v2;
    if (v2Root === null) throw new Error("page cache collector: no cgroup2 hierarchy is mounted (need /sys/fs/cgroup or /sys/fs/cgroup/unified)");
    const units = options.units ?? (() => systemctlClient());
    const groups = new Map<string, CageGroup>();
    for (const cage of cages) {
      const target = planCage(cage, layout).idsV2;
      try {
        let dir: string;
        if (target.kind === "none") throw new Error(target.reason);
        if (target.kind === "unit") dir = await unitCgroupDir(units(), target.unit, v2Root);
        else {
          if (target.own) ensureTrackingGroup(layout, target, log, cage.name);
          dir = target.dir;
        }
        checkGroup({ kind: "cgroup", dir, version: 2, own: target.kind === "cgroup" && target.own }, target.kind === "cgroup" && target.own ? ["cgroup.procs"] : []);
        groups.set(cage.name, { dir, v2Path: dir.slice(v2Root.length) || "/", own: target.kind === "cgroup" && target.own });
        log.info({ cage: cage.name, group: dir, ids: describeTarget(target) }, "IDS page cache group");
      } catch (err) {
        log.error({ cage: cage.name, err: (err as Error).message }, "no page cache group for this cage's IDS: its page cache is not attributed");
      }
    }
    return new IdsPlacer(cages, log, layout, groups);
  }

  /** The v2 groups bpftrace tracks (absolute, distinct, in cage order). */
  get trackedPaths(): string[] {
    return [...new Set([...this.groups.values()].map((g) => g.dir))];
  }

  /** A cage's page cache group, or null (untracked). */
  groupOf(cage: string): string | null {
    return this.groups.get(cage)?.dir ?? null;
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
      plan = planIdsPlacement(this.cages, members, this.groups);
    } catch (err) {
      this.counters.resolveErrors++;
      this.log.warn({ err: (err as Error).message }, "IDS resolution failed; retrying next period");
      return;
    }
    for (const { pid, cage } of plan.place) {
      const dir = (this.groups.get(cage) as CageGroup).dir;
      try {
        this.moveIn(pid, dir);
        this.counters.placed++;
        this.log.info({ pid, cage, group: dir }, "IDS process moved into its page cache group");
      } catch (err) {
        // Exited between the scan and the move, usually.
        this.counters.placeErrors++;
        this.log.debug({ pid, err: (err as Error).message }, "could not move an IDS process into its page cache group");
      }
    }
  }

  /**
   * The one place an IDS process enters a group: where it came from is remembered for stop().
   * A check that the PID is still the process meant (not a reused PID) belongs here.
   */
  private moveIn(pid: number, dir: string): void {
    const origin = parseV2CgroupOfProcess(readFileSync(`/proc/${pid}/cgroup`, "utf8"));
    writeFileSync(join(dir, "cgroup.procs"), String(pid));
    if (origin !== null && !this.origins.has(pid)) this.origins.set(pid, origin);
  }

  /** Stops placing, returns every process still in an own group to where it came from, and removes the groups made. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    const own = new Set([...this.groups.values()].filter((x) => x.own).map((x) => x.dir));
    releaseGroups(own, this.origins, this.layout, this.log);
  }
}

/**
 * What a page cache collector that is not running (killed, or waiting to restart) left: each
 * cage's own page cache group that still exists is emptied (its processes to the v2 root, their
 * origin unknown) and removed. `cage run` calls it after its children stopped.
 */
export function releaseOwnPageCacheGroups(cages: readonly CageSpec[], log: Logger, layout: CgroupLayout = hostCgroupLayout()): void {
  const own = new Set<string>();
  for (const cage of cages) {
    const t = planCage(cage, layout).idsV2;
    if (t.kind === "cgroup" && t.own && existsSync(t.dir)) own.add(t.dir);
  }
  releaseGroups(own, new Map(), layout, log);
}

/** Empties and removes each group, with the folders the agent made above it (up to its subtree; the subtree itself only when it is ours in the v2 root). */
function releaseGroups(groups: ReadonlySet<string>, origins: ReadonlyMap<number, string>, layout: CgroupLayout, log: Logger): void {
  const top = layout.v2AgentLeaf === null ? (layout.v2Subtree as string) : join(layout.v2Subtree as string, "cages");
  for (const g of groups) {
    try {
      releaseGroup(g, layout.mounts.v2 as string, (pid) => origins.get(pid), top);
    } catch (err) {
      log.warn({ err: (err as Error).message, group: g }, "could not remove the page cache group");
    }
  }
}
