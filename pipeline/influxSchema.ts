/**
 * The retention policies and continuous queries the history writer keeps in its database, and
 * what to change to get there from what the server has (pure: the writer runs the statements).
 *
 *   raw       (DEFAULT) full-resolution aggregates and actuator state, kept `retention`
 *   longterm  means and maxima per `downsampleEvery` (continuous query), and every actuator
 *             decision, kept `downsampledRetention`
 */
import type { InfluxSpec } from "../config/cageConfig.js";
import { influxDurationMinutes } from "../config/loadConfig.js";
import { Measurement } from "./influxPoints.js";

export const RAW_POLICY = "raw";
export const LONGTERM_POLICY = "longterm";
/** Every continuous query we own starts with this; ones with another interval are replaced. */
export const CQ_PREFIX = "offloadcage_downsample_";

export interface RetentionPolicyInfo {
  name: string;
  /** As SHOW RETENTION POLICIES prints it, e.g. "168h0m0s"; "0s" is infinite. */
  duration: string;
  default: boolean;
}

export type SchemaAction =
  | { kind: "createPolicy"; name: string; duration: string; isDefault: boolean }
  | { kind: "alterPolicy"; name: string; duration: string; isDefault: boolean }
  | { kind: "dropQuery"; name: string }
  | { kind: "createQuery"; name: string; query: string };

/** Minutes in a SHOW RETENTION POLICIES duration ("168h0m0s", "1h0m0s", "0s" = infinite → Infinity). */
export function shownDurationMinutes(shown: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(shown);
  if (m === null || shown === "") throw new Error(`influx: cannot read retention policy duration ${JSON.stringify(shown)}`);
  const minutes = Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0) + Number(m[3] ?? 0) / 60;
  return minutes === 0 ? Infinity : minutes;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** The downsampling continuous query: mean and max of every numeric field, per series. */
export function downsampleQuery(spec: InfluxSpec): { name: string; query: string } {
  const db = quoteIdent(spec.database);
  const sources = [Measurement.cage, Measurement.cageRole, Measurement.actuatorState].join("|");
  return {
    name: `${CQ_PREFIX}${spec.downsampleEvery}`,
    query: `SELECT mean(*), max(*) INTO ${db}.${quoteIdent(LONGTERM_POLICY)}.:MEASUREMENT FROM ${db}.${quoteIdent(RAW_POLICY)}./^(${sources})$/ GROUP BY time(${spec.downsampleEvery}), *`,
  };
}

/** What to run so the database has our policies (durations as configured, raw the default) and only our current CQ. */
export function schemaActions(spec: InfluxSpec, policies: readonly RetentionPolicyInfo[], queryNames: readonly string[]): SchemaAction[] {
  const actions: SchemaAction[] = [];
  const wanted = [
    { name: RAW_POLICY, duration: spec.retention, isDefault: true },
    { name: LONGTERM_POLICY, duration: spec.downsampledRetention, isDefault: false },
  ];
  for (const w of wanted) {
    const have = policies.find((p) => p.name === w.name);
    const minutes = influxDurationMinutes(w.duration);
    if (minutes === null) throw new Error(`influx: retention ${JSON.stringify(w.duration)} is not a duration`);
    if (have === undefined) actions.push({ kind: "createPolicy", ...w });
    else if (shownDurationMinutes(have.duration) !== minutes || (w.isDefault && !have.default)) actions.push({ kind: "alterPolicy", ...w });
  }
  const cq = downsampleQuery(spec);
  for (const name of queryNames) if (name.startsWith(CQ_PREFIX) && name !== cq.name) actions.push({ kind: "dropQuery", name });
  if (!queryNames.includes(cq.name)) actions.push({ kind: "createQuery", ...cq });
  return actions;
}
