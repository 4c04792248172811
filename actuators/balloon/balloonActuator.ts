/**
 * The balloon actuator: consumes the pipeline's per-cage aggregates and, every `periodMs` (and,
 * with `actOnAggregate`, on each aggregate of a cage, for that cage), moves each cage's VM
 * target to base − IDS memory (balloonPolicy.ts decides; a back end applies), logs
 * each decision (pino) and publishes it as `act.decision`, and the cage's state as `act.state`.
 *
 * Failures never end the loop: a back end that fails (QMP socket gone, no balloon device, xl
 * missing) makes that cage's state `error` and counts `backendErrors`; the next period tries again.
 * Before its first change to a VM it records the VM's memory as found (originalSettings.ts) and
 * hands it to a restore guardian with the cage's fail-safe (`memory.failsafe`, default base): if
 * this process dies, even by SIGKILL, the guardian puts the VM at its fail-safe for the restarted
 * actuator to take over. On stop(), every VM it changed gets its recorded original back (a VM
 * without a recorded original: its base; dom0 its base), so a VM is never left shrunk by an
 * actuator that exits normally (SIGTERM/SIGINT, parent gone).
 */
import type { Logger } from "pino";
import type { BalloonActuatorSpec, CageSpec } from "../../config/cageConfig.js";
import type { CageAggregate, CageIdsMemory } from "../../protocol/cageAggregate.js";
import type { ActuatorDecision, ActuatorMode, ActuatorState } from "../../protocol/actuatorMessages.js";
import { ActuatorLink } from "../common/actuatorLink.js";
import { actuatorMode } from "../common/actuatorMode.js";
import type { GuardedActuatorOptions } from "../common/actuatorOptions.js";
import { GuardianKeeper } from "../common/guardianClient.js";
import type { RestoreAction } from "../common/guardianProtocol.js";
import { OriginalSettings, originalSettingsFilesFor } from "../common/originalSettings.js";
import { carryOutRestore, planOf, RESTORE_STEP_TIMEOUT_MS } from "../common/restoreSteps.js";
import { StalenessTracker } from "../common/stalenessTracker.js";
import type { BalloonBackend } from "./balloonBackend.js";
import { chooseBackend, createBackend, type BackendChoice } from "./backendChoice.js";
import { initialCageState, stepPolicy, validateLimits, type BalloonCageState, type BalloonLimits, type CageMemoryBounds } from "./balloonPolicy.js";
import { XenDom0 } from "./commandBackends.js";

export const ACTUATOR_NAME = "balloon";

export interface BalloonActuatorOptions extends GuardedActuatorOptions<BalloonActuatorSpec> {
  /** Builds a cage's back end instead of createBackend (tests: a back end around a fake xl). */
  backendFor?: (cage: CageSpec, choice: BackendChoice) => BalloonBackend;
}

/** IDS memory from an aggregate or an `agg.memory` element: RSS + resident page cache attributed to the IDS (the decoder fills 0 when absent). */
export function idsMemoryBytes(agg: Pick<CageAggregate, "ids"> | CageIdsMemory): number {
  return agg.ids.rssBytes + agg.ids.pageCacheBytes;
}

interface CageEntry {
  cage: CageSpec;
  bounds: CageMemoryBounds;
  backend: BalloonBackend | null;
  /** Why the cage has no back end (config), reported in every state. */
  backendProblem: string | null;
  backendKind: string;
  isXen: boolean;
  state: BalloonCageState;
  idsBytes: number | null;
  actualBytes: number | null;
  backendErrors: number;
  lastError: string | null;
  /** The back end's generation when last seen (QMP: connection count; a change = QEMU restarted). */
  generation: number | undefined;
  /** The guardian's step for this VM (original + fail-safe), once handed over; null before the first change. */
  restore: RestoreAction[] | null;
}

/** What a test or the lab can read back. */
export interface BalloonCageSnapshot {
  cage: string;
  mode: ActuatorMode;
  backend: string;
  idsBytes: number | null;
  targetBytes: number | null;
  actualBytes: number | null;
  movedBytes: number | null;
  stuck: boolean;
  backendErrors: number;
  lastError: string | null;
}

export class BalloonActuator {
  private readonly cages = new Map<string, CageEntry>();
  private readonly staleness: StalenessTracker;
  private readonly link: ActuatorLink;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly limits: BalloonLimits;
  private readonly dom0: XenDom0 | null;
  private dom0TargetBytes: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  /** Cages with an aggregate not yet acted on (actOnAggregate): ticked as soon as the running tick ends. */
  private readonly fresh = new Set<string>();
  private stopping = false;
  private readonly guardian: GuardianKeeper;
  /** Null in dry-run and until start(). */
  private originals: OriginalSettings | null = null;
  readonly dryRun: boolean;
  ticks = 0;
  tickErrors = 0;

