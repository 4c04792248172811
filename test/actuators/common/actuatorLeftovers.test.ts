// What `cage run` undoes for actuators that were down when it stopped, on this host's real cgroups:
// the VM's own CPU group left at a fail-safe cap with the VM inside, and a recorded original.
// Needs root; run it under the e2e lock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { releaseActuatorLeftovers } from "../../../actuators/common/actuatorLeftovers.js";
import { readLayout } from "../../../actuators/common/cgroupCpuBackend.js";
import { OriginalSettings, originalSettingsFilesFor } from "../../../actuators/common/originalSettings.js";
import { ownGroup } from "../../../host/cgroup/cagePlan.js";
import { parseProcCgroup } from "../../../host/proc/processTable.js";
import { agentConfig } from "../../pipeline/pipelineHarness.js";
import { startBurner, stopChild, testCpuCgroup } from "../actuatorHarness.js";

void test("an actuator's own group at its fail-safe and a recorded original are undone; a clean state is left alone", async () => {
  const layout = readLayout();
  const cage = `leftover${process.pid}`;
  const vm = startBurner(20);
  const other = testCpuCgroup("leftover-original");
  mkdirSync(other.path);
  const quota = join(other.path, "cpu.cfs_quota_us");
  try {
    const config = agentConfig([{ name: cage, vm: { kind: "process", match: [{ pid: vm.pid, descendants: false }] }, ids: [], cpu: { cap: 60, idsCap: null, weight: null }, memory: null }]);
    // As a killed CPU actuator leaves them: the VM in our group at the guardian's fail-safe cap…
    const group = ownGroup(layout, cage, "vm", "cpu").dir;
    mkdirSync(group, { recursive: true });
    writeFileSync(join(group, "cgroup.procs"), String(vm.pid));
    writeFileSync(join(group, "cpu.cfs_quota_us"), "30000");
    // …and the original of a group as found, recorded, with the fail-safe still written there.
    writeFileSync(quota, "30000");
    new OriginalSettings("cpu", originalSettingsFilesFor("cpu", config)).keep(cage, [{ op: "write", path: quota, value: "-1", failsafe: "30000" }]);

    await releaseActuatorLeftovers(config, pino({ level: "silent" }), layout);
    assert.equal(existsSync(group), false, "the VM's own group is removed");
    assert.equal(existsSync(join(group, "..")), false, "and the cage's folder above it");
    assert.equal(parseProcCgroup(readFileSync(`/proc/${vm.pid}/cgroup`, "utf8")).v1.cpu, "/", "the VM is back in the cpu root, without a cap");
    assert.equal(readFileSync(quota, "utf8").trim(), "-1", "the recorded original is back");
    assert.deepEqual(new OriginalSettings("cpu", originalSettingsFilesFor("cpu", config)).cageNames, [], "and no longer recorded");

    // Nothing left: a second call changes nothing and does not fail.
    writeFileSync(quota, "50000");
    await releaseActuatorLeftovers(config, pino({ level: "silent" }), layout);
    assert.equal(readFileSync(quota, "utf8").trim(), "50000", "a setting nobody recorded is not touched");
  } finally {
    await stopChild(vm);
    other.remove();
  }
});
