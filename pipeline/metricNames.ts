/**
 * The single source of truth for the metrics the pipeline exports. otelMetrics.ts creates its
 * instruments from these definitions, docs/metrics.md lists them (a test keeps the two in step),
 * and dashboards key on the Prometheus forms.
 */

export type MetricKind = "gauge" | "counter";

export interface MetricDefinition {
  /** OpenTelemetry instrument name. */
  name: string;
  kind: MetricKind;
  /** UCUM unit as OpenTelemetry carries it. */
  unit: string;
  description: string;
  /** Attribute (label) keys every data point carries. */
  attributes: readonly string[];
}

export const Metric = {
  cpuUtilization: {
    name: "cage.cpu.utilization",
    kind: "gauge",
    unit: "%",
    description: "On-CPU time over the last window, % of one CPU, of the cage's VM, its IDS, and both (role=total)",
    attributes: ["cage", "role"],
  },
  cpuCap: {
    name: "cage.cpu.cap",
    kind: "gauge",
    unit: "%",
    description: "The cage's configured CPU cap, % of one CPU",
    attributes: ["cage"],
  },
  idsCpuCap: {
    name: "cage.ids.cpu.cap",
    kind: "gauge",
    unit: "%",
    description: "The IDS's own configured CPU cap, % of one CPU (only cages that set one)",
    attributes: ["cage"],
  },
  cpuTime: {
    name: "cage.cpu.time",
    kind: "counter",
    unit: "s",
    description: "Cumulative on-CPU seconds charged to the cage's VM or IDS since the pipeline started",
    attributes: ["cage", "role"],
  },
  memoryRss: {
    name: "cage.memory.rss",
    kind: "gauge",
    unit: "By",
    description: "Sum of the latest VmRSS of the cage's VM or IDS processes",
    attributes: ["cage", "role"],
  },
  idsPageCache: {
    name: "cage.ids.pagecache",
    kind: "gauge",
    unit: "By",
    description: "Page cache the IDS's file reads added that is still resident (eBPF attribution, exited IDS processes included)",
    attributes: ["cage"],
  },
  memoryBase: {
    name: "cage.memory.base",
    kind: "gauge",
    unit: "By",
    description: "The VM's configured memory when the IDS uses none (only cages with a memory section)",
    attributes: ["cage"],
  },
  memoryFloor: {
    name: "cage.memory.floor",
    kind: "gauge",
    unit: "By",
    description: "The configured size the VM is never shrunk below (only cages with a memory section)",
    attributes: ["cage"],
  },
  processes: {
    name: "cage.processes",
    kind: "gauge",
    unit: "{process}",
    description: "Processes currently resolved as the cage's VM or IDS",
    attributes: ["cage", "role"],
  },
  pipelineMessages: {
    name: "cage.pipeline.messages",
    kind: "counter",
    unit: "{message}",
    description: "Well-formed messages received from collectors, by topic",
    attributes: ["topic"],
  },
  pipelineLostMessages: {
    name: "cage.pipeline.lost_messages",
    kind: "counter",
    unit: "{message}",
    description: "Messages lost between a collector and the pipeline, counted from header sequence gaps, by topic",
    attributes: ["topic"],
  },
  pipelineInvalidFrames: {
    name: "cage.pipeline.invalid_frames",
    kind: "counter",
    unit: "{message}",
    description: "Messages dropped because a frame broke the wire format (see the pipeline's log for which and why)",
    attributes: [],
  },
  pipelineUnknownPids: {
    name: "cage.pipeline.unknown_pids",
    kind: "counter",
    unit: "{record}",
    description: "Per-process CPU records whose PID belongs to no cage (ignored)",
    attributes: [],
  },
  pipelineResolveErrors: {
    name: "cage.pipeline.resolve_errors",
    kind: "counter",
    unit: "{error}",
    description: "Cage membership resolutions that failed (the previous membership stays in force)",
    attributes: [],
  },
  pipelineLag: {
    name: "cage.pipeline.lag",
    kind: "gauge",
    unit: "s",
    description: "Now minus the end of the newest CPU window when it was aggregated",
    attributes: [],
  },
  collectorRestarts: {
    name: "cage.collector.restarts",
    kind: "counter",
    unit: "{restart}",
    description: "Restarts a collector reported in its status messages (its counters.restarts, else the count of state=restarting messages)",
    attributes: ["collector"],
  },
  collectorCounter: {
    name: "cage.collector.counter",
    kind: "gauge",
    unit: "1",
    description: "The latest value of each cumulative counter a collector reports in its status messages",
    attributes: ["collector", "counter"],
  },
} as const satisfies Record<string, MetricDefinition>;

export const ALL_METRICS: readonly MetricDefinition[] = Object.values(Metric);

/**
 * The name the OpenTelemetry Prometheus exporter renders: characters outside [a-zA-Z0-9_:]
 * become "_", and monotonic sums (counters) get "_total". This exporter version adds no unit
 * suffix; test/pipeline/pipelineService.test.ts checks these against a real scrape.
 */
export function prometheusName(def: MetricDefinition): string {
  const base = def.name.replace(/[^a-zA-Z0-9_:]/g, "_").replace(/_+/g, "_");
  return def.kind === "counter" && !base.endsWith("_total") ? `${base}_total` : base;
}
