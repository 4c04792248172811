/** agent.influx: what InfluxDB would refuse later, reported now. */
import { DEFAULT_INFLUX } from "../defaults.js";
import { influxDurationMinutes, parseSize } from "../units.js";
import type { PathSegment, Report } from "../yamlLocation.js";

/** Smallest agent.influx.bufferSize; the spool refuses less too. */
export const MIN_BUFFER_BYTES = 1024 * 1024;

export function influxProblems(influx: Record<string, unknown>, report: Report): void {
  const at: PathSegment[] = ["agent", "influx"];
  // InfluxDB refuses retention policies shorter than one hour.
  for (const field of ["retention", "downsampledRetention"] as const) {
    const minutes = influxDurationMinutes(influx[field]);
    if (minutes !== null && minutes < 60) report([...at, field], `must be at least 1h (InfluxDB's shortest retention), got ${String(influx[field])}`);
  }
  const everyText = typeof influx.downsampleEvery === "string" ? influx.downsampleEvery : DEFAULT_INFLUX.downsampleEvery;
  const keptText = typeof influx.downsampledRetention === "string" ? influx.downsampledRetention : DEFAULT_INFLUX.downsampledRetention;
  const every = influxDurationMinutes(everyText);
  const kept = influxDurationMinutes(keptText);
  if (every !== null && kept !== null && every >= kept) {
    report([...at, "downsampleEvery"], `must be shorter than downsampledRetention (${everyText} >= ${keptText})`);
  }
  // A user without a password (or the reverse) would fail at the first write, far from the file.
  if ((influx.username === undefined) !== (influx.passwordFile === undefined)) {
    const [present, missing] = influx.username === undefined ? ["passwordFile", "username"] : ["username", "passwordFile"];
    report([...at, present], `needs ${missing} as well (set both or neither)`);
  }
  const min = typeof influx.retryMinMs === "number" ? influx.retryMinMs : DEFAULT_INFLUX.retryMinMs;
  const max = typeof influx.retryMaxMs === "number" ? influx.retryMaxMs : DEFAULT_INFLUX.retryMaxMs;
  // The spool must hold at least one segment's worth of records (pipeline/historySpool.ts).
  const spoolBytes = influx.bufferSize === undefined ? null : parseSize(influx.bufferSize);
  if (spoolBytes !== null && spoolBytes < MIN_BUFFER_BYTES) report([...at, "bufferSize"], `must be at least 1MiB, got ${String(influx.bufferSize)}`);
  if (min > max) report([...at, influx.retryMaxMs !== undefined ? "retryMaxMs" : "retryMinMs"], `retryMinMs must be <= retryMaxMs (${min} > ${max})`);
}
