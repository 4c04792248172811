/**
 * The IDS limiter's cgroup mode: each cage's IDS processes go into the actuators' own cgroup
 * `offloadcage/<cage>/ids` in the cpu hierarchy, whose CFS quota is idsCap. The kernel enforces
 * it every CFS period; no process is ever stopped by us. On exit the PIDs go back where they
 * came from and the cgroup is removed; if we die the guardian lifts the quota.
 */
import type { Logger } from "pino";
import type { CgroupMounts } from "../../host/cgroup/cgroupMounts.js";
import type { GuardianClient } from "../common/guardianClient.js";
import { ownCageCgroup, type CgroupCpuBackend } from "../common/cgroupCpuBackend.js";
import type { ProcessIdentity } from "../../host/proc/processIdentity.js";

interface CageState {
  backend: CgroupCpuBackend;
  prepared: boolean;
  capPct: number | null;
  applied: number | null | undefined;
  /** The IDS's processes: moved into the cgroup after a start-time check (CgroupCpuBackend.adoptPids). */
  pids: ProcessIdentity[];
  chain: Promise<void>;
  error: string | null;
}

export interface CgroupLimiterOptions {
  logger: Logger;
  dryRun: boolean;
  mounts: CgroupMounts;
  guardian: () => GuardianClient | null;
}

export class CgroupLimiter {
  readonly kind: string;
  private readonly cages = new Map<string, CageState>();

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
      c = { backend: ownCageCgroup(name, "ids", this.options.mounts, this.options.logger), prepared: false, capPct: null, applied: undefined, pids: [], chain: Promise.resolve(), error: null };
      this.cages.set(name, c);
    }
    c.capPct = capPct;
    c.pids = [...pids].map(([pid, startTime]) => ({ pid, startTime }));
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
        for (const a of c.backend.restoreActions()) await g.register(a);
        c.prepared = true;
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

  /** Re-registers the restore actions with a new guardian. */
  async rearmAll(): Promise<void> {
    const g = this.options.guardian();
    if (g === null) return;
    for (const c of this.cages.values()) if (c.prepared) for (const a of c.backend.restoreActions()) await g.register(a);
  }

  /** Moves every IDS process back and removes the cgroups. True when all went well. */
  async stop(): Promise<boolean> {
    let ok = true;
    for (const [name, c] of this.cages) {
      await c.chain;
      if (!c.prepared) continue;
      try {
        await c.backend.restore();
      } catch (err) {
        ok = false;
        this.options.logger.error({ cage: name, err: (err as Error).message }, "cannot remove the IDS cgroup");
      }
    }
    return ok;
  }
}
