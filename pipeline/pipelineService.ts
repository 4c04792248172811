/**
 * The pipeline process's body, startable in-process (tests) or from pipeline/main.ts:
 * subscribes to the collectors, keeps cage membership fresh, aggregates each CPU window per
 * cage, republishes the aggregates and serves them as metrics.
 *
 * No single bad input stops it: a malformed frame, a failed resolution or a throwing handler is
 * logged and counted, and the next message is handled as usual.
 */
import { join } from "node:path";
import type { Logger } from "pino";
import type { AgentConfig, InfluxSpec } from "../config/cageConfig.js";
import { decodeActuatorDecision, decodeActuatorState } from "../protocol/actuatorMessages.js";
import { decodeXenDomainCpu } from "../protocol/xenDomainCpu.js";
import { encodeCageMembers } from "../protocol/cageMembers.js";
import { decodeCollectorStatus, encodeCageIdsMemoryUpdate, encodeJson, type CageAggregate, type CollectorStatus } from "../protocol/cageAggregate.js";
import type { Endpoints } from "../protocol/endpoints.js";
import type { IdsHelperSnapshot } from "../host/xen/idsHelperEntries.js";
import { MessagePublisher, MessageSubscriber, type ReceivedMessage } from "../protocol/messageBus.js";
import { CpuBatchView, decodeMemoryBatch, decodePageCacheBatch } from "../protocol/rawBatches.js";
import { Encoding, ProtocolError, Topic, type EncodingId } from "../protocol/wireFormat.js";
import { ActuatorStateBook } from "./actuatorStates.js";
import { agentIdentity, type AgentIdentity } from "./agentIdentity.js";
import { agentUsage, readAgentTree, type AgentUsage } from "./agentProcesses.js";
import { CageAggregator, type CagePids } from "./cageAggregator.js";
import { SPOOL_DIR_NAME } from "./historySpool.js";
import { InfluxHistoryWriter } from "./influxWriter.js";
import { PipelineMetrics, type OtlpOptions, type PrometheusOptions } from "./otelMetrics.js";
import type { NewPidStats } from "./procMembership.js";
import { loadSequenceState, SEQUENCE_SAVE_MS, SequenceStateFile } from "./sequenceState.js";

/**
 * Resolves every cage's current VM and IDS PIDs; called every resolveMs. Its stop(), if any, is
 * called when the service stops (it releases what resolving holds: /proc descriptors, watchers).
 * Its resolveNewPids(), if any, is given the PIDs of each CPU window that no cage is charged
 * for, before the window is charged, and returns the whole membership when one the last resolution had not seen joined a
 * cage (else null), so the window's aggregate already charges it.
 */
export type MembershipResolver = (() => ReadonlyMap<string, CagePids> | Promise<ReadonlyMap<string, CagePids>>) & {
  stop?(): Promise<void>;
  resolveNewPids?(pids: readonly number[]): ReadonlyMap<string, CagePids> | null;
  /** What resolveNewPids cost so far (reads, resolutions, ms): logged when the service stops. */
  readonly newPidStats?: Readonly<NewPidStats>;
};

export interface PipelineServiceOptions {
  config: AgentConfig;
  /** Collector PUB endpoints to connect to, and where to bind the aggregates PUB. */
  endpoints: Endpoints;
  resolveMembership: MembershipResolver;
  logger: Logger;
  /** Overrides config.agent.prometheus (null: no endpoint). Port 0 picks a free port. */
  prometheus?: PrometheusOptions | null;
  /** Overrides config.agent.otlp (null: no OTLP export). */
  otlp?: OtlpOptions | null;
  /** Called with each aggregate after it is published (tests, in-process consumers). */
  onAggregate?: (aggregate: CageAggregate) => void;
  /** Overrides config.agent.influx (null: no history). */
  influx?: InfluxSpec | null;
  /** Overrides config.agent.stateDir: the history spool and the sequence state live here. */
  stateDir?: string;
  /**
   * Root of the agent's process tree whose CPU and memory are exported (`cage run` passes its
   * own PID); default: this process alone.
   */
  agentRootPid?: number;
  /** Host name and instance id on every series and point; default: from agent.host and agent.runtimeDir. */
  identity?: AgentIdentity;
  /**
   * Reads the IDS-VM guest helpers' reports (host/xen/idsHelperEntries.ts) with every membership
   * resolution; given when a cage has a `cr3From: helper` IDS-VM.
   */
  readIdsHelpers?: () => Promise<IdsHelperSnapshot>;
}

