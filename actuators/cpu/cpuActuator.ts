/**
 * The CPU actuator (the cage scheduler): consumes the aggregates (`agg.window`), and on each aggregate (or, with
 * actOnAggregate off, every period) sets each cage's VM cap to (cage cap − IDS CPU) within its floor and ceiling, and its weight reduced by the IDS's
 * share (cageCpuPolicy.ts), through the cage's back end. Stale data → the cage's fail-safe cap.
 * Every change is logged (pino) and published as `act.decision`; `act.state` once a second.
 * Before changing anything it records the original settings (originalSettings.ts: a restart
 * after a crash restores those, not a leftover) and hands them to a restore guardian with the
 * cage's fail-safe cap: if this process dies the guardian puts the fail-safe cap in place (never
 * "no limit") for the restarted actuator to take over; on an orderly stop the originals come back.
 * A cap reset behind its back (read back every period) is applied again.
 */
import type { Logger } from "pino";
import type { CageSpec, CpuActuatorSpec } from "../../config/cageConfig.js";
import type { CageAggregate } from "../../protocol/cageAggregate.js";
import type { ActuatorDecision, ActuatorState } from "../../protocol/actuatorMessages.js";
import { ActuatorLink, STATE_EVERY_MS } from "../common/actuatorLink.js";
import { actuatorMode } from "../common/actuatorMode.js";
import type { GuardedActuatorOptions } from "../common/actuatorOptions.js";
import { guardianKeeperFor, type GuardianKeeper } from "../common/guardianClient.js";
import { OriginalSettings, originalSettingsFilesFor } from "../common/originalSettings.js";
import { carryOutRestore, planOf, restoreCageSettings, RESTORE_STEP_TIMEOUT_MS } from "../common/restoreSteps.js";
import { StalenessTracker } from "../common/stalenessTracker.js";
import { CageCpuController } from "./cageCpuController.js";
import { cageCpuKnobs, sumOfWeights } from "./cageCpuPolicy.js";
import type { CpuBackend, CpuTarget } from "../common/cpuBackend.js";
import type { ProcessIdentity } from "../../host/proc/processIdentity.js";

export const ACTUATOR_NAME = "cpu";

export interface CpuActuatorOptions extends GuardedActuatorOptions<CpuActuatorSpec> {
  hostCapacityPct: number;
  /** Builds each cage's back end; throws for a cage that cannot have one (that cage is in error). */
  backendFor: (cage: CageSpec) => CpuBackend;
}

interface CageEntry {
  name: string;
  controller: CageCpuController;
  /** The cage's fail-safe cap: what the guardian puts in place if this process dies. */
  failsafeCapPct: number;
  backend: CpuBackend | null;
  error: string | null;
  busy: boolean;
  prepared: boolean;
  adopted: string;
  /** The VM processes `adopted` was made from: the controller hands out the same array while they do not change. */
  adoptedFrom: readonly ProcessIdentity[] | null;
  retryAt: number;
}

export class CpuActuator {
  private readonly cages = new Map<string, CageEntry>();
  private readonly staleness: StalenessTracker;
  private readonly link: ActuatorLink;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly guardian: GuardianKeeper;
  /** Null in dry-run (nothing is changed, so nothing recorded) and until start(). */
  private originals: OriginalSettings | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stateTimer: NodeJS.Timeout | null = null;
  /** Cages with fresh aggregates to act on, and the one setImmediate that acts on them all. */
  private readonly actQueue = new Set<CageEntry>();
  private actImmediate: NodeJS.Immediate | null = null;
  private stopping = false;
  readonly dryRun: boolean;
  decisions = 0;
  applyErrors = 0;
  /** Caps found changed behind our back and applied again. */
  reapplied = 0;