  constructor(private readonly options: BalloonActuatorOptions) {
    const spec = options.spec;
    this.log = options.logger;
    this.now = options.now ?? Date.now;
    this.dryRun = spec.dryRun;
    this.limits = {
      maxStepBytes: spec.maxStepBytes,
      hysteresisBytes: spec.hysteresisBytes,
      minMoveIntervalMs: spec.minMoveIntervalMs,
      reverseHoldMs: spec.reverseHoldMs,
      stuckAfterMs: spec.stuckAfterMs,
      stuckRetargetBytes: spec.stuckRetargetBytes,
      toleranceBytes: spec.toleranceBytes,
    };
    this.staleness = new StalenessTracker(spec.staleAfterMs);
    this.guardian = new GuardianKeeper({
      name: ACTUATOR_NAME,
      watchdogMs: options.guardianWatchdogMs,
      startTimeoutMs: spec.guardianStartTimeoutMs,
      log: this.log,
      now: this.now,
      lostMessage: "restore guardian lost; starting a new one (no VM is changed for the first time meanwhile)",
      onStarted: async () => {
        const g = this.guardian.current;
        for (const c of this.cages.values()) for (const a of c.restore ?? []) await g?.register(a);
      },
    });
    this.dom0 = spec.dom0 === null ? null : new XenDom0({ commandPath: spec.xlPath, timeoutMs: spec.commandTimeoutMs });
    for (const cage of options.config.cages) {
      if (cage.memory === null) continue; // only measured, nothing to balloon
      const bounds = { baseBytes: cage.memory.baseBytes, floorBytes: cage.memory.floorBytes, failsafeBytes: cage.memory.failsafeBytes };
      validateLimits(this.limits, bounds);
      const choice = chooseBackend(cage);
      let backend: BalloonBackend | null = null;
      let backendProblem: string | null = null;
      if (choice.ok) {
        try {
          backend = options.backendFor
            ? options.backendFor(cage, choice.choice)
            : createBackend(choice.choice, spec, (message) => this.log.warn({ cage: cage.name }, message));
        } catch (err) {
          backendProblem = `cage ${cage.name}: ${(err as Error).message}`;
        }
      } else {
        backendProblem = choice.error;
      }
      if (backendProblem !== null) this.log.error({ cage: cage.name }, `${backendProblem}; this cage is not ballooned`);
      this.cages.set(cage.name, {
        cage,
        bounds,
        backend,
        backendProblem,
        backendKind: backend?.kind ?? (choice.ok ? choice.choice.kind : "none"),
        isXen: choice.ok && choice.choice.kind === "xl",
        state: initialCageState(),
        idsBytes: null,
        actualBytes: null,
        backendErrors: 0,
        lastError: null,
        generation: undefined,
        restore: null,
      });
    }
    this.link = new ActuatorLink({
      aggregates: options.aggregates,
      publish: options.publish,
      logger: this.log,
      onAggregate: (agg) => this.onAggregate(agg),
      onIdsMemory: (memory) => this.onIdsMemory(memory),
    });
  }

  get cageNames(): string[] {
    return [...this.cages.keys()];
  }

  async start(signal?: AbortSignal): Promise<void> {
    if (!this.dryRun) {
      this.originals = new OriginalSettings("balloon", this.options.originalsFiles ?? originalSettingsFilesFor("balloon", this.options.config));
      await this.guardian.start(signal);
    }
    await this.link.start();
    const now = this.now();
    for (const name of this.cages.keys()) this.staleness.watch(name, now);
    this.log.info(
      { cages: [...this.cages.values()].map((c) => ({ cage: c.cage.name, backend: c.backend?.target ?? c.backendProblem })), dryRun: this.dryRun, periodMs: this.options.spec.periodMs, limits: this.limits },
      "balloon actuator started",
    );
    this.timer = setInterval(() => this.scheduleTick(), this.options.spec.periodMs);
  }

  private scheduleTick(): void {
    if (this.ticking !== null || this.stopping) return; // a slow back end: skip, never pile up
    this.runTicks(() => this.tick());
  }

  /** Ticks the cages with fresh aggregates, one tick at a time; a busy tick leaves them for the next. */
  private scheduleFreshTick(): void {
    if (this.ticking !== null || this.stopping || this.fresh.size === 0) return;
    const names = [...this.fresh];
    this.fresh.clear();
    this.runTicks(() => this.tick(names));
  }

