/**
 * Exports the pipeline's figures as OpenTelemetry metrics through @opentelemetry/sdk-metrics:
 * a Prometheus text endpoint (always, when configured) and OTLP/HTTP (when an endpoint is set).
 *
 * Per-cage figures are observable instruments read from the aggregator at collection time, so
 * the ingest path does no metrics work per batch; agent-health counts are plain counters, but for
 * the two that grow with every message or window (messages, unknown PIDs), observed from fields.
 *
 * start() registers a global MeterProvider, so one PipelineMetrics may be started per process
 * at a time (start() refuses a second; stop() unregisters it so another can start).
 * Metrics only, without @opentelemetry/sdk-node: loading its tracing and logging parts took
 * most of the pipeline's start-up (1.2 s against 0.3 s), the agent's time to its first metric.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { diag, metrics as otelApi, type Counter, type Meter, type ObservableResult, DiagLogLevel } from "@opentelemetry/api";
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader } from "@opentelemetry/sdk-metrics";
import { detectResources, envDetector, resourceFromAttributes, type Resource } from "@opentelemetry/resources";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import type { Logger } from "pino";
import type { ActuatorState } from "../protocol/actuatorMessages.js";
import { VM_CPU_KINDS } from "../protocol/cageAggregate.js";
import { ACTUATOR_MODES, type DecisionCount } from "./actuatorStates.js";
import type { AgentUsage } from "./agentProcesses.js";
import type { CageAggregator } from "./cageAggregator.js";
import type { HistoryStats } from "./influxWriter.js";
import type { AgentIdentity } from "./agentIdentity.js";
import { ACTUATOR_VALUES, COLLECTOR_COUNTER_METRICS, Metric, sumCounterKeys, type MetricDefinition } from "./metricNames.js";


/** The `reason` values of cage.pipeline.ids_helper_rejected. */
export const IDS_HELPER_REJECT_REASONS = ["malformed", "forged", "unseen"] as const;
export type IdsHelperRejectReason = (typeof IDS_HELPER_REJECT_REASONS)[number];
export interface PrometheusOptions {
  host: string;
  /** 0 picks a free port (see PipelineMetrics.prometheusAddress). */
  port: number;
}

export interface OtlpOptions {
  /** Collector base URL (http://host:4318) or the full metrics URL ending in /v1/metrics. */
  endpoint: string;
  intervalMs: number;
}

export interface MetricsExportOptions {
  prometheus: PrometheusOptions | null;
  otlp: OtlpOptions | null;
  /** Who is exporting: becomes the OTLP resource and Prometheus's target_info. */
  identity: AgentIdentity;
  /** Receives OpenTelemetry's own warnings and errors (failed exports, ...). */
  logger?: Logger;
}

/** What the observable instruments read at collection time. */
export interface PipelineMetricsSource {
  aggregator: CageAggregator;
  /** Restarts per collector, from status messages. */
  collectorRestarts(): ReadonlyMap<string, number>;
  /** Latest cumulative counters per collector, from status messages. */
  collectorCounters(): ReadonlyMap<string, Readonly<Record<string, number>>>;
  /** Seconds between the newest CPU window's end and its aggregation, or null before the first. */
  lagSeconds(): number | null;
  /** The actuators' current (unexpired) act.state messages. */
  actuatorStates?(): readonly ActuatorState[];
  /** act.decision counts by cage, actuator, setting and outcome. */
  decisionCounts?(): readonly DecisionCount[];
  /** The InfluxDB history writer's counters, or null when history is off. */
  history?(): HistoryStats | null;
  /** The agent's own processes' CPU and memory, by process name. */
  agentUsage?(): ReadonlyMap<string, AgentUsage>;
}

export const PROMETHEUS_PATH = "/metrics";
const OTLP_MAX_EXPORT_MS = 5_000;
/** How long stop() waits for the SDK's final flush before giving up on it. */
const SHUTDOWN_GRACE_MS = 3_000;

