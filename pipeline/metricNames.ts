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
  cpuSeconds: {
    name: "cage.cpu.seconds",
    kind: "counter",
    unit: "s",
    description: "On-CPU seconds charged to the cage's VM or IDS since the pipeline started; rate() is the CPU in cores, the cage's total is the sum over role",
    attributes: ["cage", "role"],
  },
  vmCpuSeconds: {
    name: "cage.vm.cpu.seconds",
    kind: "counter",
    unit: "s",
    description: "On-CPU seconds of a QEMU VM's host threads by kind (vcpu, emulator, vhost) since the pipeline started; the kinds sum to cage_cpu_seconds_total{role=\"vm\"} (qemu and libvirt VMs only)",
    attributes: ["cage", "kind"],
  },
  cpuCap: {
    name: "cage.cpu.cap.cores",
    kind: "gauge",
    unit: "{cpu}",
    description: "The cage's configured CPU cap, in cores (CPU-seconds per second)",
    attributes: ["cage"],
  },
  idsCpuCap: {
    name: "cage.ids.cpu.cap.cores",
    kind: "gauge",
    unit: "{cpu}",
    description: "The IDS's own configured CPU cap, in cores (only cages that set one)",
    attributes: ["cage"],
  },
  memoryRss: {
    name: "cage.memory.rss.bytes",
    kind: "gauge",
    unit: "By",
    description: "Sum of the latest VmRSS of the cage's VM or IDS processes",
    attributes: ["cage", "role"],
  },
  idsPageCache: {
    name: "cage.ids.pagecache.bytes",
    kind: "gauge",
    unit: "By",
    description: "Page cache the IDS's file reads added that is still resident (eBPF attribution, exited IDS processes included)",
    attributes: ["cage"],
  },
  memoryBase: {
    name: "cage.memory.base.bytes",
    kind: "gauge",
    unit: "By",
    description: "The VM's configured memory when the IDS uses none (only cages with a memory section)",
    attributes: ["cage"],
  },
  memoryFloor: {
    name: "cage.memory.floor.bytes",
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
  pipelineIdsHelperRejected: {
    name: "cage.pipeline.ids_helper_rejected",
    kind: "counter",
    unit: "{entry}",
    description: "IDS-VM helper reports ignored, never charged, by reason: malformed (not \"CR3 STARTTIME\" under a PID), forged (below a domain that is no cr3From: helper IDS-VM), unseen (a CR3 that never ran in its IDS-VM); each once",
    attributes: ["reason"],
  },
  pipelineResolveErrors: {
    name: "cage.pipeline.resolve_errors",
    kind: "counter",
    unit: "{error}",
    description: "Cage membership resolutions that failed (the previous membership stays in force)",
    attributes: [],
  },
  pipelineLag: {
    name: "cage.pipeline.lag.seconds",
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
  collectorLostEvents: {
    name: "cage.collector.lost_events",
    kind: "counter",
    unit: "{event}",
    description: "Events the kernel or the hypervisor reported lost before the collector read them (status counters lostEvents, lost)",
    attributes: ["collector"],
  },
  collectorInvalidInput: {
    name: "cage.collector.invalid_input",
    kind: "counter",
    unit: "{record}",
    description: "Lines or trace records a collector could not use and skipped (status counters parseErrors, invalidUtf8, overlongLines, unknownLines, badEntries, invalidLines, corrupt, unknown)",
    attributes: ["collector"],
  },
  collectorErrors: {
    name: "cage.collector.errors",
    kind: "counter",
    unit: "{error}",
    description: "Failures a collector handled and carried on from: reads, samples, resolutions, helpers, publishing (status counters *Errors, readFailures, publishFailed)",
    attributes: ["collector"],
  },
  collectorSkippedWindows: {
    name: "cage.collector.skipped_windows",
    kind: "counter",
    unit: "{window}",
    description: "CPU windows without their own batch (their time lands in a later batch that spans them; status counter skippedWindows)",
    attributes: ["collector"],
  },
  collectorMapFull: {
    name: "cage.collector.map_full",
    kind: "counter",
    unit: "{window}",
    description: "Windows whose kernel map reached its key limit, so entries were dropped in the kernel (status counter mapFull)",
    attributes: ["collector"],
  },
  collectorUntrackedPageCache: {
    name: "cage.collector.untracked_pagecache.bytes",
    kind: "counter",
    unit: "By",
    description: "Page cache the IDS added that did not fit the ownership map, so it is not attributed (status counter untrackedBytes)",
    attributes: ["collector"],
  },

  // --- actuators (from act.state / act.decision), history and the agent itself ---------------
  aggregateAge: {
    name: "cage.aggregate.age.seconds",
    kind: "gauge",
    unit: "s",
    description: "Seconds since the end of the cage's newest aggregated CPU window (grows when data stops coming; absent before the first)",
    attributes: ["cage"],
  },
  actuatorMode: {
    name: "cage.actuator.mode",
    kind: "gauge",
    unit: "",
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
    name: "cage.vm.cpu.cap.applied.cores",
    kind: "gauge",
    unit: "{cpu}",
    description: "The CPU cap an actuator has applied to the VM, in cores (act.state vmCpuCapPct / 100)",
    attributes: ["cage", "actuator"],
  },
  vmCpuWeightApplied: {
    name: "cage.vm.cpu.weight.applied",
    kind: "gauge",
    unit: "",
    description: "The CPU weight or shares an actuator has applied to the VM (act.state vmCpuWeight)",
    attributes: ["cage", "actuator"],
  },
  idsCpuCapApplied: {
    name: "cage.ids.cpu.cap.applied.cores",
    kind: "gauge",
    unit: "{cpu}",
    description: "The IDS cap the limiter enforces, in cores (act.state idsCapPct / 100)",
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
    name: "cage.balloon.target.bytes",
    kind: "gauge",
    unit: "By",
    description: "The balloon target last set for the VM (act.state vmTargetBytes)",
    attributes: ["cage", "actuator"],
  },
  balloonActual: {
    name: "cage.balloon.actual.bytes",
    kind: "gauge",
    unit: "By",
    description: "The VM's actual memory as the balloon back end reports it (act.state vmActualBytes)",
    attributes: ["cage", "actuator"],
  },
  balloonMoved: {
    name: "cage.balloon.moved.bytes",
    kind: "gauge",
    unit: "By",
    description: "Memory taken from the VM and given to the host, base minus target (act.state movedBytes)",
    attributes: ["cage", "actuator"],
  },
  balloonHostTarget: {
    name: "cage.balloon.host_target.bytes",
    kind: "gauge",
    unit: "By",
    description: "The host side's (dom0's) memory target where the back end has one (act.state hostTargetBytes)",
    attributes: ["cage", "actuator"],
  },
  balloonStuck: {
    name: "cage.balloon.stuck",
    kind: "gauge",
    unit: "",
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
    unit: "",
    description: "1 when the last InfluxDB write succeeded, 0 while it fails",
    attributes: [],
  },
  agentCpuSeconds: {
    name: "cage.agent.cpu.seconds",
    kind: "counter",
    unit: "s",
    description: "CPU seconds (user + system, children included while alive) the agent's own processes used, by process (supervisor, pipeline, collector-cpu, ...)",
    attributes: ["process"],
  },
  agentMemoryRss: {
    name: "cage.agent.memory.rss.bytes",
    kind: "gauge",
    unit: "By",
    description: "Resident memory of the agent's own processes (with their children, e.g. bpftrace), by process",
    attributes: ["process"],
  },
} as const satisfies Record<string, MetricDefinition>;

/** How one act.state value is exported and stored: percent values become cores here, once. */
export interface ActuatorValueExport {
  metric: MetricDefinition;
  /** The InfluxDB field of the actuator_state measurement. */
  influxField: string;
  /** The wire value is divided by this (percent of one CPU → cores). */
  divideBy: number;
}

/** The metric and InfluxDB field of each act.state value (pipeline/otelMetrics.ts, pipeline/influxPoints.ts). */
export const ACTUATOR_VALUES: Readonly<Record<ActuatorValueKey, ActuatorValueExport>> = {
  vmCpuCapPct: { metric: Metric.vmCpuCapApplied, influxField: "vm_cpu_cap_cores", divideBy: 100 },
  vmCpuWeight: { metric: Metric.vmCpuWeightApplied, influxField: "vm_cpu_weight", divideBy: 1 },
  idsCapPct: { metric: Metric.idsCpuCapApplied, influxField: "ids_cpu_cap_cores", divideBy: 100 },
  idsStoppedPids: { metric: Metric.idsStoppedProcesses, influxField: "ids_stopped_processes", divideBy: 1 },
  vmTargetBytes: { metric: Metric.balloonTarget, influxField: "vm_target_bytes", divideBy: 1 },
  vmActualBytes: { metric: Metric.balloonActual, influxField: "vm_actual_bytes", divideBy: 1 },
  movedBytes: { metric: Metric.balloonMoved, influxField: "moved_bytes", divideBy: 1 },
  hostTargetBytes: { metric: Metric.balloonHostTarget, influxField: "host_target_bytes", divideBy: 1 },
  balloonStuck: { metric: Metric.balloonStuck, influxField: "balloon_stuck", divideBy: 1 },
  backendErrors: { metric: Metric.actuatorBackendErrors, influxField: "backend_errors", divideBy: 1 },
  invalidAggregates: { metric: Metric.actuatorInvalidAggregates, influxField: "invalid_aggregates", divideBy: 1 },
};

/**
 * The counters each collector's status message carries (docs/protocol.md, "Collector status")
 * that are exported, one metric per meaning; several keys of one collector with the same
 * meaning are summed. Keys not listed (levels such as trackedPids, or plain activity counts the
 * pipeline counts itself per topic) are not exported; the collector's own log has them.
 */
export const COLLECTOR_COUNTER_METRICS: ReadonlyArray<{ metric: MetricDefinition; keys: readonly string[] }> = [
  { metric: Metric.collectorLostEvents, keys: ["lostEvents", "lost"] },
  { metric: Metric.collectorInvalidInput, keys: ["parseErrors", "invalidUtf8", "overlongLines", "unknownLines", "badEntries", "invalidLines", "corrupt", "unknown"] },
  {
    metric: Metric.collectorErrors,
    keys: ["callbackErrors", "helperErrors", "onBatchErrors", "sampleErrors", "readFailures", "resolveErrors", "placeErrors", "xlErrors", "internalErrors", "publishFailed"],
  },
  { metric: Metric.collectorSkippedWindows, keys: ["skippedWindows"] },
  { metric: Metric.collectorMapFull, keys: ["mapFull"] },
  { metric: Metric.collectorUntrackedPageCache, keys: ["untrackedBytes"] },
];

/** The sum of `keys` in one status message's counters, or null when it has none of them. */
export function sumCounterKeys(counters: Readonly<Record<string, number>>, keys: readonly string[]): number | null {
  let sum: number | null = null;
  for (const k of keys) {
    const v = counters[k];
    if (v !== undefined) sum = (sum ?? 0) + v;
  }
  return sum;
}

export const ALL_METRICS: readonly MetricDefinition[] = Object.values(Metric);

/**
 * The name the OpenTelemetry JS Prometheus exporter renders: characters outside [a-zA-Z0-9_:]
 * become "_", and monotonic sums (counters) get "_total". This exporter adds no unit suffix,
 * which is why the unit is part of every instrument name (see collectorPrometheusName);
 * test/pipeline/pipelineService.test.ts checks these against a real scrape.
 */
export function prometheusName(def: MetricDefinition): string {
  const base = def.name.replace(/[^a-zA-Z0-9_:]/g, "_").replace(/_+/g, "_");
  return def.kind === "counter" && !base.endsWith("_total") ? `${base}_total` : base;
}

/** The unit words the OpenTelemetry Collector's Prometheus translation appends (annotations like {cpu} add none). */
const COLLECTOR_UNIT_WORDS: Readonly<Record<string, string>> = { s: "seconds", By: "bytes", "1": "ratio" };

/**
 * The name the same metric gets through an OpenTelemetry Collector's Prometheus exporter or
 * remote write, which appends the unit word when the name lacks it ("ratio" for gauges of unit
 * 1) and "_total" to counters. Every metric must get the same name both ways, so rules and
 * dashboards work whichever path the series took.
 */
export function collectorPrometheusName(def: MetricDefinition): string {
  const tokens = def.name.split(/[^a-zA-Z0-9]+/).filter((t) => t !== "");
  const unitWord = def.unit === "1" && def.kind === "counter" ? undefined : COLLECTOR_UNIT_WORDS[def.unit];
  if (unitWord !== undefined && !tokens.includes(unitWord)) tokens.push(unitWord);
  if (def.kind === "counter" && tokens[tokens.length - 1] !== "total") tokens.push("total");
  return tokens.join("_");
}
