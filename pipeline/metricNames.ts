/**
 * The single source of truth for the metrics the pipeline exports. otelMetrics.ts creates its
 * instruments from these definitions, docs/metrics.md lists them (a test keeps the two in step),
 * and dashboards key on the Prometheus forms.
 */

import type { ActuatorValueKey } from "../protocol/actuatorMessages.js";

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
  pipelineSequenceAnomalies: {
    name: "cage.pipeline.sequence_anomalies",
    kind: "counter",
    unit: "{message}",
    description: "Messages whose header sequence jumped further than their publisher could have sent since its last message (forged or corrupt headers; not counted as lost), by topic",
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

  // --- actuators (from act.state / act.decision), history and the agent itself ---------------
  aggregateAge: {
    name: "cage.aggregate.age",
    kind: "gauge",
    unit: "s",
    description: "Seconds since the end of the cage's newest aggregated CPU window (grows when data stops coming; absent before the first)",
    attributes: ["cage"],
  },
  actuatorMode: {
    name: "cage.actuator.mode",
    kind: "gauge",
    unit: "1",
    description: "1 for the mode an actuator reports for the cage in act.state (active, failsafe, dry-run, error), 0 for the others; absent when its state is older than 10 s",
    attributes: ["cage", "actuator", "mode"],
  },
  actuatorDecisions: {
    name: "cage.actuator.decisions",
    kind: "counter",
    unit: "{decision}",
    description: "act.decision messages received since the pipeline started, by outcome (applied, dry_run, error)",
    attributes: ["cage", "actuator", "setting", "outcome"],
  },
  vmCpuCapApplied: {
    name: "cage.vm.cpu.cap.applied",
    kind: "gauge",
    unit: "%",
    description: "The CPU cap an actuator has applied to the VM, % of one CPU (act.state vmCpuCapPct)",
    attributes: ["cage", "actuator"],
  },
  vmCpuWeightApplied: {
    name: "cage.vm.cpu.weight.applied",
    kind: "gauge",
    unit: "1",
    description: "The CPU weight or shares an actuator has applied to the VM (act.state vmCpuWeight)",
    attributes: ["cage", "actuator"],
  },
  idsCpuCapApplied: {
    name: "cage.ids.cpu.cap.applied",
    kind: "gauge",
    unit: "%",
    description: "The IDS cap the limiter enforces, % of one CPU (act.state idsCapPct)",
    attributes: ["cage", "actuator"],
  },
  idsStoppedProcesses: {
    name: "cage.ids.stopped_processes",
    kind: "gauge",
    unit: "{process}",
    description: "IDS processes the limiter holds stopped right now (act.state idsStoppedPids)",
    attributes: ["cage", "actuator"],
  },
  balloonTarget: {
    name: "cage.balloon.target",
    kind: "gauge",
    unit: "By",
    description: "The balloon target last set for the VM (act.state vmTargetBytes)",
    attributes: ["cage", "actuator"],
  },
  balloonActual: {
    name: "cage.balloon.actual",
    kind: "gauge",
    unit: "By",
    description: "The VM's actual memory as the balloon back end reports it (act.state vmActualBytes)",
    attributes: ["cage", "actuator"],
  },
  balloonMoved: {
    name: "cage.balloon.moved",
    kind: "gauge",
    unit: "By",
    description: "Memory taken from the VM and given to the host, base minus target (act.state movedBytes)",
    attributes: ["cage", "actuator"],
  },
  balloonHostTarget: {
    name: "cage.balloon.host_target",
    kind: "gauge",
    unit: "By",
    description: "The host side's (dom0's) memory target where the back end has one (act.state hostTargetBytes)",
    attributes: ["cage", "actuator"],
  },
  balloonStuck: {
    name: "cage.balloon.stuck",
    kind: "gauge",
    unit: "1",
    description: "1 when the VM did not reach its balloon target in time and the actuator stopped pushing (act.state balloonStuck)",
    attributes: ["cage", "actuator"],
  },
  actuatorBackendErrors: {
    name: "cage.actuator.backend_errors",
    kind: "counter",
    unit: "{error}",
    description: "Back-end failures (command, socket, file) an actuator reports for the cage since it started (act.state backendErrors)",
    attributes: ["cage", "actuator"],
  },
  actuatorInvalidAggregates: {
    name: "cage.actuator.invalid_aggregates",
    kind: "counter",
    unit: "{message}",
    description: "Aggregates an actuator rejected as malformed (never acted on, never refreshing staleness) since it started (act.state invalidAggregates)",
    attributes: ["cage", "actuator"],
  },
  historyPointsWritten: {
    name: "cage.history.points_written",
    kind: "counter",
    unit: "{point}",
    description: "Points InfluxDB accepted from the history writer (agent.influx)",
    attributes: [],
  },
  historyPointsDropped: {
    name: "cage.history.points_dropped",
    kind: "counter",
    unit: "{point}",
    description: "History points lost: buffer_full (oldest dropped from the full spool while InfluxDB was unreachable), rejected (InfluxDB refused them as malformed), spool_error (the disk refused to store or return them)",
    attributes: ["reason"],
  },
  historyWriteFailures: {
    name: "cage.history.write_failures",
    kind: "counter",
    unit: "{request}",
    description: "Requests to InfluxDB (writes, or the database set-up before them) that failed and were retried with backoff",
    attributes: [],
  },
  historyBufferedPoints: {
    name: "cage.history.buffered_points",
    kind: "gauge",
    unit: "{point}",
    description: "History points waiting in the spool to be written to InfluxDB",
    attributes: [],
  },
  historySpoolBytes: {
    name: "cage.history.spool_bytes",
    kind: "gauge",
    unit: "By",
    description: "Size of the history spool's segment files on disk (agent.stateDir/influx-spool)",
    attributes: [],
  },
  historySpoolTornRecords: {
    name: "cage.history.spool_torn_records",
    kind: "counter",
    unit: "{record}",
    description: "Spool records found torn or corrupt at start (a write cut short by a crash or power loss) and skipped",
    attributes: [],
  },
  historyReplayedPoints: {
    name: "cage.history.replayed_points",
    kind: "counter",
    unit: "{point}",
    description: "History points the previous run left in the spool, written first by this one",
    attributes: [],
  },
  historyConnected: {
    name: "cage.history.connected",
    kind: "gauge",
    unit: "1",
    description: "1 when the last InfluxDB write succeeded, 0 while it fails",
    attributes: [],
  },
  agentCpuTime: {
    name: "cage.agent.cpu.time",
    kind: "counter",
    unit: "s",
    description: "CPU seconds (user + system, children included while alive) the agent's own processes used, by process (supervisor, pipeline, collector-cpu, ...)",
    attributes: ["process"],
  },
  agentMemoryRss: {
    name: "cage.agent.memory.rss",
    kind: "gauge",
    unit: "By",
    description: "Resident memory of the agent's own processes (with their children, e.g. bpftrace), by process",
    attributes: ["process"],
  },
} as const satisfies Record<string, MetricDefinition>;

/** The metric each act.state value is exported as (pipeline/otelMetrics.ts). */
export const ACTUATOR_VALUE_METRICS: Readonly<Record<ActuatorValueKey, MetricDefinition>> = {
  vmCpuCapPct: Metric.vmCpuCapApplied,
  vmCpuWeight: Metric.vmCpuWeightApplied,
  idsCapPct: Metric.idsCpuCapApplied,
  idsStoppedPids: Metric.idsStoppedProcesses,
  vmTargetBytes: Metric.balloonTarget,
  vmActualBytes: Metric.balloonActual,
  movedBytes: Metric.balloonMoved,
  hostTargetBytes: Metric.balloonHostTarget,
  balloonStuck: Metric.balloonStuck,
  backendErrors: Metric.actuatorBackendErrors,
  invalidAggregates: Metric.actuatorInvalidAggregates,
};

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
