/**
 * The limiter actuator (the IDS limiter): keeps each cage's IDS under its cpu.idsCap, in
 * `sigstop` mode (the paper's duty cycle, sigstopLimiter.ts) or `cgroup` mode (CFS quota,
 * cgroupLimiter.ts).
 * The IDS's processes come from the pipeline's aggregates (`ids.pids` with `ids.startTimes`: the same membership rules as
 * everything else). When aggregates go stale the cage's fail-safe applies: `hold` keeps limiting
 * the PIDs last seen (the limit does not depend on fresh data, only the PID list does), `release`
 * stops limiting. A restore guardian resumes every stopped PID if this process dies.
 * A cage whose IDS is a libvirt or Xen IDS-VM is held at idsCap by its hypervisor tool in either
 * mode (idsVmLimiter.ts); a QEMU IDS-VM's process is an IDS process like any other.
 */
import type { Logger } from "pino";
import type { LimiterActuatorSpec } from "../../config/cageConfig.js";
import { processesOf, type CageAggregate } from "../../protocol/cageAggregate.js";
import type { ActuatorState } from "../../protocol/actuatorMessages.js";
import type { CgroupMounts } from "../../host/cgroup/cgroupMounts.js";
import { ActuatorLink, STATE_EVERY_MS } from "../common/actuatorLink.js";
import { actuatorMode } from "../common/actuatorMode.js";
import type { GuardedActuatorOptions } from "../common/actuatorOptions.js";
import { guardianKeeperFor, type GuardianClient, type GuardianKeeper } from "../common/guardianClient.js";
import { OriginalSettings, originalSettingsFilesFor } from "../common/originalSettings.js";
import { StalenessTracker } from "../common/stalenessTracker.js";
import { CgroupLimiter } from "./cgroupLimiter.js";
import { IdsVmLimiter, type HypervisorPrograms } from "./idsVmLimiter.js";
import { SigstopLimiter } from "./sigstopLimiter.js";

export const ACTUATOR_NAME = "limiter";

/** Whether `pids` (PID → start time) holds exactly the processes of `role`. Pure. */
export function sameProcesses(pids: ReadonlyMap<number, number>, role: { pids: readonly number[]; startTimes: readonly number[] }): boolean {
  if (pids.size !== role.pids.length) return false;
  for (let i = 0; i < role.pids.length; i++) if (pids.get(role.pids[i] as number) !== role.startTimes[i]) return false;
  return true;
}

export interface LimiterActuatorOptions extends GuardedActuatorOptions<LimiterActuatorSpec> {
  mounts: CgroupMounts;
  /** xl and virsh for libvirt and Xen IDS-VMs (default: from PATH). */
  programs?: HypervisorPrograms;
}

interface CageEntry {
  capPct: number;
  pids: Map<number, number>;
  limiting: boolean;
  seen: boolean;
}

export class LimiterActuator {
  private readonly cages = new Map<string, CageEntry>();
  private readonly staleness: StalenessTracker;
  private readonly link: ActuatorLink;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly sigstop: SigstopLimiter | null;
  private readonly cgroup: CgroupLimiter | null;
  private readonly idsVms: IdsVmLimiter;
  private readonly guardian: GuardianKeeper;
  /** Null in dry-run and until start(). */
  private originals: OriginalSettings | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stateTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  readonly dryRun: boolean;
  decisions = 0;

  constructor(private readonly options: LimiterActuatorOptions) {
    this.log = options.logger;
    this.now = options.now ?? Date.now;
    this.dryRun = options.spec.dryRun;
    this.staleness = new StalenessTracker(options.spec.staleAfterMs);
    this.link = new ActuatorLink({ aggregates: options.aggregates, publish: options.publish, logger: options.logger, onAggregate: (agg) => this.onAggregate(agg) });
    this.guardian = guardianKeeperFor(ACTUATOR_NAME, options, {
      lostMessage: "restore guardian lost: resumed every IDS process; starting a new guardian",
      onLost: () => this.sigstop?.guardianLost(),
      onStarted: async () => {
        this.sigstop?.rearmAll();
        await this.cgroup?.rearmAll();
        await this.idsVms.rearmAll();
      },
    });
    const guardian = (): GuardianClient | null => this.guardian.current;
    if (options.spec.mode === "sigstop") {
      this.sigstop = new SigstopLimiter({ periodMs: options.spec.periodMs, logger: options.logger, dryRun: this.dryRun, guardian });
      this.cgroup = null;
    } else {
      this.cgroup = new CgroupLimiter({ logger: options.logger, dryRun: this.dryRun, mounts: options.mounts, guardian, cages: options.config.cages, originals: () => this.originals, failsafe: options.spec.failsafe });
      this.sigstop = null;
    }
    this.idsVms = new IdsVmLimiter({ logger: options.logger, dryRun: this.dryRun, guardian, originals: () => this.originals, failsafe: options.spec.failsafe, cages: options.config.cages, ...(options.programs === undefined ? {} : { programs: options.programs }) });
    for (const cage of options.config.cages) {
      if (cage.cpu.idsCap !== null) this.cages.set(cage.name, { capPct: cage.cpu.idsCap, pids: new Map(), limiting: false, seen: false });
    }
  }

  get backendKind(): string {
    return this.sigstop?.kind ?? this.cgroup?.kind ?? "none";
  }