/** The topics the pipeline consumes, and the payload encoding each must carry. */
const CONSUMED: ReadonlyMap<string, EncodingId> = new Map<string, EncodingId>([
  [Topic.rawCpu, Encoding.cpuBatch],
  [Topic.rawMemory, Encoding.memoryBatch],
  [Topic.rawPageCache, Encoding.pageCacheBatch],
  [Topic.rawXen, Encoding.json],
  [Topic.status, Encoding.json],
  [Topic.actuatorDecision, Encoding.json],
  [Topic.actuatorState, Encoding.json],
]);

/**
 * What each collector's socket may carry: the pipeline subscribes per socket, so a publisher on
 * one collector's endpoint cannot feed another collector's topic (raw.cpu only from the cpu collector).
 */
export const COLLECTOR_TOPICS: Readonly<Record<string, readonly string[]>> = {
  cpu: [Topic.rawCpu, Topic.status],
  memory: [Topic.rawMemory, Topic.status],
  pagecache: [Topic.rawPageCache, Topic.status],
  xentrace: [Topic.rawXen, Topic.status],
};
/** What every actuator's socket may carry. */
const ACTUATOR_TOPICS: readonly string[] = [Topic.actuatorDecision, Topic.actuatorState];

/** How often the agent's own processes are read from /proc. */
const AGENT_SAMPLE_MS = 5_000;

/** Warnings per source per second before we summarise instead (a garbage flood must not flood the log). */
const WARN_BURST = 5;

export interface PipelineStats {
  messages: number;
  invalidFrames: number;
  lostMessages: number;
  /** Of lostMessages, those sent while the pipeline was down (judged against the saved sequence state). */
  lostWhileDown: number;
  /** Header sequences that jumped beyond what the publisher could have sent (not counted as lost). */
  sequenceAnomalies: number;
  aggregatesPublished: number;
  resolutions: number;
  /** Memberships taken from resolveNewPids (a new PID joined a cage between resolutions). */
  newPidResolutions: number;
  resolveErrors: number;
  handlerErrors: number;
}

export class PipelineService {
  readonly aggregator: CageAggregator;
  readonly stats: PipelineStats = {
    messages: 0,
    invalidFrames: 0,
    lostMessages: 0,
    lostWhileDown: 0,
    sequenceAnomalies: 0,
    aggregatesPublished: 0,
    resolutions: 0,
    newPidResolutions: 0,
    resolveErrors: 0,
    handlerErrors: 0,
  };
  private readonly log: Logger;
  /** One SUB socket per source (by endpoint), each subscribed only to that source's topics. */
  private readonly subscribers: MessageSubscriber[] = [];
  private readonly subscriberEndpoints = new Map<MessageSubscriber, string>();
  private readonly stateDir: string;
  private readonly sequenceFile: SequenceStateFile;
  private sequenceTimer: NodeJS.Timeout | null = null;
  // Tracks subscriptions so the per-cage agg.cage messages cost nothing unless someone reads them.
  private readonly publisher = new MessagePublisher({ trackSubscriptions: true });
  private readonly metrics: PipelineMetrics;
  private readonly restarts = new Map<string, number>();
  private readonly collectorCounters = new Map<string, Readonly<Record<string, number>>>();
  private lagSeconds: number | null = null;
  private resolveTimer: NodeJS.Timeout | null = null;
  private resolving: Promise<void> | null = null;
  private consuming: Promise<void> | null = null;
  private readonly warnLimiter = new WarnLimiter(WARN_BURST);
  /** The aggregator's helper counters as last added to the metric. */
  private idsHelperCountsExported = { malformed: 0, forged: 0, unseen: 0 };
  private state: "new" | "started" | "stopped" = "new";
  /** The actuators' latest act.state and decision counts. */
  readonly actuators = new ActuatorStateBook();
  /** Null when agent.influx is off. */
  readonly history: InfluxHistoryWriter | null;
  private agentTimer: NodeJS.Timeout | null = null;
  private agentFootprint: ReadonlyMap<string, AgentUsage> = new Map();

