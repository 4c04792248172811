import { test } from "node:test";
import assert from "node:assert/strict";
import { influxProblems } from "../../../config/checks/influxChecks.js";
import { collect } from "./collect.js";

function linesOf(influx: Record<string, unknown>): string[] {
  const { report, lines } = collect();
  influxProblems(influx, report);
  return lines;
}

void test("retentions of at least an hour; downsampling shorter than what it keeps", () => {
  assert.deepEqual(linesOf({}), []);
  assert.deepEqual(linesOf({ retention: "30m" }), ["agent.influx.retention: must be at least 1h (InfluxDB's shortest retention), got 30m"]);
  assert.deepEqual(linesOf({ downsampleEvery: "2h", downsampledRetention: "1h" }), ["agent.influx.downsampleEvery: must be shorter than downsampledRetention (2h >= 1h)"]);
  // The default downsampledRetention (90d) is what downsampleEvery is compared with when absent.
  assert.deepEqual(linesOf({ downsampleEvery: "13w" }), ["agent.influx.downsampleEvery: must be shorter than downsampledRetention (13w >= 90d)"]);
});

void test("retryMinMs <= retryMaxMs, reported on the field the file gave", () => {
  assert.deepEqual(linesOf({ retryMinMs: 500, retryMaxMs: 100 }), ["agent.influx.retryMaxMs: retryMinMs must be <= retryMaxMs (500 > 100)"]);
  assert.deepEqual(linesOf({ retryMinMs: 20_000 }), ["agent.influx.retryMinMs: retryMinMs must be <= retryMaxMs (20000 > 10000)"]);
});
