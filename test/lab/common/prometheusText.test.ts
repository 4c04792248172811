import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePrometheusText, sumOfMetric } from "../../../lab/common/prometheusText.js";

void test("parsePrometheusText and sumOfMetric: series as rendered; a metric's sum over its labels, not a longer name's", () => {
  const series = parsePrometheusText('# HELP x\n# TYPE x counter\nx_total{cage="a"} 2\nx_total{cage="b"} 3.5\nx_total_more 100\nx_total 1\n\n');
  assert.deepEqual([...series], [['x_total{cage="a"}', 2], ['x_total{cage="b"}', 3.5], ["x_total_more", 100], ["x_total", 1]]);
  assert.equal(sumOfMetric(series, "x_total"), 6.5);
  assert.equal(sumOfMetric(new Map([["y", Number.NaN], ["y{a=\"1\"}", 4]]), "y"), 4);
});
