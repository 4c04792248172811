import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ALL_METRICS, Metric, prometheusName } from "../../pipeline/metricNames.js";

// Compiled to dist/test/pipeline/: the repository root is three levels up.
const docPath = fileURLToPath(new URL("../../../docs/metrics.md", import.meta.url));
const doc = readFileSync(docPath, "utf8");

/** The doc's table rows: | `otel.name` | `prom_name` | kind | unit | labels | description | */
function docRows(): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of doc.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const name = /^`(cage\.[a-z0-9._]+)`$/.exec(cells[1] ?? "")?.[1];
    if (name !== undefined) rows.set(name, cells.slice(1, -1));
  }
  return rows;
}

void test("docs/metrics.md lists every metric with its Prometheus name, kind, unit and labels", () => {
  const rows = docRows();
  for (const def of ALL_METRICS) {
    const row = rows.get(def.name);
    assert.ok(row, `docs/metrics.md has no row for ${def.name}`);
    assert.equal(row[1], `\`${prometheusName(def)}\``, `${def.name}: Prometheus name`);
    assert.equal(row[2], def.kind, `${def.name}: kind`);
    assert.equal(row[3], `\`${def.unit}\``, `${def.name}: unit`);
    const labels = def.attributes.length === 0 ? "—" : def.attributes.map((a) => `\`${a}\``).join(", ");
    assert.equal(row[4], labels, `${def.name}: labels`);
  }
});

void test("docs/metrics.md lists no metric that metricNames.ts does not define", () => {
  const defined = new Set(ALL_METRICS.map((d) => d.name));
  for (const name of docRows().keys()) assert.ok(defined.has(name), `docs/metrics.md lists ${name}, which metricNames.ts does not define`);
});

void test("metric names are unique, begin with cage. and are valid OpenTelemetry instrument names", () => {
  const names = ALL_METRICS.map((d) => d.name);
  assert.equal(new Set(names).size, names.length);
  for (const n of names) assert.match(n, /^cage\.[a-z][a-z0-9_.]{0,250}$/);
  assert.equal(new Set(ALL_METRICS.map(prometheusName)).size, names.length, "Prometheus names do not collide");
});

void test("prometheusName follows the exporter: dots to underscores, _total on counters only", () => {
  assert.equal(prometheusName(Metric.cpuUtilization), "cage_cpu_utilization");
  assert.equal(prometheusName(Metric.cpuTime), "cage_cpu_time_total");
  assert.equal(prometheusName(Metric.pipelineLostMessages), "cage_pipeline_lost_messages_total");
  assert.equal(prometheusName({ name: "cage.x_total", kind: "counter", unit: "1", description: "", attributes: [] }), "cage_x_total");
});
