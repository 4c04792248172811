import { test } from "node:test";
import assert from "node:assert/strict";
import { ActuatorStateBook } from "../../pipeline/actuatorStates.js";
import type { ActuatorState } from "../../protocol/actuatorMessages.js";

const state = (actuator: string, cage: string, timeMs: number, stuck: number): ActuatorState => ({
  v: 1, actuator, cage, timeMs, mode: "active", backend: "qmp", values: { balloonStuck: stuck },
});

void test("keeps the newest state per actuator and cage; forgets one not refreshed in time", () => {
  const book = new ActuatorStateBook(1000);
  book.noteState(state("balloon", "a", 100, 0), 10_000);
  book.noteState(state("balloon", "a", 200, 1), 10_100);
  book.noteState(state("balloon", "a", 150, 0), 10_200); // reordered: older than what we have
  book.noteState(state("balloon", "b", 100, 0), 10_500);
  assert.deepEqual(book.current(10_600).map((s) => [s.cage, s.values.balloonStuck]), [["a", 1], ["b", 0]]);
  assert.deepEqual(book.current(11_200).map((s) => s.cage), ["b"], "a was last heard at 10 100");
  assert.deepEqual(book.current(11_600), []);
});

void test("counts decisions by cage, actuator, setting and outcome", () => {
  const book = new ActuatorStateBook();
  const d = { v: 1 as const, actuator: "cpu", cage: "a", timeMs: 1, setting: "vm.cpu.cap", from: 1, to: 2, reason: "r", dryRun: false };
  book.noteDecision(d);
  book.noteDecision(d);
  book.noteDecision({ ...d, dryRun: true });
  book.noteDecision({ ...d, error: "EPERM" });
  assert.deepEqual(book.decisionCounts(), [
    { cage: "a", actuator: "cpu", setting: "vm.cpu.cap", outcome: "applied", count: 2 },
    { cage: "a", actuator: "cpu", setting: "vm.cpu.cap", outcome: "dry_run", count: 1 },
    { cage: "a", actuator: "cpu", setting: "vm.cpu.cap", outcome: "error", count: 1 },
  ]);
  assert.throws(() => new ActuatorStateBook(0), /expireMs must be > 0, got 0/);
});
