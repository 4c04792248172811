import { test } from "node:test";
import assert from "node:assert/strict";
import { cpuProblems } from "../../../config/checks/cpuChecks.js";
import { collect } from "./collect.js";

const at = ["cages", 0, "cpu"];
const processVm = { kind: "process" };

function linesOf(cpu: Record<string, unknown>, vm: unknown = processVm): string[] {
  const { report, lines } = collect();
  cpuProblems(cpu, vm, at, report);
  return lines;
}

void test("idsCap, vmCeiling and vmFloor against cap", () => {
  assert.deepEqual(linesOf({ cap: 50, idsCap: 30, vmFloor: 5, vmCeiling: 40 }), []);
  assert.deepEqual(linesOf({ cap: 50, idsCap: 60 }), ["cages[0].cpu.idsCap: must be <= cap (60 > 50)"]);
  assert.deepEqual(linesOf({ cap: 50, vmCeiling: 70 }), ["cages[0].cpu.vmCeiling: must be <= cap (70 > 50)"]);
  assert.deepEqual(linesOf({ cap: 50, vmFloor: 60 }), ["cages[0].cpu.vmFloor: must be <= cap (60 > 50)"]);
  assert.deepEqual(linesOf({ cap: 50, vmFloor: 40, vmCeiling: 30 }), ["cages[0].cpu.vmFloor: must be <= vmCeiling (40 > 30)"]);
});

void test("a cap the schema refuses leaves the comparisons with cap out", () => {
  assert.deepEqual(linesOf({ cap: 0, idsCap: 60, vmCeiling: 70 }), []);
  assert.deepEqual(linesOf({ cap: "fast", vmFloor: 40, vmCeiling: 30 }), ["cages[0].cpu.vmFloor: must be <= vmCeiling (40 > 30)"]);
});

void test("no explicit back end on a xen VM", () => {
  assert.deepEqual(linesOf({ cap: 50, backend: { kind: "virsh", domain: "d" } }, { kind: "xen", domain: 1 }), [
    "cages[0].cpu.backend: a xen VM is controlled with xl; remove backend (it is for process, qemu and cgroup VMs)",
  ]);
  assert.deepEqual(linesOf({ cap: 50, backend: { kind: "virsh", domain: "d" } }, { kind: "qemu" }), []);
});

void test("failsafeCap within [vmFloor, vmCeiling], with their defaults when unset", () => {
  assert.deepEqual(linesOf({ cap: 50, vmFloor: 10, vmCeiling: 40, failsafeCap: 10 }), []);
  assert.deepEqual(linesOf({ cap: 50, vmFloor: 10, vmCeiling: 40, failsafeCap: 40 }), []);
  assert.deepEqual(linesOf({ cap: 50, vmFloor: 10, vmCeiling: 40, failsafeCap: 9 }), ["cages[0].cpu.failsafeCap: must be within [vmFloor, vmCeiling] ([10, 40]), got 9"]);
  assert.deepEqual(linesOf({ cap: 50, vmFloor: 10, vmCeiling: 40, failsafeCap: 41 }), ["cages[0].cpu.failsafeCap: must be within [vmFloor, vmCeiling] ([10, 40]), got 41"]);
  assert.deepEqual(linesOf({ cap: 50, failsafeCap: 4 }), ["cages[0].cpu.failsafeCap: must be within [the default vmFloor, cap] ([5, 50]), got 4"]);
  assert.deepEqual(linesOf({ cap: 50, failsafeCap: 60 }), ["cages[0].cpu.failsafeCap: must be within [the default vmFloor, cap] ([5, 50]), got 60"]);
  assert.deepEqual(linesOf({ cap: 50, failsafeCap: 5 }), []);
});