  /** For tests: the IDS cgroup of a cage in cgroup mode. */
  cgroupPathOf(cage: string): string | null {
    return this.cgroup?.pathOf(cage) ?? null;
  }

  guardianPid(): number | null {
    return this.guardian.current?.pid ?? null;
  }

  async start(signal?: AbortSignal): Promise<void> {
    if (!this.dryRun && (this.cgroup !== null || this.options.config.cages.some((c) => this.idsVms.has(c.name)))) this.originals = new OriginalSettings("limiter", this.options.originalsFiles ?? originalSettingsFilesFor("limiter", this.options.config));
    const now = this.now();
    for (const name of this.cages.keys()) this.staleness.watch(name, now);
    if (!this.dryRun) await this.guardian.start(signal);
    await this.link.start();
    this.sigstop?.start();
    this.timer = setInterval(() => this.tick(), Math.min(this.options.spec.periodMs, 100));
    this.stateTimer = setInterval(() => this.publishStates(), STATE_EVERY_MS);
    this.log.info({ mode: this.options.spec.mode, cages: [...this.cages.keys()], dryRun: this.dryRun }, "IDS limiter started");
  }

  private onAggregate(agg: CageAggregate): void {
    const e = this.cages.get(agg.cage);
    if (e === undefined) return;
    if (this.staleness.seen(agg.cage, this.now())) this.log.info({ cage: agg.cage }, "aggregates resumed: limiting on fresh data");
    e.seen = true;
    // The resolver's start times, not ones read now: a PID reused since it resolved must not be
    // taken for the IDS (the back ends check them again before each signal or move).
    // A new map only when the IDS changed: the back ends tell a change by the map they get.
    if (sameProcesses(e.pids, agg.ids)) return;
    const next = new Map<number, number>();
    for (const { pid, startTime } of processesOf(agg.ids)) next.set(pid, startTime);
    e.pids = next;
  }

  /** Public for tests. */
  tick(now = this.now()): void {
    if (this.stopping) return;
    this.guardian.current?.heartbeat();
    for (const name of this.staleness.check(now).becameStale) {
      this.log.warn({ cage: name, failsafe: this.options.spec.failsafe }, this.options.spec.failsafe === "hold" ? "aggregates stale: fail-safe, holding the IDS at idsCap" : "aggregates stale: fail-safe, no longer limiting the IDS");
    }
    // Every period for every cage: no entry arrays.
    this.cages.forEach((e, name) => {
      if (!e.seen) return;
      const release = this.staleness.isStale(name) && this.options.spec.failsafe === "release";
      const limit = release ? null : e.capPct;
      if (this.idsVms.has(name)) {
        this.idsVms.setCage(name, limit);
      } else {
        this.sigstop?.setCage(name, limit, e.pids);
        this.cgroup?.setCage(name, limit, e.pids);
      }
      const limiting = limit !== null;
      if (limiting !== e.limiting) {
        e.limiting = limiting;
        this.decide(name, limiting ? null : e.capPct, limit, limiting ? `IDS limited to idsCap ${e.capPct}% by ${this.idsVms.kindOf(name) ?? this.options.spec.mode}` : "aggregates stale: fail-safe release");
      }
    });
  }

  private decide(cage: string, from: number | null, to: number | null, reason: string): void {
    this.decisions++;
    this.link.publishDecision({ v: 1, actuator: ACTUATOR_NAME, cage, timeMs: this.now(), setting: "ids.cap", from, to, reason, dryRun: this.dryRun });
    this.log.info({ cage, setting: "ids.cap", from, to, reason, dryRun: this.dryRun, mode: this.options.spec.mode }, "limiter decision");
  }

  states(now = this.now()): ActuatorState[] {
    const out: ActuatorState[] = [];
    for (const [cage, e] of this.cages) {
      if (!e.seen) continue;
      const error = this.idsVms.has(cage) ? this.idsVms.errorOf(cage) : (this.cgroup?.errorOf(cage) ?? null);
      const mode = actuatorMode({ failing: error !== null, dryRun: this.dryRun, failsafe: this.staleness.isStale(cage) });
      const values: ActuatorState["values"] = {};
      if (e.limiting) values.idsCapPct = e.capPct;
      if (this.sigstop !== null && !this.idsVms.has(cage)) values.idsStoppedPids = this.sigstop.stoppedPids(cage);
      out.push({ v: 1, actuator: ACTUATOR_NAME, cage, timeMs: now, mode, backend: this.idsVms.kindOf(cage) ?? this.backendKind, values });
    }
    return out;
  }

  private publishStates(): void {
    const states = this.states();
    if (this.log.isLevelEnabled("debug")) for (const s of states) this.log.debug({ state: s }, "limiter state");
    for (const s of states) this.link.publishState(s);
  }

  /** Resumes every IDS process / removes the IDS cgroups, then disarms the guardian. */
  async stop(): Promise<void> {
    this.stopping = true;
    // From here the guardian restores the originals, not the fail-safe, should we die mid-stop.
    await this.guardian.beginOrderlyStop();
    if (this.timer) clearInterval(this.timer);
    if (this.stateTimer) clearInterval(this.stateTimer);
    this.sigstop?.stop();
    const cgroupOk = (await this.cgroup?.stop()) ?? true;
    const ok = (await this.idsVms.stop()) && cgroupOk;
    await this.link.close();
    const guardian = this.guardian.take();
    if (guardian !== null) await (ok ? guardian.disarmAndClose() : guardian.closeArmed());
  }
}