/** The OTLP/HTTP metrics URL for a configured endpoint (base URL or full /v1/metrics URL). */
export function otlpMetricsUrl(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new Error(`otlp endpoint ${JSON.stringify(endpoint)}: not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`otlp endpoint ${JSON.stringify(endpoint)}: must be http:// or https://`);
  }
  if (url.pathname.endsWith("/v1/metrics")) return url.toString();
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/v1/metrics`;
  return url.toString();
}

/** Whether a PipelineMetrics owns the global MeterProvider right now. */
let globalProviderTaken = false;

export class PipelineMetrics {
  private provider: MeterProvider | null = null;
  private server: Server | null = null;
  private address: PrometheusOptions | null = null;
  private counters: Record<"lost" | "sequenceAnomalies" | "invalid" | "resolveErrors" | "idsHelperRejected", Counter> | null = null;
  /**
   * Messages per topic and unknown-PID records: counted here and observed at collection, since
   * they grow with every message and window, and a counter's add() hashes its attributes each time.
   */
  private readonly messagesByTopic = new Map<string, number>();
  private unknownPidRecords = 0;
  private stopped = false;
  private ownsGlobalProvider = false;

  constructor(
    private readonly options: MetricsExportOptions,
    private readonly source: PipelineMetricsSource,
  ) {
    if (options.prometheus !== null) {
      const { host, port } = options.prometheus;
      if (typeof host !== "string" || host === "") throw new Error("prometheus host: must be a non-empty string");
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`prometheus port: must be an integer 0..65535, got ${port}`);
    }
    if (options.otlp !== null) {
      otlpMetricsUrl(options.otlp.endpoint);
      if (!Number.isInteger(options.otlp.intervalMs) || options.otlp.intervalMs < 1) {
        throw new Error(`otlp intervalMs: must be a positive integer, got ${options.otlp.intervalMs}`);
      }
    }
  }

  /** Where the Prometheus endpoint listens (the real port when 0 was asked), or null. */
  get prometheusAddress(): PrometheusOptions | null {
    return this.address;
  }

  async start(): Promise<void> {
    if (this.stopped) throw new Error("pipeline metrics: cannot restart after stop()");
    if (globalProviderTaken) throw new Error("pipeline metrics: another instance is already started in this process");
    globalProviderTaken = true;
    this.ownsGlobalProvider = true;
    try {
      await this.startExporters();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private async startExporters(): Promise<void> {
    const { logger } = this.options;
    if (logger !== undefined) {
      diag.setLogger(
        {
          error: (msg, ...args) => logger.error({ args }, `opentelemetry: ${msg}`),
          warn: (msg, ...args) => logger.warn({ args }, `opentelemetry: ${msg}`),
          info: () => {},
          debug: () => {},
          verbose: () => {},
        },
        { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
      );
    }
    const readers: IMetricReader[] = [];
    let prometheus: PrometheusExporter | null = null;
    if (this.options.prometheus !== null) {
      // We serve the exporter's handler from our own server: the exporter's built-in one turns
      // port 0 into 9464 and only reports bind errors to diag.
      prometheus = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
      readers.push(prometheus);
    }
    if (this.options.otlp !== null) {
      const { endpoint, intervalMs } = this.options.otlp;
      // One export (retries included) never outlives its interval, so a dead receiver neither
      // piles exports up nor holds shutdown for the exporter's default 10 s.
      const timeoutMs = Math.min(intervalMs, OTLP_MAX_EXPORT_MS);
      // Loaded only when used: most agents export to Prometheus alone.
      const { OTLPMetricExporter } = await import("@opentelemetry/exporter-metrics-otlp-http");
      readers.push(
        new PeriodicExportingMetricReader({
          exporter: new OTLPMetricExporter({ url: otlpMetricsUrl(endpoint), timeoutMillis: timeoutMs }),
          exportIntervalMillis: intervalMs,
          exportTimeoutMillis: timeoutMs,
        }),
      );
    }
    const resource = agentResource(this.options.identity);
    if (readers.length > 0) {
      this.provider = new MeterProvider({ resource, readers });
      otelApi.setGlobalMeterProvider(this.provider);
      this.createInstruments(otelApi.getMeter("offloadcage-pipeline"));
    }
    if (prometheus !== null && this.options.prometheus !== null) {
      this.server = await listen(prometheus, this.options.prometheus);
      const bound = this.server.address() as AddressInfo;
      this.address = { host: this.options.prometheus.host, port: bound.port };
    }
  }

  private createInstruments(meter: Meter): void {
    const counter = (def: MetricDefinition): Counter => meter.createCounter(def.name, { unit: def.unit, description: def.description });
    this.counters = {
      lost: counter(Metric.pipelineLostMessages),
      sequenceAnomalies: counter(Metric.pipelineSequenceAnomalies),
      invalid: counter(Metric.pipelineInvalidFrames),
      resolveErrors: counter(Metric.pipelineResolveErrors),
      idsHelperRejected: counter(Metric.pipelineIdsHelperRejected),
    };
    // Zero points so every series exists from the first scrape (absent ≠ zero for alerting).
    this.counters.invalid.add(0);
    const observedCounter = (def: MetricDefinition, observe: (result: ObservableResult) => void): void => {
      meter.createObservableCounter(def.name, { unit: def.unit, description: def.description }).addCallback(observe);
    };
    observedCounter(Metric.pipelineMessages, (r) => {
      for (const [topic, n] of this.messagesByTopic) r.observe(n, { topic });
    });
    observedCounter(Metric.pipelineUnknownPids, (r) => r.observe(this.unknownPidRecords));
    this.counters.resolveErrors.add(0);
    for (const reason of IDS_HELPER_REJECT_REASONS) this.counters.idsHelperRejected.add(0, { reason });

    const gauge = (def: MetricDefinition, observe: (result: ObservableResult) => void): void => {
      meter.createObservableGauge(def.name, { unit: def.unit, description: def.description }).addCallback(observe);
    };
    const { aggregator } = this.source;
    const specs = aggregator.cageSpecs;

    // The cage file gives caps in % of one CPU; exported in cores.
    gauge(Metric.cpuCap, (r) => {
      for (const s of specs) r.observe(s.cpu.cap / 100, { cage: s.name });
    });
    gauge(Metric.idsCpuCap, (r) => {
      for (const s of specs) if (s.cpu.idsCap !== null) r.observe(s.cpu.idsCap / 100, { cage: s.name });
    });
    gauge(Metric.memoryRss, (r) => {
      for (const s of specs) {
        r.observe(aggregator.rssBytes(s.name, "vm"), { cage: s.name, role: "vm" });
        r.observe(aggregator.rssBytes(s.name, "ids"), { cage: s.name, role: "ids" });
      }
    });
    gauge(Metric.idsPageCache, (r) => {
      for (const s of specs) r.observe(aggregator.pageCacheBytes(s.name), { cage: s.name });
    });
    gauge(Metric.memoryBase, (r) => {
      for (const s of specs) if (s.memory !== null) r.observe(s.memory.baseBytes, { cage: s.name });
    });
    gauge(Metric.memoryFloor, (r) => {
      for (const s of specs) if (s.memory !== null) r.observe(s.memory.floorBytes, { cage: s.name });
    });
    gauge(Metric.processes, (r) => {
      for (const s of specs) {
        r.observe(aggregator.pids(s.name, "vm").length, { cage: s.name, role: "vm" });
        r.observe(aggregator.pids(s.name, "ids").length, { cage: s.name, role: "ids" });
      }
    });
    gauge(Metric.pipelineLag, (r) => {
      const lag = this.source.lagSeconds();
      if (lag !== null) r.observe(lag);
    });
    for (const { metric, keys } of COLLECTOR_COUNTER_METRICS) {
      meter.createObservableCounter(metric.name, { unit: metric.unit, description: metric.description }).addCallback((r) => {
        for (const [collector, values] of this.source.collectorCounters()) {
          const sum = sumCounterKeys(values, keys);
          if (sum !== null) r.observe(sum, { collector });
        }
      });
    }
    this.createActuatorAndAgentInstruments(meter, gauge);
    meter
      .createObservableCounter(Metric.cpuSeconds.name, { unit: Metric.cpuSeconds.unit, description: Metric.cpuSeconds.description })
      .addCallback((r) => {
        for (const s of specs) {
          r.observe(aggregator.cpuSeconds(s.name, "vm"), { cage: s.name, role: "vm" });
          r.observe(aggregator.cpuSeconds(s.name, "ids"), { cage: s.name, role: "ids" });
        }
      });
    meter
      .createObservableCounter(Metric.vmCpuSeconds.name, { unit: Metric.vmCpuSeconds.unit, description: Metric.vmCpuSeconds.description })
      .addCallback((r) => {
        for (const s of specs) {
          const byKind = aggregator.vmCpuSecondsByKind(s.name);
          if (byKind !== null) for (const kind of VM_CPU_KINDS) r.observe(byKind[kind], { cage: s.name, kind });
        }
      });
    meter
      .createObservableCounter(Metric.collectorRestarts.name, {
        unit: Metric.collectorRestarts.unit,
        description: Metric.collectorRestarts.description,
      })
      .addCallback((r) => {
        for (const [collector, restarts] of this.source.collectorRestarts()) r.observe(restarts, { collector });
      });
  }

  /** Actuator state, history writer and agent footprint. */
  private createActuatorAndAgentInstruments(meter: Meter, gauge: (def: MetricDefinition, observe: (result: ObservableResult) => void) => void): void {
    const source = this.source;
    const observableCounter = (def: MetricDefinition, observe: (result: ObservableResult) => void): void => {
      meter.createObservableCounter(def.name, { unit: def.unit, description: def.description }).addCallback(observe);
    };
    gauge(Metric.aggregateAge, (r) => {
      const now = Date.now();
      for (const a of this.source.aggregator.latestAggregates()) r.observe(Math.max(0, (now - a.timeMs) / 1000), { cage: a.cage });
    });
    gauge(Metric.actuatorMode, (r) => {
      for (const s of source.actuatorStates?.() ?? []) {
        for (const mode of ACTUATOR_MODES) r.observe(s.mode === mode ? 1 : 0, { cage: s.cage, actuator: s.actuator, mode });
      }
    });
    for (const [key, { metric, divideBy }] of Object.entries(ACTUATOR_VALUES)) {
      // Most values are levels; backendErrors and invalidAggregates are the actuator's own counters.
      (metric.kind === "counter" ? observableCounter : gauge)(metric, (r) => {
        for (const s of source.actuatorStates?.() ?? []) {
          const v = (s.values as Record<string, number | undefined>)[key];
          if (v !== undefined) r.observe(v / divideBy, { cage: s.cage, actuator: s.actuator });
        }
      });
    }
    observableCounter(Metric.actuatorDecisions, (r) => {
      for (const d of source.decisionCounts?.() ?? []) r.observe(d.count, { cage: d.cage, actuator: d.actuator, setting: d.setting, outcome: d.outcome });
    });
    // The history writer's figures; none at all while there is no writer (no agent.influx).
    const historySeries: [MetricDefinition, (h: HistoryStats, r: ObservableResult) => void][] = [
      [Metric.historyPointsWritten, (h, r) => r.observe(h.written)],
      [
        Metric.historyPointsDropped,
        (h, r) => {
          r.observe(h.droppedFull, { reason: "buffer_full" });
          r.observe(h.droppedRejected, { reason: "rejected" });
          r.observe(h.droppedSpoolError, { reason: "spool_error" });
        },
      ],
      [Metric.historySpoolTornRecords, (h, r) => r.observe(h.tornRecords)],
      [Metric.historyReplayedPoints, (h, r) => r.observe(h.replayedPoints)],
      [Metric.historySpoolBytes, (h, r) => r.observe(h.spoolBytes)],
      [Metric.historyWriteFailures, (h, r) => r.observe(h.failedWrites)],
      [Metric.historyBufferedPoints, (h, r) => r.observe(h.buffered)],
      [Metric.historyConnected, (h, r) => r.observe(h.connected ? 1 : 0)],
    ];
    for (const [metric, observe] of historySeries) {
      (metric.kind === "counter" ? observableCounter : gauge)(metric, (r) => {
        const h = source.history?.() ?? null;
        if (h !== null) observe(h, r);
      });
    }
    observableCounter(Metric.agentCpuSeconds, (r) => {
      for (const [name, u] of source.agentUsage?.() ?? []) r.observe(u.cpuSeconds, { process: name });
    });
    gauge(Metric.agentMemoryRss, (r) => {
      for (const [name, u] of source.agentUsage?.() ?? []) r.observe(u.rssBytes, { process: name });
    });
  }

  countMessage(topic: string): void {
    this.messagesByTopic.set(topic, (this.messagesByTopic.get(topic) ?? 0) + 1);
  }

  countLost(topic: string, lost: number): void {
    if (lost > 0) this.counters?.lost.add(lost, { topic });
  }

  /** Makes the per-topic series exist at zero before the first message. */
  declareTopic(topic: string): void {
    if (!this.messagesByTopic.has(topic)) this.messagesByTopic.set(topic, 0);
    this.counters?.lost.add(0, { topic });
    this.counters?.sequenceAnomalies.add(0, { topic });
  }

  countSequenceAnomaly(topic: string): void {
    this.counters?.sequenceAnomalies.add(1, { topic });
  }

  countInvalidFrame(): void {
    this.counters?.invalid.add(1);
  }

  countUnknownPids(records: number): void {
    this.unknownPidRecords += records;
  }

  /** IDS-VM helper entries ignored since the last call, by reason (zero points keep every series present). */
  countIdsHelperRejected(counts: Record<IdsHelperRejectReason, number>): void {
    for (const reason of IDS_HELPER_REJECT_REASONS) if (counts[reason] > 0) this.counters?.idsHelperRejected.add(counts[reason], { reason });
  }

  countResolveError(): void {
    this.counters?.resolveErrors.add(1);
  }

  /** Closes the Prometheus server, flushes and shuts down the SDK. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const server = this.server;
    this.server = null;
    if (server !== null) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    try {
      // Shuts every reader down (a final OTLP export included), but never hangs stop().
      if (this.provider !== null) {
        const finished = await withTimeout(this.provider.shutdown(), SHUTDOWN_GRACE_MS);
        if (!finished) this.options.logger?.warn({ graceMs: SHUTDOWN_GRACE_MS }, "metrics shutdown did not finish in time; the last OTLP export may be lost");
      }
    } finally {
      this.provider = null;
      this.counters = null;
      if (this.ownsGlobalProvider) {
        // Unregister so a later instance in this process can register its own provider.
        otelApi.disable();
        if (this.options.logger !== undefined) diag.disable();
        globalProviderTaken = false;
        this.ownsGlobalProvider = false;
      }
    }
  }
}

/**
 * The OpenTelemetry resource per the semantic conventions; OTEL_RESOURCE_ATTRIBUTES and
 * OTEL_SERVICE_NAME override it, as operators of OpenTelemetry SDKs expect.
 */
export function agentResource(identity: AgentIdentity): Resource {
  const ours = resourceFromAttributes({
    "service.name": identity.serviceName,
    "service.version": identity.serviceVersion,
    "service.instance.id": identity.instanceId,
    "host.name": identity.host,
  });
  return ours.merge(detectResources({ detectors: [envDetector] }));
}

function listen(exporter: PrometheusExporter, { host, port }: PrometheusOptions): Promise<Server> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "").split("?")[0];
    if (req.method === "GET" && path === PROMETHEUS_PATH) {
      exporter.getMetricsRequestHandler(req, res);
    } else {
      res.statusCode = 404;
      res.end(`not found; metrics are at ${PROMETHEUS_PATH}\n`);
    }
  });
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new Error(`prometheus endpoint ${host}:${port}: ${err.message}`));
    server.once("error", onError);
    server.listen({ host, port }, () => {
      server.off("error", onError);
      resolve(server);
    });
  });
}

/** Resolves true when `p` settles first (its rejection is swallowed: we are shutting down), false on timeout. */
async function withTimeout(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
