// systemd unit properties: the parsers, and the client against a fake systemctl (PID 1 is not
// systemd on this machine; the v2 guest lab runs the real one).
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpuQuotaAssignment, cpuWeightAssignment, memoryAssignment, parseShow, parseTimespanUs, parseUnitBytes, parseUnitWeight, setPropertyArgv, systemctlClient, unitCgroupDir, unitRestoreKey } from "../../../host/systemd/unitProperties.js";
import { fakeSystemctl } from "./fakeSystemctl.js";

const VM = "machine-qemu\\x2d1\\x2dvm.scope";

void test("parsers: show output, timespans, weights, bytes; assignments as set-property takes them", () => {
  assert.deepEqual([...parseShow("LoadState=loaded\nCPUQuotaPerSecUSec=200ms\nControlGroup=/system.slice/a=b.service\n")], [
    ["LoadState", "loaded"],
    ["CPUQuotaPerSecUSec", "200ms"],
    ["ControlGroup", "/system.slice/a=b.service"],
  ]);
  assert.equal(parseTimespanUs("infinity", "q"), null);
  assert.equal(parseTimespanUs("200ms", "q"), 200_000);
  assert.equal(parseTimespanUs("1s 500ms", "q"), 1_500_000);
  assert.equal(parseTimespanUs("2.5s", "q"), 2_500_000);
  assert.throws(() => parseTimespanUs("lots", "aide.service CPUQuotaPerSecUSec"), /aide.service CPUQuotaPerSecUSec: not a systemd timespan: "lots"/);
  assert.equal(parseUnitWeight("[not set]", "w"), null);
  assert.equal(parseUnitWeight("18446744073709551615", "w"), null);
  assert.equal(parseUnitWeight("250", "w"), 250);
  assert.throws(() => parseUnitWeight("0", "x CPUWeight"), /x CPUWeight: expected a weight 1..10000 or unset, got "0"/);
  assert.equal(parseUnitBytes("infinity", "m"), null);
  assert.equal(parseUnitBytes("1073741824", "m"), 1073741824);
  assert.equal(cpuQuotaAssignment(null), "CPUQuota=");
  assert.equal(cpuQuotaAssignment(12.345), "CPUQuota=12.35%");
  assert.equal(cpuWeightAssignment(null), "CPUWeight=");
  assert.equal(memoryAssignment("MemoryHigh", null), "MemoryHigh=infinity");
  assert.deepEqual(setPropertyArgv("aide.service", ["CPUQuota=20%"]), ["systemctl", "set-property", "--runtime", "aide.service", "CPUQuota=20%"]);
  assert.throws(() => setPropertyArgv("-rf.service", ["CPUQuota=20%"]), /not a systemd unit name/);
  assert.throws(() => setPropertyArgv("aide", ["CPUQuota=20%"]), /not a systemd unit name .*: "aide"/);
  assert.equal(unitRestoreKey(VM, "cpu"), "systemd:cpu:machine-qemu_x2d1_x2dvm.scope");
});

void test("client: a unit that does not exist is named; show reads, set-property --runtime writes", async () => {
  const fake = fakeSystemctl({ "aide.service": { CPUQuotaPerSecUSec: "infinity", CPUWeight: "[not set]", ControlGroup: "/system.slice/aide.service" } });
  try {
    const client = systemctlClient(fake.program);
    await assert.rejects(client.show("nosuch.service", ["CPUWeight"]), /^UnitPropertyError: unit nosuch.service does not exist \(LoadState=not-found\)$/);
    await assert.rejects(client.set("nosuch.service", ["CPUQuota=20%"]), /unit nosuch.service: cannot set CPUQuota=20%: .* exited 1: Failed to set unit properties on nosuch.service: Unit nosuch.service not found./);
    assert.equal(await unitCgroupDir(client, "aide.service", "/sys/fs/cgroup"), "/sys/fs/cgroup/system.slice/aide.service");
    await client.set("aide.service", ["CPUQuota=20%"]);
    assert.equal(fake.props("aide.service").get("CPUQuota"), "20%");
    assert.deepEqual(fake.calls().at(-1), "set-property --runtime aide.service CPUQuota=20%");
  } finally {
    fake.remove();
  }
});