  private runTicks(run: () => Promise<void>): void {
    this.ticking = run()
      .catch((err: unknown) => {
        this.tickErrors++;
        this.log.error({ err }, "balloon tick failed; continuing");
      })
      .finally(() => {
        this.ticking = null;
        // Aggregates that came during the tick are acted on now, not a period later.
        this.scheduleFreshTick();
      });
  }

  private onAggregate(agg: CageAggregate): void {
    const c = this.cages.get(agg.cage);
    if (c === undefined) return;
    if (this.staleness.seen(agg.cage, this.now())) this.log.info({ cage: agg.cage }, "aggregates resumed; leaving the fail-safe target");
    c.idsBytes = idsMemoryBytes(agg);
    if (this.options.spec.actOnAggregate) {
      this.fresh.add(agg.cage);
      this.scheduleFreshTick();
    }
  }

  /**
   * The IDS memory the pipeline sends between windows as it moves. Only `agg.window` counts as
   * the cage's data being fresh (staleness is the aggregates'); this only brings the figure
   * forward, and acts on it at once with actOnAggregate.
   */
  private onIdsMemory(memory: CageIdsMemory): void {
    const c = this.cages.get(memory.cage);
    if (c === undefined || c.idsBytes === null || this.staleness.isStale(memory.cage)) return;
    c.idsBytes = idsMemoryBytes(memory);
    if (this.options.spec.actOnAggregate) {
      this.fresh.add(memory.cage);
      this.scheduleFreshTick();
    }
  }

  /** One control step for the named cages (default: every cage). Public for tests that step it by hand. */
  async tick(names?: readonly string[]): Promise<void> {
    this.ticks++;
    const now = this.now();
    for (const name of this.staleness.check(now).becameStale) {
      this.log.warn({ cage: name, staleAfterMs: this.staleness.staleAfterMs }, "aggregates stale: applying the fail-safe target");
    }
    for (const c of this.cages.values()) {
      if (names === undefined || names.includes(c.cage.name)) await this.tickCage(c, now);
    }
  }

  private async tickCage(c: CageEntry, now: number): Promise<void> {
    const name = c.cage.name;
    const dryRun = this.dryRun;
    if (c.backend === null) {
      this.publishState(c, now, "error");
      return;
    }
    let failure: Error | null = null;
    try {
      c.actualBytes = await c.backend.readActual();
    } catch (err) {
      c.actualBytes = null;
      failure = err as Error;
    }
    const generation = c.backend.generation;
    if (generation !== c.generation) {
      if (c.generation !== undefined && c.state.targetBytes !== null) {
        this.log.warn({ cage: name, backend: c.backend.target }, "back end reconnected (VM restarted?): its balloon was reset; re-applying the target");
        c.state = initialCageState();
      }
      c.generation = generation;
    }
    const stale = this.staleness.isStale(name);
    // Before the first aggregate (and before the cage counts as stale) there is nothing to act on.
    const waiting = !stale && c.idsBytes === null;
    if (!waiting && failure === null) {
      const result = stepPolicy(c.state, { nowMs: now, idsBytes: stale ? null : c.idsBytes, actualBytes: c.actualBytes, dryRun }, c.bounds, this.limits);
      if (result.becameStuck) {
        this.log.warn({ cage: name, targetBytes: c.state.targetBytes, actualBytes: c.actualBytes, stuckAfterMs: this.limits.stuckAfterMs, backend: c.backend.target }, "balloon stuck: the VM has not moved toward its target; not pushing further moves until it does or the target changes");
      }
      if (result.recovered) this.log.info({ cage: name, actualBytes: c.actualBytes }, "balloon no longer stuck");
      if (result.move === null) {
        c.state = result.state;
      } else {
        const err = await this.applyMove(c, result.move.fromBytes, result.move.toBytes, result.move.reason, now);
        if (err === null) c.state = result.state;
        else {
          // Not applied: keep the old target, but count the attempt for the rate limit.
          c.state = { ...c.state, lastMoveMs: now };
          failure = err;
        }
      }
    }
    if (failure !== null) this.noteFailure(c, failure);
    else c.lastError = null;
    this.publishState(c, now, actuatorMode({ failing: failure !== null, dryRun, failsafe: stale }));
  }

