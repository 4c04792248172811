import { test } from "node:test";
import assert from "node:assert/strict";
import { actuatorDecisionPoint, actuatorStatePoint, aggregatePoints, microsTimestamp } from "../../pipeline/influxPoints.js";
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

void test("an aggregate is one cage point and one point per role; tags are host, cage and role; CPU in cores, no total", () => {
  assert.deepEqual(aggregatePoints(agg, "node-1"), [
    { measurement: "cage", tags: { host: "node-1", cage: "web" }, fields: { cpu_cores: 0.7, cpu_cap_cores: 1.5, window_seconds: 0.1, weight: 2, memory_base_bytes: 4294967296 }, timestamp: "1763760000123400" },
    { measurement: "cage_role", tags: { host: "node-1", cage: "web", role: "vm" }, fields: { cpu_cores: 0.5, rss_bytes: 1073741824, processes: 2 }, timestamp: "1763760000123400" },
    { measurement: "cage_role", tags: { host: "node-1", cage: "web", role: "ids" }, fields: { cpu_cores: 0.2, rss_bytes: 125829120, processes: 1, pagecache_bytes: 0 }, timestamp: "1763760000123400" },
  ]);
  const withCache: CageAggregate = { ...agg, ids: { ...agg.ids, pageCacheBytes: 4096 }, idsCapPct: 40 };
  assert.equal(aggregatePoints(withCache, "node-1")[2]?.fields.pagecache_bytes, 4096);
  assert.equal(aggregatePoints(withCache, "node-1")[0]?.fields.ids_cpu_cap_cores, 0.4);
  for (const p of aggregatePoints(withCache, "node-1")) for (const f of Object.keys(p.fields)) assert.doesNotMatch(f, /pct|percent|total/, `${p.measurement}.${f}`);
});

void test("a QEMU VM's vm.cpuPctByKind becomes vcpu_cpu_cores, emulator_cpu_cores and vhost_cpu_cores on its cage_role point", () => {
  const qemu: CageAggregate = { ...agg, vm: { ...agg.vm, cpuPctByKind: { vcpu: 40, emulator: 7.5, vhost: 2.5 } } };
  const [, vm, ids] = aggregatePoints(qemu, "node-1");
  assert.deepEqual(vm?.fields, { cpu_cores: 0.5, rss_bytes: 1073741824, processes: 2, vcpu_cpu_cores: 0.4, emulator_cpu_cores: 0.075, vhost_cpu_cores: 0.025 });
  assert.equal(ids?.fields.vcpu_cpu_cores, undefined);
});

void test("actuator state: values as snake_case fields (caps in cores), mode and backend as fields, tags host, cage and actuator", () => {
  const p = actuatorStatePoint(
    {
      v: 1, actuator: "balloon", cage: "web", timeMs: 1000, mode: "active", backend: "qmp",
      values: { vmTargetBytes: 5, movedBytes: 7, balloonStuck: 1, backendErrors: 2, vmCpuCapPct: 125, idsCapPct: 30, ...({ someNewValue: 3 } as object) },
    },
    "node-1",
  );
  assert.deepEqual(p, {
    measurement: "actuator_state",
    tags: { host: "node-1", cage: "web", actuator: "balloon" },
    fields: { mode: "active", backend: "qmp", vm_target_bytes: 5, moved_bytes: 7, balloon_stuck: 1, backend_errors: 2, vm_cpu_cap_cores: 1.25, ids_cpu_cap_cores: 0.3, some_new_value: 3 },
    timestamp: "1000000",
  });
});

void test("actuator decision: setting is a tag, null values are left out, the annotation text says it all", () => {
  const p = actuatorDecisionPoint({ v: 1, actuator: "cpu", cage: "web", timeMs: 2000, setting: "vm.cpu.cap", from: null, to: 30, reason: "ids 20% of cap 50%", dryRun: true }, "node-1");
  assert.deepEqual(p, {
    measurement: "actuator_decision",
    tags: { host: "node-1", cage: "web", actuator: "cpu", setting: "vm.cpu.cap" },
    fields: { reason: "ids 20% of cap 50%", dry_run: true, applied: false, text: "cpu: vm.cpu.cap none → 30 (dry run): ids 20% of cap 50%", to_value: 30 },
    timestamp: "2000000",
  });
  const failed = actuatorDecisionPoint({ v: 1, actuator: "cpu", cage: "web", timeMs: 2000, setting: "vm.cpu.cap", from: 50, to: 30, reason: "r", dryRun: false, error: "EACCES" }, "node-1");
  assert.equal(failed.fields.applied, false);
  assert.equal(failed.fields.error, "EACCES");
  assert.equal(failed.fields.from_value, 50);
  assert.throws(() => microsTimestamp(Number.NaN), /not a finite time/);
});
