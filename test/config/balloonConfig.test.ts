import { test } from "node:test";
import assert from "node:assert/strict";
import { isConfigError, type ConfigProblem } from "../../config/configError.js";
import { DEFAULT_BALLOON_ACTUATOR, parseConfigText } from "../../config/loadConfig.js";

const MiB = 1024 * 1024;
const cage = (memory: string, vm = "{ kind: qemu, match: [{ comm: qemu }], qmpSocket: /run/q.qmp }"): string =>
  `cages:\n  - name: a\n    vm: ${vm}\n    cpu: { cap: 50 }\n    memory: ${memory}\n`;

function problemsOf(text: string): ConfigProblem[] {
  try {
    parseConfigText(text, "t.yaml");
  } catch (err) {
    assert.ok(isConfigError(err));
    return err.problems;
  }
  assert.fail("expected a ConfigError");
}

void test("agent.actuators.balloon: defaults and sizes", () => {
  const c = parseConfigText(`agent:\n  actuators:\n    balloon: { maxStep: 64MiB, periodMs: 250, dom0: { base: 1GiB, max: 2GiB } }\n${cage("{ base: 1GiB, floor: 256MiB }")}`, "t.yaml");
  assert.deepEqual(c.agent.actuators.balloon, { ...DEFAULT_BALLOON_ACTUATOR, maxStepBytes: 64 * MiB, periodMs: 250, dom0: { baseBytes: 1024 * MiB, maxBytes: 2048 * MiB } });
  assert.equal(parseConfigText(cage("{ base: 1GiB, floor: 256MiB }"), "t.yaml").agent.actuators.balloon, null);
});

void test("per-cage memory knobs: failsafe default base, backend, cgroup", () => {
  const c = parseConfigText(cage("{ base: 1GiB, floor: 256MiB, failsafe: 768MiB, backend: cgroup, cgroup: /sys/fs/cgroup/memory/vm1/, cgroupV2File: memory.high }"), "t.yaml");
  assert.deepEqual(c.cages[0]?.memory, {
    baseBytes: 1024 * MiB,
    floorBytes: 256 * MiB,
    failsafeBytes: 768 * MiB,
    balloon: { backend: "cgroup", libvirtDomain: null, cgroup: "/sys/fs/cgroup/memory/vm1", cgroupV2File: "memory.high" },
  });
});

void test("balloon knobs that cannot work are reported with their path", () => {
  assert.deepEqual(problemsOf(cage("{ base: 1GiB, floor: 256MiB, failsafe: 2GiB }")).map((p) => `${p.path}: ${p.message}`), ["cages[0].memory.failsafe: must be within [floor, base] (2GiB)"]);
  assert.deepEqual(problemsOf(cage("{ base: 1GiB, floor: 256MiB, backend: xl }")).map((p) => `${p.path}: ${p.message}`), ["cages[0].memory.backend: xl needs vm.kind xen (its domain); this VM is qemu"]);
  assert.deepEqual(problemsOf(cage("{ base: 1GiB, floor: 256MiB, backend: virsh }")).map((p) => p.message), ["virsh needs memory.libvirtDomain or vm.kind libvirt"]);
  assert.deepEqual(problemsOf(cage("{ base: 1GiB, floor: 256MiB, backend: cgroup }", "{ kind: xen, domain: 3 }")).map((p) => p.message), ["cgroup needs vm.kind cgroup or memory.cgroup"]);
  assert.deepEqual(problemsOf(`agent: { actuators: { balloon: { dom0: { base: 2GiB, max: 1GiB } } } }\n${cage("{ base: 1GiB, floor: 256MiB }")}`).map((p) => `${p.path}: ${p.message}`), ["agent.actuators.balloon.dom0.base: must be <= max (2GiB > 1GiB)"]);
  assert.ok(problemsOf(`agent: { actuators: { balloon: { maxStpe: 1MiB } } }\n${cage("{ base: 1GiB, floor: 256MiB }")}`).some((p) => p.path === "agent.actuators.balloon.maxStpe" && /unknown field/.test(p.message)));
});

void test("a size too large for a safe integer is reported on its line, wherever it is", () => {
  const text = `agent:\n  actuators:\n    balloon: { maxStep: 99999999999GiB }\n${cage("{ base: 1GiB, floor: 256MiB, failsafe: 100000000000000000000 }")}`;
  assert.deepEqual(problemsOf(text), [
    { path: "agent.actuators.balloon.maxStep", message: "is too large", line: 3 },
    { path: "cages[0].memory.failsafe", message: "is too large", line: 8 },
  ]);
});