  /** Sets the VM's target (and dom0's for Xen, in the order that never overcommits). Returns the error, if any. */
  private async applyMove(c: CageEntry, from: number | null, to: number, reason: string, now: number): Promise<Error | null> {
    const dryRun = this.dryRun;
    const decision: ActuatorDecision = { v: 1, actuator: ACTUATOR_NAME, cage: c.cage.name, timeMs: now, setting: "vm.memory.target", from, to, reason, dryRun };
    const dom0Next = c.isXen && this.dom0 !== null ? this.dom0TargetWith(c, to) : null;
    const backend = c.backend as BalloonBackend;
    let error: Error | null = null;
    if (!dryRun) {
      try {
        await this.guard(c);
        // Growing the VM takes from dom0: shrink dom0 first. Shrinking the VM frees memory: then grow dom0.
        const growing = from !== null && to > from;
        if (growing && dom0Next !== null) await this.setDom0(c, dom0Next, now);
        await backend.apply(to);
        if (!growing && dom0Next !== null) await this.setDom0(c, dom0Next, now);
      } catch (err) {
        error = err as Error;
        decision.error = error.message;
      }
    } else if (dom0Next !== null && dom0Next !== this.dom0TargetBytes) {
      this.publishDecision({ v: 1, actuator: ACTUATOR_NAME, cage: c.cage.name, timeMs: now, setting: "host.memory.target", from: this.dom0TargetBytes, to: dom0Next, reason: "dom0 gains what the Xen cages give up", dryRun: true });
    }
    this.publishDecision(decision);
    return error;
  }

  /**
   * Before the first change to a VM: record its memory as found and hand the guardian the step
   * that puts it at its fail-safe should we die. A back end that cannot read its setting back
   * (a test stand-in) has no such step and is changed unguarded.
   */
  private async guard(c: CageEntry): Promise<void> {
    if (c.restore !== null) return;
    const backend = c.backend as BalloonBackend;
    if (backend.restoreAction === undefined) {
      c.restore = [];
      return;
    }
    const g = this.guardian.current;
    if (g === null) throw new Error("no restore guardian running: not changing anything");
    const fresh = await backend.restoreAction(c.bounds.failsafeBytes);
    const actions = this.originals?.keep(c.cage.name, [fresh]) ?? [fresh];
    for (const a of actions) await g.register(a);
    c.restore = actions;
    this.log.info({ cage: c.cage.name, failsafeBytes: c.bounds.failsafeBytes }, "the VM's memory as found recorded and handed to the restore guardian");
  }

  private dom0TargetWith(changed: CageEntry, to: number): number {
    const dom0 = this.options.spec.dom0 as { baseBytes: number; maxBytes: number };
    let moved = 0;
    for (const c of this.cages.values()) {
      if (!c.isXen) continue;
      const target = c === changed ? to : c.state.targetBytes;
      if (target !== null) moved += c.bounds.baseBytes - target;
    }
    return Math.min(dom0.maxBytes, dom0.baseBytes + Math.max(0, moved));
  }

  private async setDom0(c: CageEntry, bytes: number, now: number): Promise<void> {
    if (this.dom0 === null || bytes === this.dom0TargetBytes) return;
    const decision: ActuatorDecision = { v: 1, actuator: ACTUATOR_NAME, cage: c.cage.name, timeMs: now, setting: "host.memory.target", from: this.dom0TargetBytes, to: bytes, reason: "dom0 gains what the Xen cages give up", dryRun: false };
    try {
      await this.dom0.apply(bytes);
      this.dom0TargetBytes = bytes;
    } catch (err) {
      decision.error = (err as Error).message;
      throw err;
    } finally {
      this.publishDecision(decision);
    }
  }

  private noteFailure(c: CageEntry, err: Error): void {
    c.backendErrors++;
    // One error line per distinct message; repeats go to debug so a dead VM does not flood the log.
    if (err.message !== c.lastError) this.log.error({ cage: c.cage.name, backend: c.backend?.target, err: err.message, backendErrors: c.backendErrors }, "balloon back end failed; retrying next period");
    else this.log.debug({ cage: c.cage.name, err: err.message, backendErrors: c.backendErrors }, "balloon back end still failing");
    c.lastError = err.message;
  }

  private publishDecision(d: ActuatorDecision): void {
    if (d.error !== undefined) this.log.error({ decision: d }, `balloon decision not applied: ${d.error}`);
    else this.log.info({ decision: d }, `balloon ${d.setting} ${d.from ?? "none"} -> ${d.to ?? "none"}${d.dryRun ? " (dry-run)" : ""}: ${d.reason}`);
    this.link.publishDecision(d);
  }

