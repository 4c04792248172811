import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_AGENT, DEFAULT_BALLOON_ACTUATOR, DEFAULT_CPU_ACTUATOR, DEFAULT_GUARDIAN_START_TIMEOUT_MS, DEFAULT_INFLUX, DEFAULT_LIMITER_ACTUATOR, defaultCpuActuatorSpec, defaultLimiterActuatorSpec } from "../../config/defaults.js";
import { parseConfigText } from "../../config/loadConfig.js";

const cages = "cages: []\n";

void test("the default actuator specs are what an empty section loads as", () => {
  const actuators = parseConfigText(`agent: { actuators: { cpu: {}, limiter: {}, balloon: {} } }\n${cages}`, "d.yaml").agent.actuators;
  assert.deepEqual(defaultCpuActuatorSpec(), actuators.cpu);
  assert.deepEqual(defaultLimiterActuatorSpec(), actuators.limiter);
  assert.deepEqual(DEFAULT_BALLOON_ACTUATOR, actuators.balloon);
  assert.equal(DEFAULT_CPU_ACTUATOR.guardianStartTimeoutMs, DEFAULT_GUARDIAN_START_TIMEOUT_MS);
});

void test("defaultCpuActuatorSpec and defaultLimiterActuatorSpec hand out copies a caller may change", () => {
  const cpu = defaultCpuActuatorSpec();
  cpu.periodMs = 1;
  assert.equal(defaultCpuActuatorSpec().periodMs, 100);
  const limiter = defaultLimiterActuatorSpec();
  limiter.mode = "sigstop";
  assert.equal(DEFAULT_LIMITER_ACTUATOR.mode, "cgroup");
});

void test("the shared defaults are frozen", () => {
  for (const d of [DEFAULT_AGENT, DEFAULT_INFLUX, DEFAULT_BALLOON_ACTUATOR, DEFAULT_CPU_ACTUATOR, DEFAULT_LIMITER_ACTUATOR]) assert.ok(Object.isFrozen(d));
  assert.equal(parseConfigText(cages, "d.yaml").agent.cpuIntervalMs, DEFAULT_AGENT.cpuIntervalMs);
});
