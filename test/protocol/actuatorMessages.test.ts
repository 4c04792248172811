import { test } from "node:test";
import assert from "node:assert/strict";
import { protocolError } from "./protocolAssertions.js";
import { ActuatorValueKeys, decodeActuatorDecision, decodeActuatorState, type ActuatorDecision, type ActuatorState } from "../../protocol/actuatorMessages.js";
import { encodeJson } from "../../protocol/cageAggregate.js";

const state: ActuatorState = { v: 1, actuator: "cpu", cage: "web", timeMs: 1_700_000_000_000, mode: "active", backend: "cgroup-v2", values: { vmCpuCapPct: 30, invalidAggregates: 2 } };
const decision: ActuatorDecision = { v: 1, actuator: "limiter", cage: "web", timeMs: 1_700_000_000_000, setting: "ids.cap", from: null, to: 20, reason: "limited", dryRun: false };

void test("actuator state and decision round-trip", () => {
  assert.deepEqual(decodeActuatorState(encodeJson(state)), state);
  assert.deepEqual(decodeActuatorDecision(encodeJson(decision)), decision);
  assert.deepEqual(decodeActuatorDecision(encodeJson({ ...decision, error: "EACCES" })), { ...decision, error: "EACCES" });
});

void test("actuator state fields are checked and the bad field is named", () => {
  const bad = (patch: Record<string, unknown>): string => protocolError(() => decodeActuatorState(encodeJson({ ...state, ...patch }))).where;
  assert.equal(bad({ v: 2 }), "frame 2 (actuator state) field v");
  assert.equal(bad({ actuator: "" }), "frame 2 (actuator state) field actuator");
  assert.equal(bad({ cage: null }), "frame 2 (actuator state) field cage");
  assert.equal(bad({ timeMs: -1 }), "frame 2 (actuator state) field timeMs");
  assert.equal(bad({ timeMs: "1" }), "frame 2 (actuator state) field timeMs");
  assert.equal(bad({ mode: "sleepy" }), "frame 2 (actuator state) field mode");
  assert.equal(bad({ backend: 3 }), "frame 2 (actuator state) field backend");
  assert.equal(bad({ values: [] }), "frame 2 (actuator state) field values");
  assert.equal(bad({ values: { vmCpuCapPct: "30" } }), "frame 2 (actuator state) field values.vmCpuCapPct");
  assert.equal(bad({ values: { vmCpuCapPct: null } }), "frame 2 (actuator state) field values.vmCpuCapPct");
  assert.equal(bad({ values: { madeUp: 1 } }), "frame 2 (actuator state) field values.madeUp");
  for (const key of ActuatorValueKeys) assert.equal(decodeActuatorState(encodeJson({ ...state, values: { [key]: 1 } })).values[key], 1, key);
});

void test("actuator decision fields are checked and the bad field is named", () => {
  const bad = (patch: Record<string, unknown>): string => protocolError(() => decodeActuatorDecision(encodeJson({ ...decision, ...patch }))).where;
  assert.equal(bad({ setting: "" }), "frame 2 (actuator decision) field setting");
  assert.equal(bad({ from: "50" }), "frame 2 (actuator decision) field from");
  assert.equal(bad({ from: undefined }), "frame 2 (actuator decision) field from");
  assert.equal(bad({ to: [] }), "frame 2 (actuator decision) field to");
  assert.equal(bad({ reason: 1 }), "frame 2 (actuator decision) field reason");
  assert.equal(bad({ dryRun: "no" }), "frame 2 (actuator decision) field dryRun");
  assert.equal(bad({ error: 5 }), "frame 2 (actuator decision) field error");
});
