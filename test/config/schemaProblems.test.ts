import { test } from "node:test";
import assert from "node:assert/strict";
import { schemaProblems } from "../../config/schemaProblems.js";

const noLines = (): undefined => undefined;
const cage = { name: "a", vm: { kind: "xen", domain: 1 }, cpu: { cap: 10 } };

void test("a valid document has no schema problems", () => {
  assert.deepEqual(schemaProblems({ cages: [cage] }, noLines), []);
});

void test("ajv's errors in words, with paths and the line the locator gives", () => {
  const problems = schemaProblems(
    { cages: [{ ...cage, cpu: { cap: "x", backend: { kind: "lxc" } }, vm: { kind: "xen" }, colour: 1 }], agent: { logLevel: "loud" } },
    (segments, at) => (segments.join(".") === "cages.0.colour" && at === "key" ? 5 : undefined),
  );
  assert.deepEqual(problems.map((p) => `${p.line ?? "-"} ${p.path}: ${p.message}`).sort(), [
    "- agent.logLevel: must be one of: trace, debug, info, warn, error, fatal",
    "- cages[0].cpu.backend.kind: unknown kind \"lxc\" (must be one of: cgroup, virsh)",
    "- cages[0].cpu.cap: must be a number",
    "- cages[0].vm.domain: is required",
    "5 cages[0].colour: unknown field (allowed: name, vm, ids, cpu, memory, units)",
  ]);
});

void test("the top level and x-error messages", () => {
  assert.deepEqual(schemaProblems([], noLines), [{ path: "(top level)", message: "must be a mapping (object)" }]);
  assert.deepEqual(schemaProblems({ cages: [{ ...cage, name: "bad name" }] }, noLines), [
    { path: "cages[0].name", message: "must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit" },
  ]);
});
