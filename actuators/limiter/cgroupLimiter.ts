/**
 * The IDS limiter's cgroup mode: idsCap goes where the cgroup plan (host/cgroup/cagePlan.ts)
 * puts the cage's IDS: the agent's own group (v1 `<cpu>/offloadcage/<cage>/ids`, v2
 * `<delegated subtree>/cages/<cage>/ids`, the group page cache attribution tracks too) with the
 * IDS processes moved in, the group an IDS matcher selects by, or the IDS's systemd unit
 * (CPUQuota). The kernel enforces the quota every CFS period; no process is ever stopped by us.
 * On exit the PIDs go back where they came from, own groups are removed and settings restored.
 * If we die the guardian leaves the IDS at its fail-safe: with `failsafe: hold` the quota stays at
 * idsCap, with `release` it is lifted. The quota is read back every period and written again when
 * something else changed it.
 */
import type { Logger } from "pino";
import type { CageSpec } from "../../config/cageConfig.js";
import type { CgroupMounts } from "../../host/cgroup/cgroupMounts.js";
import { describeTarget, planCage, type CgroupLayout } from "../../host/cgroup/cagePlan.js";
import { systemctlClient, type UnitClient } from "../../host/systemd/unitProperties.js";
import type { GuardianClient } from "../common/guardianClient.js";
import { cpuBackendForTarget, readLayout } from "../common/cgroupCpuBackend.js";
import type { CpuBackend } from "../common/cpuBackend.js";
import type { ProcessIdentity } from "../../host/proc/processIdentity.js";
import type { RestoreAction } from "../common/guardianProtocol.js";
import type { OriginalSettings } from "../common/originalSettings.js";
import { restoreCageSettings } from "../common/restoreSteps.js";

interface CageState {
  backend: CpuBackend | null;
  /** idsCap: the quota kept in place under `failsafe: hold` if the limiter dies. */
  failsafeCapPct: number | null;
  prepared: boolean;
  capPct: number | null;
  applied: number | null | undefined;
  /** The IDS's processes: moved into the cgroup after a start-time check (CgroupCpuBackend.adoptPids). */
  pids: ProcessIdentity[];
  /** The map `pids` was built from: the limiter passes the same map until the IDS changes. */
  pidsFrom: ReadonlyMap<number, number> | null;
  chain: Promise<void>;
  error: string | null;
}

export interface CgroupLimiterOptions {
  logger: Logger;
  dryRun: boolean;
  mounts: CgroupMounts;
  guardian: () => GuardianClient | null;
  /** The cages, for the plan; a cage not listed is planned as an IDS without units or cgroup matchers. */
  cages?: readonly CageSpec[];
  /** The host layout (default: this host's, for this process). */
  layout?: CgroupLayout;
  /** systemctl for units (default: the real one). */
  units?: () => UnitClient;
  /** Where the originals are recorded; default none. */
  originals?: () => OriginalSettings | null;
  /** The limiter's fail-safe: hold keeps idsCap in place if we die, release (the default) lifts it. */
  failsafe?: "hold" | "release";
}

export class CgroupLimiter {
  readonly kind: string;
  private readonly cages = new Map<string, CageState>();
  /** Quotas found changed behind our back and written again. */
  reapplied = 0;

  private layoutCache: CgroupLayout | null = null;

  constructor(private readonly options: CgroupLimiterOptions) {
    this.kind = options.mounts.v1.has("cpu") ? "cgroup-v1" : "cgroup-v2";
  }

  private get layout(): CgroupLayout {
    this.layoutCache ??= this.options.layout ?? readLayout(this.options.mounts);
    return this.layoutCache;
  }

  /** The cage's IDS CPU back end from the plan; a cage the plan cannot serve gets an error instead. */
  private backendFor(name: string): { backend: CpuBackend | null; error: string | null } {
    const spec = this.options.cages?.find((c) => c.name === name) ?? ({ name, vm: { kind: "process", match: [] }, ids: [], cpu: { cap: 100, idsCap: null, weight: null }, memory: null } satisfies CageSpec);
    try {
      const target = planCage(spec, this.layout).idsCpu;
      const backend = cpuBackendForTarget(target, this.layout, this.options.units ?? (() => systemctlClient()), this.options.logger);
      this.options.logger.info({ cage: name, ids: describeTarget(target) }, "IDS limit target");
      return { backend, error: null };
    } catch (err) {
      const error = `cage ${name}: ${(err as Error).message}`;
      this.options.logger.error({ cage: name, err: error }, "no IDS cgroup for this cage: it is not limited");
      return { backend: null, error };
    }
  }