  constructor(private readonly options: PipelineServiceOptions) {
    const { config, endpoints } = options;
    if (config.cages.length === 0) throw new Error("pipeline: config has no cages");
    if (!(config.agent.resolveMs > 0)) throw new Error(`pipeline: agent.resolveMs must be > 0, got ${config.agent.resolveMs}`);
    if (Object.keys(endpoints.collectors).length === 0) throw new Error("pipeline: no collector endpoints to subscribe to");
    for (const name of Object.keys(endpoints.collectors)) {
      if (COLLECTOR_TOPICS[name] === undefined) throw new Error(`pipeline: unknown collector "${name}" in endpoints.collectors; known: ${Object.keys(COLLECTOR_TOPICS).join(", ")}`);
    }
    this.log = options.logger;
    this.aggregator = new CageAggregator(config.cages);
    const identity = options.identity ?? agentIdentity(config.agent.host, config.agent.runtimeDir ?? "");
    this.metrics = new PipelineMetrics(
      {
        prometheus: options.prometheus !== undefined ? options.prometheus : config.agent.prometheus,
        otlp: options.otlp !== undefined ? options.otlp : config.agent.otlp,
        logger: this.log,
        identity,
      },
      {
        aggregator: this.aggregator,
        collectorRestarts: () => this.restarts,
        collectorCounters: () => this.collectorCounters,
        lagSeconds: () => this.lagSeconds,
        actuatorStates: () => this.actuators.current(Date.now()),
        decisionCounts: () => this.actuators.decisionCounts(),
        history: () => this.history?.stats ?? null,
        agentUsage: () => this.agentFootprint,
      },
    );
    this.stateDir = options.stateDir ?? config.agent.stateDir;
    this.sequenceFile = new SequenceStateFile(this.stateDir);
    const influx = options.influx !== undefined ? options.influx : config.agent.influx;
    this.history = influx === null ? null : new InfluxHistoryWriter(influx, join(this.stateDir, SPOOL_DIR_NAME), this.log.child({ component: "influx" }), identity.host);
  }

  /** Where the Prometheus endpoint listens once started, or null. */
  get prometheusAddress(): PrometheusOptions | null {
    return this.metrics.prometheusAddress;
  }

  /** Restarts per collector as its status messages report them. */
  get collectorRestarts(): ReadonlyMap<string, number> {
    return this.restarts;
  }

