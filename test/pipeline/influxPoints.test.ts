import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_INFLUX } from "../../config/loadConfig.js";
import { actuatorDecisionPoint, actuatorStatePoint, aggregatePoints, microsTimestamp } from "../../pipeline/influxPoints.js";
import { downsampleQuery, schemaActions, shownDurationMinutes } from "../../pipeline/influxSchema.js";
import type { CageAggregate } from "../../protocol/cageAggregate.js";

const agg: CageAggregate = {
  v: 1,
  cage: "web",
  timeMs: 1763760000123.4,
  windowSeconds: 0.1,
  vm: { cpuPct: 50, pids: [4100, 4101], startTimes: [91234, 91240], rssBytes: 1073741824 },
  ids: { cpuPct: 20, pids: [5120], startTimes: [95000], rssBytes: 125829120, pageCacheBytes: 0 },
  totalPct: 70,
  capPct: 150,
  idsCapPct: null,
  weight: 2,
  memory: { baseBytes: 4294967296, floorBytes: null },
};

void test("an aggregate is one cage point and one point per role; tags are cage and role only", () => {
  assert.deepEqual(aggregatePoints(agg), [
    { measurement: "cage", tags: { cage: "web" }, fields: { total_pct: 70, cap_pct: 150, window_s: 0.1, weight: 2, memory_base_bytes: 4294967296 }, timestamp: "1763760000123400" },
    { measurement: "cage_role", tags: { cage: "web", role: "vm" }, fields: { cpu_pct: 50, rss_bytes: 1073741824, processes: 2 }, timestamp: "1763760000123400" },
    { measurement: "cage_role", tags: { cage: "web", role: "ids" }, fields: { cpu_pct: 20, rss_bytes: 125829120, processes: 1, pagecache_bytes: 0 }, timestamp: "1763760000123400" },
  ]);
  const withCache: CageAggregate = { ...agg, ids: { ...agg.ids, pageCacheBytes: 4096 } };
  assert.equal(aggregatePoints(withCache)[2]?.fields.pagecache_bytes, 4096);
});

void test("actuator state: values as snake_case fields, mode and backend as fields, tags cage and actuator", () => {
  const p = actuatorStatePoint({
    v: 1, actuator: "balloon", cage: "web", timeMs: 1000, mode: "active", backend: "qmp",
    values: { vmTargetBytes: 5, movedBytes: 7, balloonStuck: 1, backendErrors: 2, ...({ someNewValue: 3 } as object) },
  });
  assert.deepEqual(p, {
    measurement: "actuator_state",
    tags: { cage: "web", actuator: "balloon" },
    fields: { mode: "active", backend: "qmp", vm_target_bytes: 5, moved_bytes: 7, balloon_stuck: 1, backend_errors: 2, some_new_value: 3 },
    timestamp: "1000000",
  });
});

void test("actuator decision: setting is a tag, null values are left out, the annotation text says it all", () => {
  const p = actuatorDecisionPoint({ v: 1, actuator: "cpu", cage: "web", timeMs: 2000, setting: "vm.cpu.cap", from: null, to: 30, reason: "ids 20% of cap 50%", dryRun: true });
  assert.deepEqual(p, {
    measurement: "actuator_decision",
    tags: { cage: "web", actuator: "cpu", setting: "vm.cpu.cap" },
    fields: { reason: "ids 20% of cap 50%", dry_run: true, applied: false, text: "cpu: vm.cpu.cap none → 30 (dry run): ids 20% of cap 50%", to_value: 30 },
    timestamp: "2000000",
  });
  const failed = actuatorDecisionPoint({ v: 1, actuator: "cpu", cage: "web", timeMs: 2000, setting: "vm.cpu.cap", from: 50, to: 30, reason: "r", dryRun: false, error: "EACCES" });
  assert.equal(failed.fields.applied, false);
  assert.equal(failed.fields.error, "EACCES");
  assert.equal(failed.fields.from_value, 50);
  assert.throws(() => microsTimestamp(Number.NaN), /not a finite time/);
});

void test("schema: creates both policies and the CQ on an empty database, nothing when all is in place", () => {
  const spec = { ...DEFAULT_INFLUX, database: "oc" };
  const cq = downsampleQuery(spec);
  assert.equal(cq.name, "offloadcage_downsample_1m");
  assert.equal(
    cq.query,
    'SELECT mean(*), max(*) INTO "oc"."longterm".:MEASUREMENT FROM "oc"."raw"./^(cage|cage_role|actuator_state)$/ GROUP BY time(1m), *',
  );
  assert.deepEqual(schemaActions(spec, [{ name: "autogen", duration: "0s", default: true }], []), [
    { kind: "createPolicy", name: "raw", duration: "7d", isDefault: true },
    { kind: "createPolicy", name: "longterm", duration: "90d", isDefault: false },
    { kind: "createQuery", ...cq },
  ]);
  const inPlace = [
    { name: "raw", duration: "168h0m0s", default: true },
    { name: "longterm", duration: "2160h0m0s", default: false },
  ];
  assert.deepEqual(schemaActions(spec, inPlace, [cq.name, "someone_elses_cq"]), []);
});

void test("schema: a changed duration, a lost default or an old CQ interval is corrected", () => {
  const spec = { ...DEFAULT_INFLUX, database: "oc", retention: "2d", downsampleEvery: "5m" };
  const have = [
    { name: "raw", duration: "168h0m0s", default: false },
    { name: "longterm", duration: "2160h0m0s", default: false },
  ];
  assert.deepEqual(schemaActions(spec, have, ["offloadcage_downsample_1m"]), [
    { kind: "alterPolicy", name: "raw", duration: "2d", isDefault: true },
    { kind: "dropQuery", name: "offloadcage_downsample_1m" },
    { kind: "createQuery", ...downsampleQuery(spec) },
  ]);
  assert.equal(shownDurationMinutes("1h0m0s"), 60);
  assert.equal(shownDurationMinutes("0s"), Infinity);
  assert.throws(() => shownDurationMinutes("7 days"), /cannot read retention policy duration "7 days"/);
});
