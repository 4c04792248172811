// Which balloon back end a cage gets (pure): auto by VM kind and units.vm, explicit choices and
// what each needs, with the error naming the cage and what is missing.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { CageBalloonSpec, CageSpec, VmSpec } from "../../../config/cageConfig.js";
import { chooseBackend } from "../../../actuators/balloon/backendChoice.js";

function cage(vm: VmSpec, balloon: Partial<CageBalloonSpec> = {}, units?: CageSpec["units"]): CageSpec {
  const spec: CageSpec = {
    name: "web",
    vm,
    ids: [],
    cpu: { cap: 100, idsCap: null, weight: null },
    memory: { baseBytes: 1 << 30, floorBytes: 1 << 28, failsafeBytes: 1 << 30, balloon: { backend: "auto", libvirtDomain: null, cgroup: null, cgroupV2File: "memory.high", ...balloon } },
  };
  if (units !== undefined) spec.units = units;
  return spec;
}

const processVm: VmSpec = { kind: "process", match: [{ comm: "qemu", descendants: true }] };
const scope = "machine-qemu\\x2d1\\x2dweb.scope";

void test("auto: qemu → QMP, a VM with units.vm → its unit's MemoryHigh, a cgroup VM → its cgroup", () => {
  assert.deepEqual(chooseBackend(cage({ kind: "qemu", match: [{ comm: "qemu", descendants: true }], qmpSocket: "/run/q.sock" }, {}, { ids: null, vm: scope })), { ok: true, choice: { kind: "qmp", socket: "/run/q.sock" } });
  assert.deepEqual(chooseBackend(cage(processVm, {}, { ids: null, vm: scope })), { ok: true, choice: { kind: "systemd", unit: scope, property: "MemoryHigh" } });
  assert.deepEqual(chooseBackend(cage({ kind: "cgroup", path: "/sys/fs/cgroup/vm1" })), { ok: true, choice: { kind: "cgroup", path: "/sys/fs/cgroup/vm1", v2File: "memory.high" } });
  assert.deepEqual(chooseBackend(cage(processVm, { backend: "systemd", cgroupV2File: "memory.max" }, { ids: null, vm: scope })), { ok: true, choice: { kind: "systemd", unit: scope, property: "MemoryMax" } });
});

void test("what each choice needs, said with the cage's name", () => {
  assert.deepEqual(chooseBackend(cage(processVm, { backend: "systemd" })), { ok: false, error: "cage web: memory.backend systemd: needs units.vm (the VM's systemd unit)" });
  assert.deepEqual(chooseBackend(cage(processVm)), { ok: false, error: "cage web: a process VM has no balloon; set memory.cgroup (its memory cgroup), units.vm or memory.backend" });
});

void test("a libvirt VM balloons through virsh on its own domain and URI; libvirtDomain still wins", () => {
  const lv: CageSpec["vm"] = { kind: "libvirt", domain: "web1", uri: "qemu:///system?socket=/tmp/s" };
  assert.deepEqual(chooseBackend(cage(lv)), { ok: true, choice: { kind: "virsh", domain: "web1", uri: "qemu:///system?socket=/tmp/s" } });
  assert.deepEqual(chooseBackend(cage(lv, { backend: "virsh", libvirtDomain: "other" })), { ok: true, choice: { kind: "virsh", domain: "other", uri: "qemu:///system?socket=/tmp/s" } });
  const proc: CageSpec["vm"] = { kind: "process", match: [{ comm: "qemu", descendants: true }] };
  assert.deepEqual(chooseBackend(cage(proc, { backend: "virsh", libvirtDomain: "web2" })), { ok: true, choice: { kind: "virsh", domain: "web2", uri: null } });
  assert.deepEqual(chooseBackend(cage(proc, { backend: "virsh" })), { ok: false, error: "cage web: memory.backend virsh: needs memory.libvirtDomain or a libvirt VM" });
});