  async start(): Promise<void> {
    if (this.state !== "new") throw new Error(`pipeline: start() called when ${this.state}`);
    this.state = "started";
    const { endpoints } = this.options;
    try {
      await this.metrics.start();
      for (const topic of CONSUMED.keys()) this.metrics.declareTopic(topic);
      await this.publisher.bind(endpoints.aggregates);
      const sources: [string, readonly string[]][] = [
        ...Object.entries(endpoints.collectors).map(([name, endpoint]): [string, readonly string[]] => [endpoint, COLLECTOR_TOPICS[name] ?? []]),
        ...Object.values(endpoints.actuators ?? {}).map((endpoint): [string, readonly string[]] => [endpoint, ACTUATOR_TOPICS]),
      ];
      const saved = this.loadSequences();
      for (const [endpoint, topics] of sources) {
        const subscriber = new MessageSubscriber();
        this.subscribers.push(subscriber);
        this.subscriberEndpoints.set(subscriber, endpoint);
        subscriber.sequences.restore(saved?.get(endpoint) ?? []);
        subscriber.connect(endpoint);
        subscriber.subscribe(...topics);
      }
      this.sequenceTimer = setInterval(() => this.saveSequences(), SEQUENCE_SAVE_MS);
      await this.resolveOnce();
      this.resolveTimer = setInterval(() => this.scheduleResolve(), this.options.config.agent.resolveMs);
      this.history?.start();
      this.sampleAgent();
      this.agentTimer = setInterval(() => this.sampleAgent(), AGENT_SAMPLE_MS);
      this.consuming = Promise.all(this.subscribers.map((subscriber) => this.consume(subscriber))).then(() => undefined);
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.log.info(
      { collectors: endpoints.collectors, aggregates: endpoints.aggregates, prometheus: this.prometheusAddress, cages: this.aggregator.cageNames },
      "pipeline started",
    );
  }

  /** Stops timers, closes sockets and the metrics server. Idempotent. */
  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopped";
    if (this.resolveTimer !== null) clearInterval(this.resolveTimer);
    this.resolveTimer = null;
    if (this.agentTimer !== null) clearInterval(this.agentTimer);
    this.agentTimer = null;
    if (this.sequenceTimer !== null) clearInterval(this.sequenceTimer);
    this.sequenceTimer = null;
    for (const subscriber of this.subscribers) subscriber.close();
    await this.consuming;
    if (this.subscribers.length > 0) this.saveSequences();
    this.sequenceFile.close();
    await this.resolving;
    await this.options.resolveMembership.stop?.().catch((err: unknown) => this.log.warn({ err }, "stopping the membership resolver failed"));
    await this.history?.stop();
    await this.publisher.close();
    await this.metrics.stop();
    this.log.info({ stats: this.stats, newPids: this.options.resolveMembership.newPidStats }, "pipeline stopped");
  }

  private scheduleResolve(): void {
    // A slow /proc scan must not pile up behind itself.
    if (this.resolving !== null) return;
    this.resolving = this.resolveOnce().finally(() => {
      this.resolving = null;
    });
  }

  private async resolveOnce(): Promise<void> {
    try {
      const membership = await this.options.resolveMembership();
      if (this.state === "stopped") return;
      // CLOCK_MONOTONIC, the windows' clock: windows that began before now still charge PIDs that left.
      const changes = this.aggregator.setMembership(membership, process.hrtime.bigint());
      this.publishMembers();
      this.stats.resolutions++;
      for (const c of changes) this.log.info(c, "cage membership changed");
      if (this.aggregator.stats.conflictingPids > 0 && changes.length > 0) {
        this.log.warn({ conflictingPids: this.aggregator.stats.conflictingPids }, "PIDs matched by more than one cage or role; each is charged once");
      }
    } catch (err) {
      this.stats.resolveErrors++;
      this.metrics.countResolveError();
      this.log.error({ err }, "cage membership resolution failed; keeping the previous membership");
    }
    if (this.options.readIdsHelpers !== undefined) await this.readIdsHelpers(this.options.readIdsHelpers);
  }

  /**
   * Takes the IDS-VM helpers' current reports. A failed read charges no CR3 until the next one
   * succeeds: a report the helper withdrew meanwhile must not go on being charged.
   */
  private async readIdsHelpers(read: () => Promise<IdsHelperSnapshot>): Promise<void> {
    let snapshot: IdsHelperSnapshot | null = null;
    try {
      snapshot = await read();
    } catch (err) {
      if (this.warnLimiter.allow("idsHelpers")) this.log.warn({ err }, "reading the IDS-VM helpers' xenstore entries failed; no CR3 is charged until the next read");
    }
    if (this.state === "stopped") return;
    if (snapshot === null) this.aggregator.dropIdsHelperReports();
    else {
      for (const r of this.aggregator.setIdsHelpers(snapshot)) {
        if (this.warnLimiter.allow("idsHelperEntry")) this.log.warn(r, `IDS-VM helper entry ignored (${r.reason})`);
      }
    }
    // Unseen CR3s are counted as raw.xen windows arrive: report everything since the last read.
    const stats = this.aggregator.stats;
    const now = { malformed: stats.helperMalformed, forged: stats.helperForged, unseen: stats.helperUnseenCr3s };
    const last = this.idsHelperCountsExported;
    this.metrics.countIdsHelperRejected({ malformed: now.malformed - last.malformed, forged: now.forged - last.forged, unseen: now.unseen - last.unseen });
    this.idsHelperCountsExported = now;
  }

