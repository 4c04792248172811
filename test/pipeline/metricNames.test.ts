import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ACTUATOR_VALUES, ALL_METRICS, collectorPrometheusName, COLLECTOR_COUNTER_METRICS, Metric, prometheusName, sumCounterKeys } from "../../pipeline/metricNames.js";

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
    assert.equal(row[3], def.unit === "" ? "—" : `\`${def.unit}\``, `${def.name}: unit`);
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
  assert.equal(prometheusName(Metric.cpuSeconds), "cage_cpu_seconds_total");
  assert.equal(prometheusName(Metric.memoryRss), "cage_memory_rss_bytes");
  assert.equal(prometheusName(Metric.pipelineLostMessages), "cage_pipeline_lost_messages_total");
  assert.equal(prometheusName({ name: "cage.x_total", kind: "counter", unit: "1", description: "", attributes: [] }), "cage_x_total");
});

void test("an OpenTelemetry Collector renders every metric under the same Prometheus name as the agent", () => {
  for (const def of ALL_METRICS) assert.equal(collectorPrometheusName(def), prometheusName(def), def.name);
  // What the Collector would do to names that lack their unit: the reason units are in our names.
  assert.equal(collectorPrometheusName({ name: "cage.cpu.time", kind: "counter", unit: "s", description: "", attributes: [] }), "cage_cpu_time_seconds_total");
  assert.equal(collectorPrometheusName({ name: "cage.memory.rss", kind: "gauge", unit: "By", description: "", attributes: [] }), "cage_memory_rss_bytes");
  assert.equal(collectorPrometheusName({ name: "cage.balloon.stuck", kind: "gauge", unit: "1", description: "", attributes: [] }), "cage_balloon_stuck_ratio");
});

void test("conventional names: seconds and bytes carry their unit, caps are in cores, nothing is a percentage", () => {
  for (const def of ALL_METRICS) {
    const prom = prometheusName(def);
    assert.doesNotMatch(`${def.name} ${def.unit}`, /%|pct|percent|utilization/i, `${def.name} is not percent-valued`);
    if (def.unit === "s") assert.match(prom, /_seconds(_total)?$/, prom);
    if (def.unit === "By") assert.match(prom, /_bytes(_total)?$/, prom);
    if (def.unit === "{cpu}") assert.match(prom, /_cores$/, prom);
    if (def.kind === "counter") assert.match(prom, /_total$/, prom);
    else assert.doesNotMatch(prom, /_total$/, `${prom}: a gauge is no total`);
    assert.ok(!def.attributes.includes("counter"), `${def.name}: one counter per meaning, not a counter label`);
  }
  for (const { metric } of Object.values(ACTUATOR_VALUES)) assert.ok(ALL_METRICS.includes(metric));
});

void test("collector status counters: each key has one meaning; keys of one meaning are summed", () => {
  const keys = COLLECTOR_COUNTER_METRICS.flatMap((m) => m.keys);
  assert.equal(new Set(keys).size, keys.length, "no key feeds two metrics");
  for (const { metric } of COLLECTOR_COUNTER_METRICS) assert.equal(metric.kind, "counter", metric.name);
  assert.equal(sumCounterKeys({ unknownLines: 2, badEntries: 3, windows: 9 }, ["unknownLines", "badEntries", "corrupt"]), 5);
  assert.equal(sumCounterKeys({ windows: 9 }, ["corrupt"]), null);
});
