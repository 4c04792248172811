import { test } from "node:test";
import assert from "node:assert/strict";
import { chooseBackend } from "../../../actuators/balloon/backendChoice.js";
import type { CageSpec } from "../../../config/cageConfig.js";
import { DEFAULT_CAGE_BALLOON } from "../../../config/defaults.js";

const MiB = 1024 * 1024;

function cage(vm: CageSpec["vm"], balloon: Partial<typeof DEFAULT_CAGE_BALLOON> = {}): CageSpec {
  return {
    name: "c",
    vm,
    ids: [],
    cpu: { cap: 100, idsCap: null, weight: null },
    memory: { baseBytes: 512 * MiB, floorBytes: 128 * MiB, failsafeBytes: 512 * MiB, balloon: { ...DEFAULT_CAGE_BALLOON, ...balloon } },
  };
}

void test("a libvirt VM balloons through virsh on its own domain and URI; libvirtDomain still wins", () => {
  const lv: CageSpec["vm"] = { kind: "libvirt", domain: "web1", uri: "qemu:///system?socket=/tmp/s" };
  assert.deepEqual(chooseBackend(cage(lv)), { ok: true, choice: { kind: "virsh", domain: "web1", uri: "qemu:///system?socket=/tmp/s" } });
  assert.deepEqual(chooseBackend(cage(lv, { backend: "virsh", libvirtDomain: "other" })), { ok: true, choice: { kind: "virsh", domain: "other", uri: "qemu:///system?socket=/tmp/s" } });
  const proc: CageSpec["vm"] = { kind: "process", match: [{ comm: "qemu", descendants: true }] };
  assert.deepEqual(chooseBackend(cage(proc, { backend: "virsh", libvirtDomain: "web2" })), { ok: true, choice: { kind: "virsh", domain: "web2", uri: null } });
  assert.deepEqual(chooseBackend(cage(proc, { backend: "virsh" })), { ok: false, error: "cage c: memory.backend virsh: needs memory.libvirtDomain or a libvirt VM" });
});
