/**
 * The retention policies and continuous query the history writer needs in its database, and
 * what to create to get there from what the server has (pure: the writer runs the statements).
 *
 * Many agents share one database, so set-up only ever creates what is missing, with the same
 * statements on every agent: it never alters a policy and never drops a continuous query. The
 * first definition wins; an agent whose config differs logs that and writes into what exists.
 * CREATE of an identical policy or query is a no-op in InfluxDB 1.x, so two agents setting up
 * at once do not conflict either.
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
/** Every downsampling continuous query starts with this; its interval follows. */
export const CQ_PREFIX = "offloadcage_downsample_";

export interface RetentionPolicyInfo {
  name: string;
  /** As SHOW RETENTION POLICIES prints it, e.g. "168h0m0s"; "0s" is infinite. */
  duration: string;
  default: boolean;
}

export type SchemaAction =
  | { kind: "createPolicy"; name: string; duration: string; isDefault: boolean }
  | { kind: "createQuery"; name: string; query: string };

export interface SchemaPlan {
  actions: SchemaAction[];
  /** What exists and differs from this agent's config (left as it is, to be logged). */
  differences: string[];
}

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

/** The downsampling continuous query: mean and max of every numeric field, per series (host and cage kept). */
export function downsampleQuery(spec: InfluxSpec): { name: string; query: string } {
  const db = quoteIdent(spec.database);
  const sources = [Measurement.cage, Measurement.cageRole, Measurement.actuatorState].join("|");
  return {
    name: `${CQ_PREFIX}${spec.downsampleEvery}`,
    query: `SELECT mean(*), max(*) INTO ${db}.${quoteIdent(LONGTERM_POLICY)}.:MEASUREMENT FROM ${db}.${quoteIdent(RAW_POLICY)}./^(${sources})$/ GROUP BY time(${spec.downsampleEvery}), *`,
  };
}

/**
 * What to create so the database has our policies (raw the default) and one downsampling query,
 * and what exists with another definition than this agent's config.
 */
export function schemaPlan(spec: InfluxSpec, policies: readonly RetentionPolicyInfo[], queryNames: readonly string[]): SchemaPlan {
  const actions: SchemaAction[] = [];
  const differences: string[] = [];
  const wanted = [
    { name: RAW_POLICY, duration: spec.retention, isDefault: true, setting: "retention" },
    { name: LONGTERM_POLICY, duration: spec.downsampledRetention, isDefault: false, setting: "downsampledRetention" },
  ];
  for (const { setting, ...w } of wanted) {
    const have = policies.find((p) => p.name === w.name);
    const minutes = influxDurationMinutes(w.duration);
    if (minutes === null) throw new Error(`influx: retention ${JSON.stringify(w.duration)} is not a duration`);
    if (have === undefined) actions.push({ kind: "createPolicy", ...w });
    else if (shownDurationMinutes(have.duration) !== minutes) {
      differences.push(`retention policy ${w.name} keeps ${have.duration}, not agent.influx.${setting} ${w.duration}; left as it is`);
    }
  }
  const cq = downsampleQuery(spec);
  const ours = queryNames.filter((n) => n.startsWith(CQ_PREFIX));
  if (ours.length === 0) actions.push({ kind: "createQuery", ...cq });
  else if (!ours.includes(cq.name)) {
    differences.push(`downsampling query ${ours.join(", ")} is in place, not ${cq.name} (agent.influx.downsampleEvery ${spec.downsampleEvery}); left as it is`);
  }
  return { actions, differences };
}
