import { test } from "node:test";
import assert from "node:assert/strict";
import { balloonActuatorProblems, cageBalloonProblems } from "../../../config/checks/balloonChecks.js";
import { collect } from "./collect.js";

const GiB = 1024 ** 3;

void test("agent.actuators.balloon: dom0 base <= max, sizes that fit", () => {
  const { report, lines } = collect();
  balloonActuatorProblems({ dom0: { base: "1GiB", max: "2GiB" } }, report);
  balloonActuatorProblems({}, report);
  assert.deepEqual(lines, []);
  balloonActuatorProblems({ maxStep: 1e20, dom0: { base: "3GiB", max: "99999999999GiB" } }, report);
  balloonActuatorProblems({ dom0: { base: "3GiB", max: "2GiB" } }, report);
  assert.deepEqual(lines, [
    "agent.actuators.balloon.maxStep: is too large",
    "agent.actuators.balloon.dom0.max: is too large",
    "agent.actuators.balloon.dom0.base: must be <= max (3GiB > 2GiB)",
  ]);
});

void test("a cage's balloon back end must reach its VM", () => {
  const check = (memory: Record<string, unknown>, vm: unknown): string[] => {
    const { report, lines } = collect();
    cageBalloonProblems(memory, vm, ["cages", 0, "memory"], GiB, GiB / 4, report);
    return lines;
  };
  assert.deepEqual(check({ backend: "xl" }, { kind: "xen" }), []);
  assert.deepEqual(check({ backend: "virsh", libvirtDomain: "d" }, { kind: "process" }), []);
  assert.deepEqual(check({ backend: "cgroup", cgroup: "/sys/fs/cgroup/memory/x" }, { kind: "process" }), []);
  assert.deepEqual(check({ backend: "xl" }, { kind: "qemu" }), ["cages[0].memory.backend: xl needs vm.kind xen (its domain); this VM is qemu"]);
  assert.deepEqual(check({ backend: "virsh" }, { kind: "qemu" }), ["cages[0].memory.backend: virsh needs memory.libvirtDomain or vm.kind libvirt"]);
  assert.deepEqual(check({ backend: "virsh" }, { kind: "libvirt" }), []);
  assert.deepEqual(check({ backend: "cgroup" }, { kind: "process" }), ["cages[0].memory.backend: cgroup needs vm.kind cgroup or memory.cgroup"]);
  assert.deepEqual(check({ failsafe: "2GiB" }, { kind: "qemu" }), ["cages[0].memory.failsafe: must be within [floor, base] (2GiB)"]);
});
