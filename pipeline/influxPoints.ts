/**
 * How the pipeline's figures become InfluxDB points (pure: no I/O). docs/influxdb.md documents
 * the layout; the Grafana dashboards and alert rules query exactly these names.
 *
 * Tags are only what is bounded by the configuration or the protocol: cage (cage file), role
 * (vm|ids), actuator (one per actuator process) and setting (a handful per actuator). PIDs,
 * reasons, modes and back ends are fields, so a churning PID or a new error text never creates
 * a series. Numbers are written as floats throughout: one type per field, never a conflict.
 */
import type { ActuatorDecision, ActuatorState, ActuatorValueKey } from "../protocol/actuatorMessages.js";
import type { CageAggregate } from "../protocol/cageAggregate.js";

/** A point as the `influx` package writes it; time is integer microseconds since the epoch (precision "u"). */
export interface HistoryPoint {
  measurement: string;
  tags: Record<string, string>;
  fields: Record<string, number | string | boolean>;
  timestamp: string;
}

export const Measurement = {
  /** One per aggregate: the cage as a whole. */
  cage: "cage",
  /** One per aggregate and role (vm, ids). */
  cageRole: "cage_role",
  /** One per act.state message. */
  actuatorState: "actuator_state",
  /** One per act.decision message; written to the long-term retention policy. */
  actuatorDecision: "actuator_decision",
} as const;

/** The field each act.state value is written as. */
export const ACTUATOR_VALUE_FIELDS: Readonly<Record<ActuatorValueKey, string>> = {
  vmCpuCapPct: "vm_cpu_cap_pct",
  vmCpuWeight: "vm_cpu_weight",
  idsCapPct: "ids_cap_pct",
  idsStoppedPids: "ids_stopped_pids",
  vmTargetBytes: "vm_target_bytes",
  vmActualBytes: "vm_actual_bytes",
  movedBytes: "moved_bytes",
  hostTargetBytes: "host_target_bytes",
  balloonStuck: "balloon_stuck",
  backendErrors: "backend_errors",
  invalidAggregates: "invalid_aggregates",
};

/** Integer microseconds since the epoch: aggregates of one cage are ~100 ms apart, so never collide. */
export function microsTimestamp(timeMs: number): string {
  if (!Number.isFinite(timeMs) || timeMs < 0) throw new Error(`history point: time ${timeMs} ms is not a finite time after the epoch`);
  return Math.round(timeMs * 1000).toString();
}

export function aggregatePoints(a: CageAggregate): HistoryPoint[] {
  const timestamp = microsTimestamp(a.timeMs);
  const cageFields: HistoryPoint["fields"] = { total_pct: a.totalPct, cap_pct: a.capPct, window_s: a.windowSeconds };
  if (a.idsCapPct !== null) cageFields.ids_cap_pct = a.idsCapPct;
  if (a.weight !== null) cageFields.weight = a.weight;
  if (a.memory.baseBytes !== null) cageFields.memory_base_bytes = a.memory.baseBytes;
  if (a.memory.floorBytes !== null) cageFields.memory_floor_bytes = a.memory.floorBytes;
  return [
    { measurement: Measurement.cage, tags: { cage: a.cage }, fields: cageFields, timestamp },
    {
      measurement: Measurement.cageRole,
      tags: { cage: a.cage, role: "vm" },
      fields: { cpu_pct: a.vm.cpuPct, rss_bytes: a.vm.rssBytes, processes: a.vm.pids.length },
      timestamp,
    },
    {
      measurement: Measurement.cageRole,
      tags: { cage: a.cage, role: "ids" },
      fields: { cpu_pct: a.ids.cpuPct, rss_bytes: a.ids.rssBytes, processes: a.ids.pids.length, pagecache_bytes: a.ids.pageCacheBytes },
      timestamp,
    },
  ];
}

export function actuatorStatePoint(s: ActuatorState): HistoryPoint {
  const fields: HistoryPoint["fields"] = { mode: s.mode, backend: s.backend };
  for (const [key, value] of Object.entries(s.values)) {
    // Unknown keys (a newer actuator) keep their own name, snake-cased, rather than being lost.
    const field = (ACTUATOR_VALUE_FIELDS as Record<string, string | undefined>)[key] ?? key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    if (typeof value === "number" && Number.isFinite(value)) fields[field] = value;
  }
  return { measurement: Measurement.actuatorState, tags: { cage: s.cage, actuator: s.actuator }, fields, timestamp: microsTimestamp(s.timeMs) };
}

export function actuatorDecisionPoint(d: ActuatorDecision): HistoryPoint {
  // from/to are InfluxQL keywords, hence from_value/to_value; null (none/unlimited) is left out.
  const fields: HistoryPoint["fields"] = {
    reason: d.reason,
    dry_run: d.dryRun,
    applied: !d.dryRun && d.error === undefined,
    // A text Grafana shows as the annotation, so the dashboard needs no string functions.
    text: `${d.actuator}: ${d.setting} ${formatValue(d.from)} → ${formatValue(d.to)}${d.dryRun ? " (dry run)" : ""}${d.error !== undefined ? ` FAILED: ${d.error}` : ""}: ${d.reason}`,
  };
  if (d.from !== null) fields.from_value = d.from;
  if (d.to !== null) fields.to_value = d.to;
  if (d.error !== undefined) fields.error = d.error;
  return {
    measurement: Measurement.actuatorDecision,
    tags: { cage: d.cage, actuator: d.actuator, setting: d.setting },
    fields,
    timestamp: microsTimestamp(d.timeMs),
  };
}

function formatValue(v: number | null): string {
  return v === null ? "none" : String(v);
}
