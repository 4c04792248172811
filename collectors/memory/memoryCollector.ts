/**
 * The memory collector's loop, without process concerns (arguments, signals, sockets): it
 * re-resolves the cages every resolveMs, samples the tracked PIDs every sampleMs and publishes
 * each batch, plus a status message every statusMs. With idsSampleMs it also samples just the
 * IDS PIDs that often: the balloon follows the IDS, and a few status reads cost far less than
 * sampling every VM process as fast. A failing iteration is logged and the
 * loop goes on: one bad read must not stop the agent's memory figures.
 */
import type { Logger } from "pino";
import type { CageSpec } from "../../config/cageConfig.js";
import { encodeMemoryBatch } from "../../protocol/rawBatches.js";
import { Encoding, Topic } from "../../protocol/wireFormat.js";
import { CollectorStatusPublisher, type CollectorState, type StatusSink } from "../../runtime/collectorStatus.js";
import { CageResolver, procFieldsFor } from "../../host/proc/cageMembership.js";
import { PidTracker } from "../../host/proc/pidTracker.js";
import { scanProcesses } from "../../host/proc/processTable.js";
import { sampleMemory } from "./memorySampler.js";

export type Publisher = StatusSink;

export interface MemoryCollectorOptions {
  cages: CageSpec[];
  publisher: Publisher;
  log: Logger;
  sampleMs: number;
  /** Period of the IDS-only sample; null = off (the IDS is sampled every sampleMs with the rest). */
  idsSampleMs?: number | null;
  resolveMs: number;
  statusMs?: number;
  procRoot?: string;
}

export const COLLECTOR_NAME = "memory";

export class MemoryCollector {
  readonly tracker = new PidTracker();
  readonly counters = {
    resolves: 0,
    resolveErrors: 0,
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
  private lastConflicts = "";
  private resolver: CageResolver | null = null;
  private readonly status: CollectorStatusPublisher;

  constructor(private readonly options: MemoryCollectorOptions) {
    this.status = new CollectorStatusPublisher({ collector: COLLECTOR_NAME, publisher: options.publisher, log: options.log, counters: () => this.counters });
  }

  start(): void {
    const { sampleMs, idsSampleMs = null, resolveMs, statusMs = 5000 } = this.options;
    this.resolve();
    this.status.publish();
    this.sample();
    this.timers.push(
      setInterval(() => this.resolve(), resolveMs),
      setInterval(() => this.sample(), sampleMs),
      setInterval(() => this.publishStatus("running"), statusMs),
    );
    if (idsSampleMs !== null) this.timers.push(setInterval(() => this.sampleIds(), idsSampleMs));
  }

  stop(): void {
    for (const t of this.timers.splice(0)) clearInterval(t);
    this.status.set("stopped");
  }

  /** Re-reads /proc and the cage membership; on failure the previous membership stays. */
  resolve(): void {
    const { log, cages, procRoot = "/proc" } = this.options;
    try {
      const table = scanProcesses(procRoot, { read: procFieldsFor(cages), onError: (pid, err) => log.debug({ pid, err: err.message }, "process unreadable, skipped") });
      this.resolver ??= new CageResolver(cages);
      const { members, conflicts } = this.resolver.resolve(table);
      for (const c of this.tracker.update(members)) {
        const level = c.role === "ids" ? "info" : "debug";
        log[level]({ change: c.kind, cage: c.cage, role: c.role, pid: c.pid, startTime: c.startTime, comm: c.comm }, `${c.role} process ${c.kind}`);
      }
      const summary = conflicts.map((c) => c.message).join("\n");
      if (summary !== this.lastConflicts) {
        for (const c of conflicts) log.warn({ pid: c.pid, cage: c.cage, otherCage: c.otherCage }, c.message);
        this.lastConflicts = summary;
      }
      this.counters.resolves++;
      this.counters.conflicts = conflicts.length;
      this.counters.trackedPids = this.tracker.pids().length;
    } catch (err) {
      this.counters.resolveErrors++;
      log.error({ err }, "resolving cages failed; keeping the previous membership");
    }
  }

  /** Samples every tracked PID (VM and IDS of every cage). */
  sample(): void {
    this.sampleAndPublish(this.tracker.pids(), "all");
  }

  /** Samples only the IDS PIDs; the pipeline keeps each PID's latest figure, so a partial batch is enough. */
  sampleIds(): void {
    const pids = [...new Set(this.tracker.processes().filter((t) => t.role === "ids").map((t) => t.pid))];
    if (pids.length > 0) this.sampleAndPublish(pids, "ids");
  }

  private sampleAndPublish(pids: readonly number[], which: "all" | "ids"): void {
    const { log, publisher, procRoot = "/proc" } = this.options;
    try {
      const { batch, vanished, failures } = sampleMemory(pids, procRoot);
      if (which === "all") this.counters.samples++;
      else this.counters.idsSamples++;
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