  constructor(private readonly options: CpuActuatorOptions) {
    this.log = options.logger;
    this.now = options.now ?? Date.now;
    this.dryRun = options.spec.dryRun;
    this.staleness = new StalenessTracker(options.spec.staleAfterMs);
    this.link = new ActuatorLink({ aggregates: options.aggregates, publish: options.publish, logger: options.logger, onAggregate: (agg) => this.onAggregate(agg) });
    this.guardian = guardianKeeperFor(ACTUATOR_NAME, options, {
      lostMessage: "restore guardian lost; starting a new one",
      onStarted: async () => {
        for (const [name, e] of this.cages) if (e.prepared && e.backend) await this.registerRestore(name, e.backend);
      },
    });
    const sumWeights = sumOfWeights(options.config.cages);
    for (const cage of options.config.cages) {
      const controller = new CageCpuController({
        name: cage.name,
        capPct: cage.cpu.cap,
        weight: cage.cpu.weight,
        sumWeights,
        hostCapacityPct: options.hostCapacityPct,
        knobs: cageCpuKnobs(cage.cpu),
        minChangePct: options.spec.minChangePct,
        idsHoldMs: options.spec.idsHoldMs,
        periodMs: options.spec.periodMs,
      });
      let backend: CpuBackend | null = null;
      let error: string | null = null;
      try {
        backend = options.backendFor(cage);
      } catch (err) {
        error = (err as Error).message;
      }
      const entry: CageEntry = { name: cage.name, controller, failsafeCapPct: cageCpuKnobs(cage.cpu).failsafeCapPct, backend, error, busy: false, prepared: false, adopted: "", adoptedFrom: null, retryAt: 0 };
      this.cages.set(cage.name, entry);
    }
  }

  async start(signal?: AbortSignal): Promise<void> {
    if (!this.dryRun) this.originals = new OriginalSettings("cpu", this.options.originalsFiles ?? originalSettingsFilesFor("cpu", this.options.config));
    const now = this.now();
    for (const [name, e] of this.cages) {
      this.staleness.watch(name, now);
      if (e.backend === null) {
        this.log.error({ cage: name, err: e.error }, "cage has no usable CPU back end; it is left alone");
        continue;
      }
      try {
        await e.backend.open();
        this.log.info({ cage: name, backend: e.backend.kind, target: e.backend.target, dryRun: this.dryRun }, "cage CPU back end opened");
      } catch (err) {
        e.error = (err as Error).message;
        this.log.error({ cage: name, backend: e.backend.kind, err: e.error }, "cannot open the cage's CPU back end; it is left alone");
      }
    }
    if (!this.dryRun) await this.guardian.start(signal);
    await this.link.start();
    this.timer = setInterval(() => this.tick(), this.options.spec.periodMs);
    this.stateTimer = setInterval(() => this.publishStates(), STATE_EVERY_MS);
  }

  /** Records the cage's originals (the first time) and hands them, with its fail-safe, to the guardian. */
  private async registerRestore(cage: string, backend: CpuBackend): Promise<void> {
    const guardian = this.guardian.current;
    if (guardian === null) throw new Error("no restore guardian running");
    const e = this.cages.get(cage) as CageEntry;
    const fresh = backend.restoreActions(e.failsafeCapPct);
    const actions = this.originals === null ? fresh : this.originals.keep(cage, fresh);
    for (const action of actions) await guardian.register(action);
    this.log.debug({ cage, failsafeCapPct: e.failsafeCapPct }, "original settings and fail-safe handed to the restore guardian");
  }

  private onAggregate(agg: CageAggregate): void {
    const e = this.cages.get(agg.cage);
    if (e === undefined) return;
    if (this.staleness.seen(agg.cage, this.now())) this.log.info({ cage: agg.cage }, "aggregates resumed");
    e.controller.observe(agg);
    // The cap follows the window that shows an IDS burst, not the next period tick after it.
    if (this.options.spec.actOnAggregate && !this.stopping) this.queueAct(e);
  }

  /**
   * Acts once the aggregates already received are all observed: after a stall, windows arrive
   * in a burst, and acting on each would swing the cap on every one of them within milliseconds.
   */
  private queueAct(e: CageEntry): void {
    this.actQueue.add(e);
    // One immediate for every cage of a window (or a burst of windows), not one per cage.
    this.actImmediate ??= setImmediate(() => this.actOnQueued());
  }