  /** The previous run's sequence state, or null (none, or unreadable: logged, counting starts afresh). */
  private loadSequences(): ReturnType<typeof loadSequenceState> {
    try {
      return loadSequenceState(this.stateDir);
    } catch (err) {
      this.log.warn({ err, stateDir: this.stateDir }, "saved sequence state unreadable; messages lost while the pipeline was down are not counted this time");
      return null;
    }
  }

  private saveSequences(): void {
    try {
      const state = new Map([...this.subscriberEndpoints].map(([subscriber, endpoint]) => [endpoint, subscriber.sequences.snapshot()]));
      this.sequenceFile.save(state);
    } catch (err) {
      if (this.warnLimiter.allow("sequenceState")) this.log.warn({ err, stateDir: this.stateDir }, "saving the sequence state failed");
    }
  }

  private async consume(subscriber: MessageSubscriber): Promise<void> {
    let lostWhileDown = 0;
    try {
      await subscriber.receiveEach(
        (msg) => {
          if (subscriber.sequences.lostWhileDownTotal !== lostWhileDown) {
            const lost = subscriber.sequences.lostWhileDownTotal - lostWhileDown;
            lostWhileDown = subscriber.sequences.lostWhileDownTotal;
            this.stats.lostWhileDown += lost;
            this.log.info({ topic: msg.topic, publisherId: msg.header.publisherId, lost, endpoint: this.subscriberEndpoints.get(subscriber) }, "messages sent while the pipeline was down (counted as lost)");
          }
          try {
            this.handle(msg);
          } catch (err) {
            if (err instanceof ProtocolError) {
              this.rejectFrame(err, null, msg.topic);
            } else {
              this.stats.handlerErrors++;
              this.log.error({ err, topic: msg.topic }, "handling a message failed; going on with the next");
            }
          }
        },
        (err, frames) => this.rejectFrame(err, frames),
      );
    } catch (err) {
      // Only a socket-level failure ends the loop; say so loudly, the supervisor restarts us.
      if (this.state !== "stopped") this.log.fatal({ err }, "subscriber failed; no more messages will be received");
    }
  }

  private handle(msg: ReceivedMessage): void {
    const expected = CONSUMED.get(msg.topic);
    if (expected === undefined) return; // a longer topic sharing our prefix: not ours
    this.stats.messages++;
    this.metrics.countMessage(msg.topic);
    if (msg.lostBefore > 0) {
      this.stats.lostMessages += msg.lostBefore;
      this.metrics.countLost(msg.topic, msg.lostBefore);
      if (this.warnLimiter.allow("lost")) {
        this.log.warn({ topic: msg.topic, publisherId: msg.header.publisherId, lost: msg.lostBefore }, "messages lost (sequence gap)");
      }
    }
    if (msg.sequenceAnomaly) {
      this.stats.sequenceAnomalies++;
      this.metrics.countSequenceAnomaly(msg.topic);
      if (this.warnLimiter.allow("sequence")) {
        this.log.warn({ topic: msg.topic, publisherId: msg.header.publisherId, sequence: String(msg.header.sequence) }, "sequence jumped further than the publisher could have sent: anomaly, not counted as lost");
      }
    }
    if (msg.header.encoding !== expected) {
      throw new ProtocolError("frame 1 (header) byte 3", `topic ${msg.topic} needs encoding ${expected}, got ${msg.header.encoding}`);
    }
    switch (msg.topic) {
      case Topic.rawCpu:
        this.handleCpu(msg);
        break;
      case Topic.rawMemory:
        this.aggregator.ingestMemory(decodeMemoryBatch(msg.payload));
        this.publishIdsMemory();
        break;
      case Topic.rawPageCache:
        this.aggregator.ingestPageCache(decodePageCacheBatch(msg.payload));
        this.publishIdsMemory();
        break;
      case Topic.rawXen:
        this.aggregator.ingestXen(decodeXenDomainCpu(msg.payload));
        break;
      case Topic.status:
        this.handleStatus(decodeCollectorStatus(msg.payload));
        break;
      case Topic.actuatorState: {
        const state = decodeActuatorState(msg.payload);
        this.actuators.noteState(state, Date.now());
        this.history?.writeActuatorState(state);
        break;
      }
      case Topic.actuatorDecision: {
        const decision = decodeActuatorDecision(msg.payload);
        this.actuators.noteDecision(decision);
        this.history?.writeDecision(decision);
        break;
      }
    }
  }

