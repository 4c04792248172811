/**
 * The memory collector's loop, without process concerns (arguments, signals, sockets): it
 * re-resolves the cages every resolveMs, samples the tracked PIDs every sampleMs and publishes
 * each batch, plus a status message every statusMs. With idsSampleMs it also samples just the
 * IDS PIDs of idsSampleCages that often: the balloon follows the IDS, and a statm read per IDS
 * (status only for those that moved) costs far less than sampling every VM process as fast.
 * A failing iteration is logged and the loop goes on: one bad read must not stop the agent's
 * memory figures.
 *
 * With `membersFrom: "pipeline"` (as `cage run` starts it) it scans nothing: the pipeline scans
 * /proc anyway, and its `agg.members` messages, handed to takeMembers(), are the membership.
 */
import type { Logger } from "pino";
import type { AgentConfig, CageSpec } from "../../config/cageConfig.js";
import type { CageMembersEntry, CageMembersMessage, RoleMembers } from "../../protocol/cageMembers.js";
import { processesOf } from "../../protocol/cageAggregate.js";
import { encodeMemoryBatch } from "../../protocol/rawBatches.js";
import { Encoding, Topic } from "../../protocol/wireFormat.js";
import { CollectorStatusPublisher, type CollectorState, type StatusSink } from "../../runtime/collectorStatus.js";
import { CageResolver, procFieldsFor } from "../../host/proc/cageMembership.js";
import { PidTracker, type MemberProcess } from "../../host/proc/pidTracker.js";
import { KeptProcFiles } from "../../host/proc/keptProcFiles.js";
import { ProcessScanner } from "../../host/proc/processTable.js";
import { statmResidentKey } from "../../host/proc/procStatus.js";
import { sampleMemory } from "./memorySampler.js";

export type Publisher = StatusSink;

export interface MemoryCollectorOptions {
  cages: CageSpec[];
  publisher: Publisher;
  log: Logger;
  sampleMs: number;
  /** Period of the IDS-only sample; null = off (the IDS is sampled every sampleMs with the rest). */
  idsSampleMs?: number | null;
  /** The cages whose IDS the IDS-only sample reads (idsSampleCages()); default: every cage. */
  idsSampleCages?: readonly string[];
  resolveMs: number;
  /**
   * "proc" (default): resolve the cages from /proc every resolveMs. "pipeline": never scan; the
   * membership is what takeMembers() is given (resolveMs is then unused).
   */
  membersFrom?: "proc" | "pipeline";
  statusMs?: number;
  procRoot?: string;
}

export const COLLECTOR_NAME = "memory";

/**
 * While an IDS's memory moves, its next sample comes this soon (ms) rather than idsSampleMs: the
 * balloon trails an allocating IDS by what it allocates between two samples, and a steady IDS
 * costs only the idsSampleMs reads.
 */
export const IDS_MOVING_SAMPLE_MS = 10;

/**
 * The cages whose IDS is worth the IDS-only sample: it exists so the balloon sees an IDS's memory
 * move within idsMemorySampleMs, and the balloon acts only on cages with a memory section. An
 * external actuator may act on any cage's memory, so with one every cage is sampled. Empty: the
 * IDS-only sample is not needed, the full sample (memorySampleMs) covers the IDS.
 */
export function idsSampleCages(config: Pick<AgentConfig, "agent" | "cages">): string[] {
  if (config.agent.actuators.external.length > 0) return config.cages.map((c) => c.name);
  if (config.agent.actuators.balloon === null) return [];
  return config.cages.filter((c) => c.memory !== null).map((c) => c.name);
}

export class MemoryCollector {
  readonly tracker = new PidTracker();
  readonly counters = {
    resolves: 0,
    resolveErrors: 0,
    /** `agg.members` messages rejected as malformed (membersFrom "pipeline"). */
    invalidMembers: 0,
    samples: 0,
    idsSamples: 0,
    sampleErrors: 0,
    processesSampled: 0,
    vanished: 0,
    readFailures: 0,
    conflicts: 0,
    trackedPids: 0,
  };
  private readonly timers: NodeJS.Timeout[] = [];
  private idsTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private lastConflicts = "";
  private resolver: CageResolver | null = null;
  private readonly status: CollectorStatusPublisher;
  /** The resolution's /proc scan and the samples' status reads, through descriptors kept open (closed by stop()). */
  private readonly scanner: ProcessScanner;
  private readonly statusFiles: KeptProcFiles;
  private readonly statmFiles: KeptProcFiles;
  /** IDS PID → statmResidentKey when sampleIds last read it. */
  private readonly idsStatm = new Map<number, string>();
  /** What sampleIds reads: the IDS PIDs of idsSampleCages, each once, as of the last resolve. */
  private idsPids: number[] = [];
  private readonly idsCages: ReadonlySet<string>;
  private readonly cageNames: ReadonlySet<string>;
  private lastInvalidMembers = "";
  /** The cages of the last agg.members taken. */
  private lastMembers: readonly CageMembersEntry[] | null = null;