  private actOnQueued(): void {
    this.actImmediate = null;
    const now = this.now();
    for (const e of this.actQueue) {
      this.actQueue.delete(e);
      if (!this.stopping) this.tickCage(e.name, e, now);
    }
  }

  /** One control period for every cage. Public for tests. */
  tick(now = this.now()): void {
    if (this.stopping) return;
    this.guardian.current?.heartbeat();
    for (const name of this.staleness.check(now).becameStale) {
      this.log.warn({ cage: name, staleAfterMs: this.options.spec.staleAfterMs }, "aggregates stale: applying the cage's fail-safe");
    }
    for (const e of this.cages.values()) this.tickCage(e.name, e, now);
  }

  private tickCage(name: string, e: CageEntry, now: number): void {
    if (e.backend === null || e.busy) return; // busy: the last change (a slow command) is still running
    if (e.error !== null && now < e.retryAt) return; // a failing back end is retried once a second
    const outcome = e.controller.tick(this.staleness.isStale(name), now);
    if (outcome.kind === "hold") {
      if (this.dryRun || !e.prepared) return;
      const applied = e.controller.appliedTarget;
      if (applied !== null && e.error === null && !this.inPlace(name, e, applied)) {
        this.reapplied++;
        this.log.warn({ cage: name, capPct: applied.capPct, backend: e.backend.kind }, "the VM's cap was changed behind the actuator's back: applying it again");
        e.busy = true;
        void this.applyTarget(name, e, applied, applied, "cap changed externally: applied again").finally(() => {
          e.busy = false;
        });
        return;
      }
      void this.adopt(name, e);
      return;
    }
    if (this.dryRun) {
      this.decide(name, e, outcome.from, outcome.target, outcome.reason, null);
      e.controller.markApplied(outcome.target);
      return;
    }
    e.busy = true;
    void this.applyTarget(name, e, outcome.from, outcome.target, outcome.reason).finally(() => {
      e.busy = false;
      // A window that came in while the write ran is acted on now, not at the next period tick.
      if (this.options.spec.actOnAggregate && !this.stopping && e.controller.hasNewWindows) this.queueAct(e);
    });
  }

  /** Whether the applied cap is still in place, read back; true where the back end cannot read it back. */
  private inPlace(name: string, e: CageEntry, applied: CpuTarget): boolean {
    if (e.backend?.isInPlace === undefined) return true;
    try {
      return e.backend.isInPlace(applied);
    } catch (err) {
      this.log.warn({ cage: name, err: (err as Error).message }, "cannot read the VM's cap back");
      return true; // an unreadable file: applying again would fail the same way
    }
  }

  private async adopt(name: string, e: CageEntry): Promise<void> {
    const members = e.controller.vmProcesses;
    // Unchanged VM processes come as the same array: no key to build every period.
    if (members === e.adoptedFrom || e.backend === null) return;
    const key = members.map((p) => `${p.pid}@${p.startTime}`).join(",");
    if (key === e.adopted) {
      e.adoptedFrom = members;
      return;
    }
    try {
      await e.backend.adoptPids(members);
      e.adopted = key;
      e.adoptedFrom = members;
    } catch (err) {
      this.log.warn({ cage: name, err: (err as Error).message }, "cannot move the VM's processes into its cgroup");
    }
  }

  private async applyTarget(name: string, e: CageEntry, from: CpuTarget | null, target: CpuTarget, reason: string): Promise<void> {
    const backend = e.backend as CpuBackend;
    try {
      if (!e.prepared) {
        if (this.guardian.current === null) throw new Error("no restore guardian running: not changing anything");
        await backend.prepare();
        await this.registerRestore(name, backend);
        e.prepared = true;
        e.error = null;
      }
      await this.adopt(name, e);
      await backend.apply(target);
      e.controller.markApplied(target);
      if (e.error !== null) this.log.info({ cage: name }, "back end works again");
      e.error = null;
      this.decide(name, e, from, target, reason, null);
    } catch (err) {
      this.applyErrors++;
      const message = (err as Error).message;
      if (e.error !== message) this.log.error({ cage: name, backend: backend.kind, err: message }, "applying the CPU setting failed");
      e.error = message;
      e.retryAt = this.now() + 1000;
      this.decide(name, e, from, target, reason, message);
    }
  }

