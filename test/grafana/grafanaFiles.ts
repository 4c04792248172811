/**
 * The shipped Grafana and Prometheus files, read for the tests: dashboards, their panels'
 * queries, template variables and annotations, the Grafana alert rules and the Prometheus rules.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";

// Compiled to dist/test/grafana/: the repository root is three levels up.
export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
export const grafanaDir = `${repoRoot}grafana`;
export const dashboardsDir = `${grafanaDir}/dashboards`;
export const prometheusRulesFile = `${grafanaDir}/prometheus/offloadcage-rules.yml`;
export const prometheusRulesTestFile = `${grafanaDir}/prometheus/offloadcage-rules.test.yml`;
export const grafanaAlertsFile = `${grafanaDir}/provisioning/alerting/offloadcage-alerts.yaml`;
export const datasourcesFile = `${grafanaDir}/provisioning/datasources/offloadcage.yaml`;

export const INFLUX_UID = "offloadcage-influxdb";
export const PROMETHEUS_UID = "offloadcage-prometheus";

export interface DatasourceRef {
  type?: string;
  uid?: string;
}

export interface PanelTarget {
  refId: string;
  datasource?: DatasourceRef;
  /** InfluxQL (rawQuery). */
  query?: string;
  /** PromQL. */
  expr?: string;
  [key: string]: unknown;
}

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  datasource?: DatasourceRef;
  targets?: PanelTarget[];
  options?: Record<string, unknown>;
  fieldConfig?: { defaults?: { custom?: Record<string, unknown> }; overrides?: unknown[] };
  panels?: DashboardPanel[];
  [key: string]: unknown;
}

export interface DashboardJson {
  uid: string;
  title: string;
  panels: DashboardPanel[];
  templating?: { list?: { name: string; type: string; query?: string; datasource?: DatasourceRef; current?: { value?: unknown } }[] };
  annotations?: { list?: { name: string; target?: { query?: string; expr?: string }; datasource?: DatasourceRef; builtIn?: number }[] };
  [key: string]: unknown;
}

export interface DashboardFile {
  file: string;
  text: string;
  json: DashboardJson;
}

export function dashboardFiles(): DashboardFile[] {
  return readdirSync(dashboardsDir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((file) => {
      const text = readFileSync(`${dashboardsDir}/${file}`, "utf8");
      return { file, text, json: JSON.parse(text) as DashboardJson };
    });
}

/** Every panel, rows' nested panels included. */
export function allPanels(d: DashboardJson): DashboardPanel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

export type QueryLanguage = "influxql" | "promql";

export interface ShippedQuery {
  /** Where it is, for messages: file, panel title and refId, or variable / annotation name. */
  where: string;
  language: QueryLanguage;
  text: string;
  /** A table query (one row per decision) rather than a time series. */
  table?: boolean;
}

/**
 * The provisioned datasource uid a reference resolves to: a fixed uid, or `${name}` naming the
 * dashboard's datasource variable (its default must be a provisioned uid of the same type).
 */
export function resolveDatasource(d: DashboardJson, ds: DatasourceRef | undefined): string | undefined {
  const variable = /^\$\{(\w+)\}$/.exec(ds?.uid ?? "")?.[1];
  if (variable === undefined) return ds?.uid;
  const v = d.templating?.list?.find((x) => x.name === variable && x.type === "datasource");
  if (v === undefined || v.query !== ds?.type) return undefined;
  return typeof v.current?.value === "string" ? v.current.value : undefined;
}

function languageOf(d: DashboardJson, ds: DatasourceRef | undefined, where: string): QueryLanguage {
  const uid = resolveDatasource(d, ds);
  if (uid === INFLUX_UID && ds?.type === "influxdb") return "influxql";
  if (uid === PROMETHEUS_UID && ds?.type === "prometheus") return "promql";
  throw new Error(`${where}: datasource ${JSON.stringify(ds)} is neither ${INFLUX_UID} nor ${PROMETHEUS_UID}`);
}

/** Every query in a dashboard: panel targets, query variables, annotation queries. */
export function dashboardQueries(f: DashboardFile): ShippedQuery[] {
  const out: ShippedQuery[] = [];
  for (const p of allPanels(f.json)) {
    for (const t of p.targets ?? []) {
      const where = `${f.file}: panel "${p.title}" query ${t.refId}`;
      const language = languageOf(f.json, t.datasource ?? p.datasource, where);
      const text = language === "influxql" ? t.query : t.expr;
      if (typeof text !== "string" || text === "") throw new Error(`${where}: no query text`);
      out.push({ where, language, text, ...(t.resultFormat === "table" ? { table: true } : {}) });
    }
  }
  for (const v of f.json.templating?.list ?? []) {
    if (v.type !== "query") continue;
    const where = `${f.file}: variable $${v.name}`;
    out.push({ where, language: languageOf(f.json, v.datasource, where), text: v.query ?? "" });
  }
  for (const a of f.json.annotations?.list ?? []) {
    if (a.builtIn === 1) continue;
    const where = `${f.file}: annotation "${a.name}"`;
    const language = languageOf(f.json, a.datasource, where);
    out.push({ where, language, text: (language === "influxql" ? a.target?.query : a.target?.expr) ?? "", table: true });
  }
  return out;
}

export interface GrafanaAlertRule {
  uid: string;
  title: string;
  condition: string;
  for: string;
  data: { refId: string; datasourceUid: string; relativeTimeRange?: { from: number; to: number }; model: Record<string, unknown> }[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  noDataState?: string;
  execErrState?: string;
}

export function grafanaAlertRules(): GrafanaAlertRule[] {
  const doc = parseYaml(readFileSync(grafanaAlertsFile, "utf8")) as { groups: { rules: GrafanaAlertRule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

export interface PrometheusRule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
}

export function prometheusRules(): PrometheusRule[] {
  const doc = parseYaml(readFileSync(prometheusRulesFile, "utf8")) as { groups: { rules: PrometheusRule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}