  constructor(private readonly options: MemoryCollectorOptions) {
    this.status = new CollectorStatusPublisher({ collector: COLLECTOR_NAME, publisher: options.publisher, log: options.log, counters: () => this.counters });
    this.scanner = new ProcessScanner(options.procRoot ?? "/proc");
    this.statusFiles = new KeptProcFiles(options.procRoot ?? "/proc");
    this.statmFiles = new KeptProcFiles(options.procRoot ?? "/proc");
    this.idsCages = new Set(options.idsSampleCages ?? options.cages.map((c) => c.name));
    this.cageNames = new Set(options.cages.map((c) => c.name));
  }

  start(): void {
    const { sampleMs, idsSampleMs = null, resolveMs, statusMs = 5000, membersFrom = "proc" } = this.options;
    if (membersFrom === "proc") {
      this.resolve();
      this.timers.push(setInterval(() => this.resolve(), resolveMs));
    }
    this.status.publish();
    this.sample();
    this.timers.push(
      setInterval(() => this.sample(), sampleMs),
      setInterval(() => this.publishStatus("running"), statusMs),
    );
    if (idsSampleMs !== null) this.scheduleIdsSample(idsSampleMs, idsSampleMs);
  }

  /** The IDS-only sample, sooner while it finds memory moving (IDS_MOVING_SAMPLE_MS). */
  private scheduleIdsSample(inMs: number, idsSampleMs: number): void {
    this.idsTimer = setTimeout(() => {
      if (this.stopped) return;
      const moving = this.sampleIds();
      this.scheduleIdsSample(moving ? Math.min(IDS_MOVING_SAMPLE_MS, idsSampleMs) : idsSampleMs, idsSampleMs);
    }, inMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.idsTimer !== null) clearTimeout(this.idsTimer);
    for (const t of this.timers.splice(0)) clearInterval(t);
    this.scanner.close();
    this.statusFiles.close();
    this.statmFiles.close();
    this.status.set("stopped");
  }

  /** Re-reads /proc and the cage membership; on failure the previous membership stays. */
  resolve(): void {
    const { log, cages } = this.options;
    try {
      const table = this.scanner.scan({ read: procFieldsFor(cages), onError: (pid, err) => log.debug({ pid, err: err.message }, "process unreadable, skipped") });
      this.resolver ??= new CageResolver(cages);
      const { members, conflicts } = this.resolver.resolve(table);
      this.track(members);
      const summary = conflicts.map((c) => c.message).join("\n");
      if (summary !== this.lastConflicts) {
        for (const c of conflicts) log.warn({ pid: c.pid, cage: c.cage, otherCage: c.otherCage }, c.message);
        this.lastConflicts = summary;
      }
      this.counters.conflicts = conflicts.length;
    } catch (err) {
      this.counters.resolveErrors++;
      log.error({ err }, "resolving cages failed; keeping the previous membership");
    }
  }

  /**
   * Takes the pipeline's membership (membersFrom "pipeline"): the pipeline has already settled
   * conflicts, so each PID comes with one cage and role. Cages the cage file does not name are
   * ignored (a pipeline started with another file).
   */
  takeMembers(message: CageMembersMessage): void {
    // The pipeline sends the membership after every resolution, mostly unchanged: nothing to redo then.
    if (this.lastMembers !== null && sameMembers(this.lastMembers, message.cages)) {
      this.counters.resolves++;
      return;
    }
    this.lastMembers = message.cages;
    const members = new Map<string, { vm: MemberProcess[]; ids: MemberProcess[] }>();
    const role = (r: RoleMembers): MemberProcess[] => processesOf(r).map((p) => ({ ...p, comm: null }));
    for (const c of message.cages) if (this.cageNames.has(c.cage)) members.set(c.cage, { vm: role(c.vm), ids: role(c.ids) });
    this.track(members);
  }