  private decide(cage: string, e: CageEntry, from: CpuTarget | null, to: CpuTarget, reason: string, error: string | null): void {
    const timeMs = this.now();
    const base = { v: 1 as const, actuator: ACTUATOR_NAME, cage, timeMs, reason, dryRun: this.dryRun, ...(error === null ? {} : { error }) };
    const out: ActuatorDecision[] = [];
    if (from === null || from.capPct !== to.capPct) out.push({ ...base, setting: "vm.cpu.cap", from: from?.capPct ?? null, to: to.capPct });
    if (to.weight !== null && (from === null || from.weight !== to.weight)) out.push({ ...base, setting: "vm.cpu.weight", from: from?.weight ?? null, to: to.weight });
    for (const d of out) {
      this.decisions++;
      this.link.publishDecision(d);
      this.log.info({ cage, setting: d.setting, from: d.from, to: d.to, reason, dryRun: this.dryRun, backend: e.backend?.kind, ...(error === null ? {} : { error }) }, error === null ? "cpu decision" : "cpu decision failed");
    }
  }

  /** Each cage's act.state. Public for tests. */
  states(now = this.now()): ActuatorState[] {
    const out: ActuatorState[] = [];
    for (const [cage, e] of this.cages) {
      const c = e.controller;
      if (c.currentMode === "waiting" && e.error === null) continue;
      const mode = actuatorMode({ failing: e.error !== null || e.backend === null, dryRun: this.dryRun, failsafe: c.currentMode === "failsafe" });
      const values: ActuatorState["values"] = {};
      const t = c.appliedTarget;
      if (t?.capPct !== null && t?.capPct !== undefined) values.vmCpuCapPct = t.capPct;
      if (t?.weight !== null && t?.weight !== undefined) values.vmCpuWeight = t.weight;
      out.push({ v: 1, actuator: ACTUATOR_NAME, cage, timeMs: now, mode, backend: e.backend?.kind ?? "none", values });
    }
    return out;
  }

  private publishStates(): void {
    for (const s of this.states()) this.link.publishState(s);
  }

  /** Stops and puts every cage back as it was found. */
  async stop(): Promise<void> {
    this.stopping = true;
    // From here the guardian restores the originals, not the fail-safe, should we die mid-stop.
    await this.guardian.beginOrderlyStop();
    if (this.timer) clearInterval(this.timer);
    if (this.stateTimer) clearInterval(this.stateTimer);
    if (this.actImmediate !== null) clearImmediate(this.actImmediate);
    this.actImmediate = null;
    this.actQueue.clear();
    await this.link.close();
    // Wait for a change in flight, so the restore comes after it.
    for (let i = 0; i < 100 && [...this.cages.values()].some((e) => e.busy); i++) await new Promise((r) => setTimeout(r, 20));
    let allRestored = true;
    for (const [name, e] of this.cages) {
      if (!e.prepared || e.backend === null) continue;
      try {
        await restoreCageSettings(e.backend, this.originals, name);
        this.log.info({ cage: name, backend: e.backend.kind }, "original CPU settings restored");
      } catch (err) {
        allRestored = false;
        this.log.error({ cage: name, err: (err as Error).message }, "restoring the original CPU settings failed; the guardian retries");
      }
    }
    // Cages an earlier run changed and died on, that this run never touched: their originals too.
    for (const name of this.originals?.cageNames ?? []) {
      if (this.cages.get(name)?.prepared === true) continue;
      const failures = await carryOutRestore(planOf(this.originals?.recorded(name) ?? []), RESTORE_STEP_TIMEOUT_MS);
      if (failures.length === 0) {
        this.originals?.forget(name);
        this.log.info({ cage: name }, "original CPU settings left by an earlier run restored");
      } else {
        this.log.error({ cage: name, failures }, "restoring the original CPU settings left by an earlier run failed; kept for the next stop");
      }
    }
    const guardian = this.guardian.take();
    if (guardian !== null) await (allRestored ? guardian.disarmAndClose() : guardian.closeArmed());
  }
}
