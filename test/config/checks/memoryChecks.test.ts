import { test } from "node:test";
import assert from "node:assert/strict";
import { memoryProblems } from "../../../config/checks/memoryChecks.js";
import { collect } from "./collect.js";

function linesOf(memory: Record<string, unknown>, vm: unknown = { kind: "qemu" }): string[] {
  const { report, lines } = collect();
  memoryProblems(memory, vm, ["cages", 2, "memory"], report);
  return lines;
}

void test("floor <= base, and sizes that do not fit a safe integer", () => {
  assert.deepEqual(linesOf({ base: "1GiB", floor: "256MiB" }), []);
  assert.deepEqual(linesOf({ base: "1GiB", floor: "2GiB" }), ["cages[2].memory.floor: must be <= base (2GiB > 1GiB)"]);
  assert.deepEqual(linesOf({ base: 1e20, floor: "1GiB", failsafe: "99999999999GiB" }), ["cages[2].memory.base: is too large", "cages[2].memory.failsafe: is too large"]);
});

void test("the balloon knobs of the section are checked with it", () => {
  assert.deepEqual(linesOf({ base: "1GiB", floor: "256MiB", failsafe: "128MiB" }), ["cages[2].memory.failsafe: must be within [floor, base] (128MiB)"]);
  assert.deepEqual(linesOf({ base: "1GiB", floor: "256MiB", backend: "qmp" }, { kind: "cgroup" }), ["cages[2].memory.backend: qmp needs vm.kind qemu (its qmpSocket); this VM is cgroup"]);
});
