import { test } from "node:test";
import assert from "node:assert/strict";
import { semanticProblems } from "../../../config/checks/semanticProblems.js";

void test("every section is checked, with the line the locator gives", () => {
  const data = {
    agent: { influx: { retention: "10m" }, actuators: { balloon: { dom0: { base: "2GiB", max: "1GiB" } } } },
    cages: [{ name: "a", cpu: { cap: 10, vmCeiling: 20 } }],
  };
  const problems = semanticProblems(data, (segments) => (segments[0] === "cages" ? 7 : undefined));
  assert.deepEqual(problems, [
    { path: "agent.influx.retention", message: "must be at least 1h (InfluxDB's shortest retention), got 10m" },
    { path: "agent.actuators.balloon.dom0.base", message: "must be <= max (2GiB > 1GiB)" },
    { path: "cages[0].cpu.vmCeiling", message: "must be <= cap (20 > 10)", line: 7 },
  ]);
});

void test("data of the wrong shape yields no semantic problems (the schema reports it)", () => {
  const none = (): undefined => undefined;
  assert.deepEqual(semanticProblems(null, none), []);
  assert.deepEqual(semanticProblems([1, 2], none), []);
  assert.deepEqual(semanticProblems({ agent: "x", cages: "y" }, none), []);
});