  errorOf(name: string): string | null {
    return this.cages.get(name)?.error ?? null;
  }

  /** Path of a cage's IDS cgroup (for tests and logs). */
  pathOf(name: string): string | null {
    return this.cages.get(name)?.backend?.target ?? null;
  }

  /** `pids` is never changed in place: a new IDS membership comes as a new map. */
  setCage(name: string, capPct: number | null, pids: ReadonlyMap<number, number>): void {
    let c = this.cages.get(name);
    if (c === undefined) {
      const { backend, error } = this.backendFor(name);
      c = { backend, failsafeCapPct: capPct, prepared: false, capPct: null, applied: undefined, pids: [], pidsFrom: null, chain: Promise.resolve(), error };
      this.cages.set(name, c);
    }
    c.capPct = capPct;
    if (capPct !== null) c.failsafeCapPct = capPct;
    if (pids !== c.pidsFrom) {
      c.pids = [...pids].map(([pid, startTime]) => ({ pid, startTime }));
      c.pidsFrom = pids;
    }
    if (this.options.dryRun) return;
    const state = c;
    state.chain = state.chain.then(() => this.sync(name, state));
  }

  private async sync(name: string, c: CageState): Promise<void> {
    if (c.backend === null) return; // the plan has no group for it: c.error says why
    const backend = c.backend;
    try {
      if (!c.prepared) {
        if (c.capPct === null) return; // nothing to limit: do not create anything
        const g = this.options.guardian();
        if (g === null) throw new Error("no restore guardian running: not changing anything");
        await backend.prepare();
        for (const a of this.restoreActions(name, c, backend)) await g.register(a);
        c.prepared = true;
      }
      if (c.applied === c.capPct && backend.isInPlace !== undefined && !backend.isInPlace({ capPct: c.capPct, weight: null })) {
        this.reapplied++;
        this.options.logger.warn({ cage: name, capPct: c.capPct }, "the IDS quota was changed behind the limiter's back: writing it again");
        c.applied = undefined;
      }
      if (c.applied !== c.capPct) {
        await backend.apply({ capPct: c.capPct, weight: null });
        c.applied = c.capPct;
      }
      await backend.adoptPids(c.pids);
      if (c.error !== null) this.options.logger.info({ cage: name }, "IDS cgroup works again");
      c.error = null;
    } catch (err) {
      const message = (err as Error).message;
      if (c.error !== message) this.options.logger.error({ cage: name, err: message }, "IDS cgroup limit failed");
      c.error = message;
    }
  }

  /** The cage's restore actions: the recorded originals, and idsCap as the fail-safe under `hold`. */
  private restoreActions(name: string, c: CageState, backend: CpuBackend): RestoreAction[] {
    const fresh = backend.restoreActions(this.options.failsafe === "hold" ? (c.failsafeCapPct ?? undefined) : undefined);
    return this.options.originals?.()?.keep(name, fresh) ?? fresh;
  }

  /** Re-registers the restore actions with a new guardian. */
  async rearmAll(): Promise<void> {
    const g = this.options.guardian();
    if (g === null) return;
    for (const [name, c] of this.cages) if (c.prepared && c.backend !== null) for (const a of this.restoreActions(name, c, c.backend)) await g.register(a);
  }

  /** Moves every IDS process back and removes the cgroups. True when all went well. */
  async stop(): Promise<boolean> {
    let ok = true;
    for (const [name, c] of this.cages) {
      await c.chain;
      if (!c.prepared || c.backend === null) continue;
      try {
        await restoreCageSettings(c.backend, this.options.originals?.() ?? null, name);
      } catch (err) {
        ok = false;
        this.options.logger.error({ cage: name, err: (err as Error).message }, "cannot remove the IDS cgroup");
      }
    }
    return ok;
  }
}
