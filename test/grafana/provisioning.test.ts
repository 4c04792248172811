/**
 * The Grafana provisioning files hang together: the datasources carry the uids the dashboards
 * and alert rules use, and every alert rule is well-formed for Grafana's file provisioning
 * (query A on a provisioned datasource, reduce B, threshold C as the condition, a valid `for`
 * and no-data / error states). Whether the queries return data is the e2e test's job.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { allPanels, dashboardFiles, datasourcesFile, grafanaAlertRules, INFLUX_UID, PROMETHEUS_UID, resolveDatasource } from "./grafanaFiles.js";

void test("datasources provide the uids the dashboards use", () => {
  const doc = parseYaml(readFileSync(datasourcesFile, "utf8")) as { apiVersion: number; datasources: { uid: string; type: string; url: string }[] };
  assert.equal(doc.apiVersion, 1);
  const byUid = new Map(doc.datasources.map((d) => [d.uid, d.type]));
  assert.equal(byUid.get(INFLUX_UID), "influxdb");
  assert.equal(byUid.get(PROMETHEUS_UID), "prometheus");
  for (const f of dashboardFiles()) {
    for (const p of allPanels(f.json)) {
      for (const ds of [p.datasource, ...(p.targets ?? []).map((t) => t.datasource)]) {
        if (ds !== undefined) assert.equal(byUid.get(resolveDatasource(f.json, ds) ?? ""), ds.type, `${f.file} panel "${p.title}": datasource ${JSON.stringify(ds)}`);
      }
    }
  }
});

void test("every dashboard has a datasource variable (its panels use it) and a host variable", () => {
  for (const f of dashboardFiles()) {
    const vars = new Map((f.json.templating?.list ?? []).map((v) => [v.name, v]));
    assert.equal(vars.get("datasource")?.type, "datasource", `${f.file}: $datasource`);
    assert.equal(vars.get("host")?.type, "query", `${f.file}: $host`);
    for (const p of allPanels(f.json)) for (const t of p.targets ?? []) assert.equal((t.datasource ?? p.datasource)?.uid, "${datasource}", `${f.file} panel "${p.title}" ${t.refId}`);
    for (const p of allPanels(f.json)) {
      for (const t of p.targets ?? []) {
        const text = t.query ?? t.expr ?? "";
        assert.match(text, /\$host/, `${f.file} panel "${p.title}" ${t.refId} filters by host`);
      }
    }
  }
});

void test("alert rules: unique uids, A on Prometheus, B reduces A, C thresholds B and is the condition", () => {
  const rules = grafanaAlertRules();
  assert.equal(new Set(rules.map((r) => r.uid)).size, rules.length);
  for (const r of rules) {
    const byRef = new Map(r.data.map((d) => [d.refId, d]));
    assert.equal(byRef.get("A")?.datasourceUid, PROMETHEUS_UID, `${r.title}: A`);
    assert.equal(typeof byRef.get("A")?.model.expr, "string", `${r.title}: A has an expr`);
    assert.deepEqual([byRef.get("B")?.model.type, byRef.get("B")?.model.expression], ["reduce", "A"], `${r.title}: B`);
    assert.deepEqual([byRef.get("C")?.model.type, byRef.get("C")?.model.expression], ["threshold", "B"], `${r.title}: C`);
    assert.equal(r.condition, "C");
    assert.match(r.for, /^[1-9][0-9]*[smh]$/, `${r.title}: for`);
    assert.ok(["OK", "NoData", "Alerting"].includes(r.noDataState ?? ""), `${r.title}: noDataState`);
    assert.ok(["OK", "Error", "Alerting"].includes(r.execErrState ?? ""), `${r.title}: execErrState`);
    assert.ok(r.labels?.severity && r.annotations?.summary, `${r.title}: severity and summary`);
  }
});