  /**
   * Counts a malformed `agg.members` message; the membership stays as it was. Logged when the
   * reason differs from the last one's, so one broken publisher does not log twice a second.
   */
  rejectMembers(reason: string): void {
    this.counters.invalidMembers++;
    if (reason === this.lastInvalidMembers) return;
    this.lastInvalidMembers = reason;
    this.options.log.warn({ err: reason, invalidTotal: this.counters.invalidMembers }, "malformed membership message from the pipeline, skipped; keeping the previous membership");
  }

  private track(members: ReadonlyMap<string, { vm: readonly MemberProcess[]; ids: readonly MemberProcess[] }>): void {
    const { log } = this.options;
    for (const c of this.tracker.update(members)) {
      const level = c.role === "ids" ? "info" : "debug";
      log[level]({ change: c.kind, cage: c.cage, role: c.role, pid: c.pid, startTime: c.startTime, ...(c.comm === null ? {} : { comm: c.comm }) }, `${c.role} process ${c.kind}`);
    }
    this.counters.resolves++;
    const tracked = new Set(this.tracker.pids());
    this.counters.trackedPids = tracked.size;
    this.statusFiles.retain((pid) => tracked.has(pid));
    this.statmFiles.retain((pid) => tracked.has(pid));
    this.updateIdsPids();
  }

  /** Samples every tracked PID (VM and IDS of every cage). */
  sample(): void {
    this.sampleAndPublish(this.tracker.pids(), "all");
  }

  /**
   * Samples only the IDS PIDs whose memory moved since this sampler last read them: every IDS's
   * statm is read each time (so a change is seen within idsSampleMs, as before), its status
   * only when statm's resident or shared pages changed. The pipeline keeps each PID's latest
   * figure, so a partial batch is enough, and an empty one is not sent. Returns whether a
   * readable IDS's memory moved since its previous read (not a first read, not a vanished PID).
   */
  sampleIds(): boolean {
    const changed: number[] = [];
    let moving = false;
    for (const pid of this.idsPids) {
      let key: string | null;
      try {
        key = statmResidentKey(pid, this.statmFiles.read(pid, "statm"));
      } catch {
        key = null; // gone or unreadable: the status read says which, and counts it
      }
      const before = this.idsStatm.get(pid);
      if (key === null || key !== before) changed.push(pid);
      if (key !== null && before !== undefined && key !== before) moving = true;
      if (key === null) this.idsStatm.delete(pid);
      else this.idsStatm.set(pid, key);
    }
    if (this.idsPids.length > 0) this.counters.idsSamples++;
    if (changed.length > 0) this.sampleAndPublish(changed, "ids");
    return moving;
  }

  /** Membership changes only at a resolve: the IDS list is built then, not at every IDS sample. */
  private updateIdsPids(): void {
    const pids = new Set<number>();
    for (const t of this.tracker.processes()) if (t.role === "ids" && this.idsCages.has(t.cage)) pids.add(t.pid);
    this.idsPids = [...pids];
    for (const pid of this.idsStatm.keys()) if (!pids.has(pid)) this.idsStatm.delete(pid);
  }

  private sampleAndPublish(pids: readonly number[], which: "all" | "ids"): void {
    const { log, publisher } = this.options;
    try {
      const { batch, vanished, failures } = sampleMemory(pids, this.statusFiles);
      if (which === "all") this.counters.samples++;
      this.counters.processesSampled += batch.processes.length;
      this.counters.vanished += vanished.length;
      this.counters.readFailures += failures.length;
      for (const f of failures) log.warn({ pid: f.pid }, f.message);
      void publisher.publish(Topic.rawMemory, Encoding.memoryBatch, encodeMemoryBatch(batch));
    } catch (err) {
      this.counters.sampleErrors++;
      log.error({ err }, "memory sample failed");
    }
  }

  /** Publishes `state` now (also when unchanged: the periodic status carries fresh counters). */
  publishStatus(state: CollectorState): void {
    if (state === this.status.state) this.status.publish();
    else this.status.set(state);
  }
}

/** Whether two agg.members cage lists name the same processes (cage, role, PID, start time) in the same order. Pure. */
export function sameMembers(a: readonly CageMembersEntry[], b: readonly CageMembersEntry[]): boolean {
  if (a.length !== b.length) return false;
  const same = (x: readonly number[], y: readonly number[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
  return a.every((c, i) => {
    const d = b[i]!;
    return c.cage === d.cage && same(c.vm.pids, d.vm.pids) && same(c.vm.startTimes, d.vm.startTimes) && same(c.ids.pids, d.ids.pids) && same(c.ids.startTimes, d.ids.startTimes);
  });
}