  private publishState(c: CageEntry, now: number, mode: ActuatorMode): void {
    const values: ActuatorState["values"] = { balloonStuck: c.state.stuck ? 1 : 0, backendErrors: c.backendErrors };
    if (c.state.targetBytes !== null) {
      values.vmTargetBytes = c.state.targetBytes;
      values.movedBytes = c.bounds.baseBytes - c.state.targetBytes;
    }
    if (c.actualBytes !== null) values.vmActualBytes = c.actualBytes;
    if (c.isXen && this.dom0TargetBytes !== null) values.hostTargetBytes = this.dom0TargetBytes;
    this.link.publishState({ v: 1, actuator: ACTUATOR_NAME, cage: c.cage.name, timeMs: now, mode, backend: c.backendKind, values });
  }

  snapshot(): BalloonCageSnapshot[] {
    return [...this.cages.values()].map((c) => ({
      cage: c.cage.name,
      mode: actuatorMode({ failing: c.backend === null || c.lastError !== null, dryRun: this.dryRun, failsafe: this.staleness.isStale(c.cage.name) }),
      backend: c.backendKind,
      idsBytes: c.idsBytes,
      targetBytes: c.state.targetBytes,
      actualBytes: c.actualBytes,
      movedBytes: c.state.targetBytes === null ? null : c.bounds.baseBytes - c.state.targetBytes,
      stuck: c.state.stuck,
      backendErrors: c.backendErrors,
      lastError: c.lastError,
    }));
  }

  /**
   * Stops the loop and gives every VM it shrank its base back (dom0 first back to its base, so the
   * memory is there for the VMs), then closes back ends and sockets. Restore failures are logged.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    // From here the guardian restores the originals, not the fail-safe, should we die mid-stop.
    await this.guardian.beginOrderlyStop();
    if (this.timer !== null) clearInterval(this.timer);
    await this.ticking;
    const restored = this.dryRun ? true : await this.restore();
    for (const c of this.cages.values()) await c.backend?.close().catch(() => undefined);
    await this.link.close();
    const guardian = this.guardian.take();
    if (guardian !== null) await (restored ? guardian.disarmAndClose() : guardian.closeArmed());
  }

  /** Puts every VM changed back (recorded original, else base) and dom0 at its base; false when something failed. */
  private async restore(): Promise<boolean> {
    let ok = true;
    const now = this.now();
    const dom0 = this.options.spec.dom0;
    if (this.dom0 !== null && dom0 !== null && this.dom0TargetBytes !== null && this.dom0TargetBytes !== dom0.baseBytes) {
      const d: ActuatorDecision = { v: 1, actuator: ACTUATOR_NAME, cage: "dom0", timeMs: now, setting: "host.memory.target", from: this.dom0TargetBytes, to: dom0.baseBytes, reason: "actuator exiting: restore dom0's base", dryRun: false };
      try {
        await this.dom0.apply(dom0.baseBytes);
        this.dom0TargetBytes = dom0.baseBytes;
      } catch (err) {
        d.error = (err as Error).message;
      }
      this.publishDecision(d);
    }
    for (const c of this.cages.values()) {
      const recorded = this.originals?.recorded(c.cage.name) ?? [];
      if (recorded.length > 0) {
        // What was there before the agent (recorded by this run or by one that crashed). QEMU
        // serves one QMP client at a time: our own connection goes first or the restore waits on it.
        await c.backend?.close().catch(() => undefined);
        const failures = await carryOutRestore(planOf(recorded), RESTORE_STEP_TIMEOUT_MS);
        const to = recorded[0]?.op === "qmp" ? recorded[0].bytes : null;
        const d: ActuatorDecision = { v: 1, actuator: ACTUATOR_NAME, cage: c.cage.name, timeMs: now, setting: "vm.memory.target", from: c.state.targetBytes, to, reason: "actuator exiting: restore the VM's memory as found", dryRun: false };
        if (failures.length === 0) this.originals?.forget(c.cage.name);
        else {
          ok = false;
          d.error = failures.join("; ");
        }
        this.publishDecision(d);
        continue;
      }
      if (c.backend === null || c.state.targetBytes === null || c.state.targetBytes === c.bounds.baseBytes) continue;
      const d: ActuatorDecision = { v: 1, actuator: ACTUATOR_NAME, cage: c.cage.name, timeMs: now, setting: "vm.memory.target", from: c.state.targetBytes, to: c.bounds.baseBytes, reason: "actuator exiting: restore the VM's base", dryRun: false };
      try {
        await c.backend.apply(c.bounds.baseBytes);
        c.state = { ...c.state, targetBytes: c.bounds.baseBytes };
      } catch (err) {
        ok = false;
        d.error = (err as Error).message;
      }
      this.publishDecision(d);
    }
    return ok;
  }
}
