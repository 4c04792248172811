/**
 * The IDS limiter's cgroup mode: each cage's IDS processes go into the actuators' own cgroup
 * `offloadcage/<cage>/ids` in the cpu hierarchy, whose CFS quota is idsCap. The kernel enforces
 * it every CFS period; no process is ever stopped by us. On exit the PIDs go back where they
 * came from and the cgroup is removed. If we die the guardian leaves the IDS at its fail-safe:
 * with `failsafe: hold` the quota stays at idsCap, with `release` it is lifted. The quota is read
 * back every period and written again when something else changed it.
 */
import type { Logger } from "pino";
import type { CgroupMounts } from "../../host/cgroup/cgroupMounts.js";
import type { GuardianClient } from "../common/guardianClient.js";
import type { RestoreAction } from "../common/guardianProtocol.js";
import { ownCageCgroup, type CgroupCpuBackend } from "../common/cgroupCpuBackend.js";
import type { OriginalSettings } from "../common/originalSettings.js";

interface CageState {
  backend: CgroupCpuBackend;
  /** idsCap: the quota kept in place under `failsafe: hold` if the limiter dies. */
  failsafeCapPct: number | null;
  prepared: boolean;
  capPct: number | null;
  applied: number | null | undefined;
  pids: number[];
  chain: Promise<void>;
  error: string | null;
}

export interface CgroupLimiterOptions {
  logger: Logger;
  dryRun: boolean;
  mounts: CgroupMounts;
  guardian: () => GuardianClient | null;
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

  constructor(private readonly options: CgroupLimiterOptions) {
    this.kind = options.mounts.v1.has("cpu") ? "cgroup-v1" : "cgroup-v2";
  }

  errorOf(name: string): string | null {
    return this.cages.get(name)?.error ?? null;
  }

  /** Path of a cage's IDS cgroup (for tests and logs). */
  pathOf(name: string): string | null {
    return this.cages.get(name)?.backend.target ?? null;
  }

  setCage(name: string, capPct: number | null, pids: Map<number, number>): void {
    let c = this.cages.get(name);
    if (c === undefined) {
      c = { backend: ownCageCgroup(name, "ids", this.options.mounts), failsafeCapPct: capPct, prepared: false, capPct: null, applied: undefined, pids: [], chain: Promise.resolve(), error: null };
      this.cages.set(name, c);
    }
    c.capPct = capPct;
    if (capPct !== null) c.failsafeCapPct = capPct;
    c.pids = [...pids.keys()];
    if (this.options.dryRun) return;
    const state = c;
    state.chain = state.chain.then(() => this.sync(name, state));
  }

  private async sync(name: string, c: CageState): Promise<void> {
    try {
      if (!c.prepared) {
        if (c.capPct === null) return; // nothing to limit: do not create anything
        const g = this.options.guardian();
        if (g === null) throw new Error("no restore guardian running: not changing anything");
        await c.backend.prepare();
        for (const a of this.restoreActions(name, c)) await g.register(a);
        c.prepared = true;
      }
      if (c.applied === c.capPct && !c.backend.isInPlace({ capPct: c.capPct, weight: null })) {
        this.reapplied++;
        this.options.logger.warn({ cage: name, capPct: c.capPct }, "the IDS quota was changed behind the limiter's back: writing it again");
        c.applied = undefined;
      }
      if (c.applied !== c.capPct) {
        await c.backend.apply({ capPct: c.capPct, weight: null });
        c.applied = c.capPct;
      }
      await c.backend.adoptPids(c.pids);
      if (c.error !== null) this.options.logger.info({ cage: name }, "IDS cgroup works again");
      c.error = null;
    } catch (err) {
      const message = (err as Error).message;
      if (c.error !== message) this.options.logger.error({ cage: name, err: message }, "IDS cgroup limit failed");
      c.error = message;
    }
  }

  /** The cage's restore actions: the recorded originals, and idsCap as the fail-safe under `hold`. */
  private restoreActions(name: string, c: CageState): RestoreAction[] {
    const fresh = c.backend.restoreActions(this.options.failsafe === "hold" ? (c.failsafeCapPct ?? undefined) : undefined);
    return this.options.originals?.()?.keep(name, fresh) ?? fresh;
  }

  /** Re-registers the restore actions with a new guardian. */
  async rearmAll(): Promise<void> {
    const g = this.options.guardian();
    if (g === null) return;
    for (const [name, c] of this.cages) if (c.prepared) for (const a of this.restoreActions(name, c)) await g.register(a);
  }

  /** Moves every IDS process back and removes the cgroups. True when all went well. */
  async stop(): Promise<boolean> {
    let ok = true;
    for (const [name, c] of this.cages) {
      await c.chain;
      if (!c.prepared) continue;
      try {
        await c.backend.restore();
        // The cgroup is gone with its quota: nothing recorded is left to put back.
        this.options.originals?.()?.forget(name);
      } catch (err) {
        ok = false;
        this.options.logger.error({ cage: name, err: (err as Error).message }, "cannot remove the IDS cgroup");
      }
    }
    return ok;
  }
}