  /** Reads the agent's process tree; a failure leaves the previous figures (logged, never fatal). */
  private sampleAgent(): void {
    const root = this.options.agentRootPid ?? process.pid;
    try {
      const excluded = new Set<number>();
      for (const name of this.aggregator.cageNames) {
        for (const pid of this.aggregator.pids(name, "vm")) excluded.add(pid);
        for (const pid of this.aggregator.pids(name, "ids")) excluded.add(pid);
      }
      this.agentFootprint = agentUsage(readAgentTree(root), root, root === process.pid ? "pipeline" : "supervisor", excluded);
    } catch (err) {
      if (this.warnLimiter.allow("agent")) this.log.warn({ err, root }, "reading the agent's own processes failed");
    }
  }

  /**
   * The IDS memory of the cages whose IDS memory moved, as soon as a sample shows it: the balloon
   * follows the IDS between CPU windows. Built only while someone subscribes.
   */
  private publishIdsMemory(): void {
    if (!this.publisher.wants(Topic.cageIdsMemory)) return;
    const cages = this.aggregator.takeIdsMemoryChanges();
    if (cages.length === 0) return;
    void this.publisher.publish(Topic.cageIdsMemory, Encoding.json, encodeCageIdsMemoryUpdate({ v: 1, timeMs: Date.now(), cages }));
  }

  private handleCpu(msg: ReceivedMessage): void {
    const batch = new CpuBatchView(msg.payload);
    const nowNs = process.hrtime.bigint(); // CLOCK_MONOTONIC, the clock bpf_ktime_get_ns uses
    this.resolveNewPids(batch, nowNs);
    const wallMsAtMonotonicZero = Date.now() - Number(nowNs) / 1e6;
    const unknownBefore = this.aggregator.stats.unknownPidRecords;
    this.aggregator.chargeCpuView(batch, wallMsAtMonotonicZero);
    this.metrics.countUnknownPids(this.aggregator.stats.unknownPidRecords - unknownBefore);
    this.lagSeconds = Number(nowNs - batch.windowEndNs) / 1e9;
    // The aggregate objects only for who reads them; agg.window is written without them.
    const perCage = this.publisher.wants(Topic.cageAggregate);
    const aggregates = this.history !== null || this.options.onAggregate !== undefined || perCage ? this.aggregator.windowAggregates() : [];
    // Spooled before they are published: an aggregate anyone saw is in the history, even after a SIGKILL.
    if (this.history !== null) for (const aggregate of aggregates) this.history.writeAggregate(aggregate);
    void this.publisher.publish(Topic.cageAggregates, Encoding.json, this.aggregator.windowAggregatesJson());
    if (perCage) for (const aggregate of aggregates) void this.publisher.publish(Topic.cageAggregate, Encoding.json, encodeJson(aggregate));
    this.stats.aggregatesPublished += this.aggregator.cageCount;
    if (this.options.onAggregate !== undefined) for (const aggregate of aggregates) this.options.onAggregate(aggregate);
  }

