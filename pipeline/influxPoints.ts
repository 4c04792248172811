/**
 * How the pipeline's figures become InfluxDB points (pure: no I/O). docs/grafana.md documents
 * the layout; the Grafana dashboards query exactly these names. Field names follow the metric
 * names (pipeline/metricNames.ts): CPU and caps in cores, sizes in bytes, no percentages.
 *
 * Tags are only what is bounded by the configuration or the protocol: host (agent.host), cage
 * (cage file), role (vm|ids), actuator (one per actuator process) and setting (a handful per
 * actuator). PIDs,
 * reasons, modes and back ends are fields, so a churning PID or a new error text never creates
 * a series. Numbers are written as floats throughout: one type per field, never a conflict.
 */
import type { ActuatorDecision, ActuatorState } from "../protocol/actuatorMessages.js";
import { VM_CPU_KINDS, type CageAggregate } from "../protocol/cageAggregate.js";
import { ACTUATOR_VALUES } from "./metricNames.js";

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

/** Integer microseconds since the epoch: aggregates of one cage are ~100 ms apart, so never collide. */
export function microsTimestamp(timeMs: number): string {
  if (!Number.isFinite(timeMs) || timeMs < 0) throw new Error(`history point: time ${timeMs} ms is not a finite time after the epoch`);
  return Math.round(timeMs * 1000).toString();
}

/** Percent of one CPU (the wire format's unit) → cores. */
function cores(pct: number): number {
  return pct / 100;
}

/** The cage's caps and sizes, and per role its CPU over the window (cores), memory and processes. */
export function aggregatePoints(a: CageAggregate, host: string): HistoryPoint[] {
  const timestamp = microsTimestamp(a.timeMs);
  // cpu_cores here is the whole cage's (VM + IDS); cage_role has each role's, so no sum counts twice.
  const cageFields: HistoryPoint["fields"] = { cpu_cores: cores(a.totalPct), cpu_cap_cores: cores(a.capPct), window_seconds: a.windowSeconds };
  if (a.idsCapPct !== null) cageFields.ids_cpu_cap_cores = cores(a.idsCapPct);
  if (a.weight !== null) cageFields.weight = a.weight;
  if (a.memory.baseBytes !== null) cageFields.memory_base_bytes = a.memory.baseBytes;
  if (a.memory.floorBytes !== null) cageFields.memory_floor_bytes = a.memory.floorBytes;
  const vmFields: HistoryPoint["fields"] = { cpu_cores: cores(a.vm.cpuPct), rss_bytes: a.vm.rssBytes, processes: a.vm.pids.length };
  // A QEMU VM's CPU by thread kind: vcpu_cpu_cores, emulator_cpu_cores, vhost_cpu_cores.
  if (a.vm.cpuPctByKind !== undefined) for (const kind of VM_CPU_KINDS) vmFields[`${kind}_cpu_cores`] = cores(a.vm.cpuPctByKind[kind]);
  return [
    { measurement: Measurement.cage, tags: { host, cage: a.cage }, fields: cageFields, timestamp },
    { measurement: Measurement.cageRole, tags: { host, cage: a.cage, role: "vm" }, fields: vmFields, timestamp },
    {
      measurement: Measurement.cageRole,
      tags: { host, cage: a.cage, role: "ids" },
      fields: { cpu_cores: cores(a.ids.cpuPct), rss_bytes: a.ids.rssBytes, processes: a.ids.pids.length, pagecache_bytes: a.ids.pageCacheBytes },
      timestamp,
    },
  ];
}

export function actuatorStatePoint(s: ActuatorState, host: string): HistoryPoint {
  const fields: HistoryPoint["fields"] = { mode: s.mode, backend: s.backend };
  for (const [key, value] of Object.entries(s.values)) {
    const known = (ACTUATOR_VALUES as Record<string, { influxField: string; divideBy: number } | undefined>)[key];
    // Unknown keys (a newer actuator) keep their own name, snake-cased, rather than being lost.
    const field = known?.influxField ?? key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    if (typeof value === "number" && Number.isFinite(value)) fields[field] = value / (known?.divideBy ?? 1);
  }
  return { measurement: Measurement.actuatorState, tags: { host, cage: s.cage, actuator: s.actuator }, fields, timestamp: microsTimestamp(s.timeMs) };
}

export function actuatorDecisionPoint(d: ActuatorDecision, host: string): HistoryPoint {
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
    tags: { host, cage: d.cage, actuator: d.actuator, setting: d.setting },
    fields,
    timestamp: microsTimestamp(d.timeMs),
  };
}

function formatValue(v: number | null): string {
  return v === null ? "none" : String(v);
}