  /**
   * Gives the window's PIDs to the resolver before the window is charged: a process the last
   * resolution did not see (a restarted IDS) is charged in its first window, not after the next
   * resolveMs. A failure keeps the membership as it was (logged, counted like a failed resolution).
   */
  private resolveNewPids(batch: CpuBatchView, nowNs: bigint): void {
    const resolver = this.options.resolveMembership;
    if (resolver.resolveNewPids === undefined) return;
    try {
      const pids: number[] = [];
      for (let i = 0; i < batch.processCount; i++) {
        const pid = batch.processPid(i);
        if (!this.aggregator.charges(pid)) pids.push(pid);
      }
      if (pids.length === 0) return;
      const membership = resolver.resolveNewPids(pids);
      if (membership === null) return;
      const changes = this.aggregator.setMembership(membership, nowNs);
      this.publishMembers();
      this.stats.newPidResolutions++;
      for (const c of changes) this.log.info(c, "cage membership changed (a new process)");
    } catch (err) {
      this.stats.resolveErrors++;
      this.metrics.countResolveError();
      if (this.warnLimiter.allow("newPids")) this.log.error({ err }, "resolving a window's new PIDs failed; keeping the membership");
    }
  }

  /**
   * After every resolution, changed or not: a subscriber that connects late (the memory collector
   * restarted) has the membership within resolveMs.
   */
  private publishMembers(): void {
    if (!this.publisher.wants(Topic.cageMembers)) return;
    void this.publisher.publish(Topic.cageMembers, Encoding.json, encodeCageMembers({ v: 1, timeMs: Date.now(), cages: this.aggregator.members() }));
  }

  private handleStatus(status: CollectorStatus): void {
    const counters: Record<string, number> = {};
    for (const [k, v] of Object.entries(status.counters ?? {})) if (typeof v === "number" && Number.isFinite(v)) counters[k] = v;
    this.collectorCounters.set(status.collector, counters);
    if (counters.restarts !== undefined) {
      this.restarts.set(status.collector, counters.restarts);
    } else if (status.state === "restarting") {
      this.restarts.set(status.collector, (this.restarts.get(status.collector) ?? 0) + 1);
    } else if (!this.restarts.has(status.collector)) {
      this.restarts.set(status.collector, 0);
    }
    if (status.state === "error" || status.state === "restarting") {
      this.log.warn({ collector: status.collector, state: status.state, message: status.message }, "collector reports trouble");
    }
  }

  private rejectFrame(err: ProtocolError, frames: Buffer[] | null, topic?: string): void {
    this.stats.invalidFrames++;
    this.metrics.countInvalidFrame();
    if (!this.warnLimiter.allow("invalid")) return;
    const suppressed = this.warnLimiter.takeSuppressed("invalid");
    this.log.warn(
      {
        where: err.where,
        reason: err.reason,
        topic: topic ?? describeTopic(frames),
        frameBytes: frames?.map((f) => f.length),
        ...(suppressed > 0 ? { suppressedSinceLastWarning: suppressed } : {}),
      },
      `dropped invalid message: ${err.message}`,
    );
  }
}

function describeTopic(frames: Buffer[] | null): string | undefined {
  const first = frames?.[0];
  return first === undefined ? undefined : JSON.stringify(first.subarray(0, 64).toString("utf8"));
}

/** At most `burst` warnings per key per second; counts the ones it holds back. */
class WarnLimiter {
  private readonly windows = new Map<string, { startMs: number; count: number; suppressed: number }>();
  constructor(private readonly burst: number) {}

  allow(key: string): boolean {
    const now = Date.now();
    let w = this.windows.get(key);
    if (w === undefined || now - w.startMs >= 1000) {
      w = { startMs: now, count: 0, suppressed: w?.suppressed ?? 0 };
      this.windows.set(key, w);
    }
    if (w.count >= this.burst) {
      w.suppressed++;
      return false;
    }
    w.count++;
    return true;
  }

  takeSuppressed(key: string): number {
    const w = this.windows.get(key);
    if (w === undefined) return 0;
    const n = w.suppressed;
    w.suppressed = 0;
    return n;
  }
}
