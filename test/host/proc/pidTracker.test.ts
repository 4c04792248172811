import { test } from "node:test";
import assert from "node:assert/strict";
import type { CageMembers } from "../../../host/proc/cageMembership.js";
import { PidTracker } from "../../../host/proc/pidTracker.js";
import type { ProcessInfo } from "../../../host/proc/processTable.js";

function proc(pid: number, startTime: number, comm = "p"): ProcessInfo {
  return { pid, ppid: 1, startTime, comm, exe: null, cmdline: comm, cgroups: { v1: {}, v2: "/" }, uids: { real: 0, effective: 0 } };
}

function members(entries: Record<string, Partial<CageMembers>>): Map<string, CageMembers> {
  return new Map(Object.entries(entries).map(([k, v]) => [k, { vm: v.vm ?? [], ids: v.ids ?? [] }]));
}

void test("started, unchanged, reused (same PID, new start time), exited", () => {
  const t = new PidTracker();
  assert.deepEqual(t.update(members({ web: { vm: [proc(10, 1, "qemu")], ids: [proc(20, 5, "tshark")] } })), [
    { kind: "started", cage: "web", role: "vm", pid: 10, startTime: 1, comm: "qemu" },
    { kind: "started", cage: "web", role: "ids", pid: 20, startTime: 5, comm: "tshark" },
  ]);
  assert.deepEqual(t.pids(), [10, 20]);
  assert.deepEqual(t.update(members({ web: { vm: [proc(10, 1, "qemu")], ids: [proc(20, 5, "tshark")] } })), []);

  // PID 20 exited and the kernel handed its number to a new tshark: same PID, later start time.
  assert.deepEqual(t.update(members({ web: { vm: [proc(10, 1, "qemu")], ids: [proc(20, 900, "tshark")] } })), [
    { kind: "reused", cage: "web", role: "ids", pid: 20, startTime: 900, comm: "tshark", previousStartTime: 5, previousComm: "tshark" },
  ]);
  assert.deepEqual([...t.keys()].sort(), ["10@1", "20@900"]);

  assert.deepEqual(t.update(members({ web: { vm: [proc(10, 1, "qemu")], ids: [proc(21, 950, "tshark")] } })), [
    { kind: "exited", cage: "web", role: "ids", pid: 20, startTime: 900, comm: "tshark" },
    { kind: "started", cage: "web", role: "ids", pid: 21, startTime: 950, comm: "tshark" },
  ]);
  assert.deepEqual(t.update(members({ web: {} })).map((c) => `${c.kind} ${c.pid}`), ["exited 10", "exited 21"]);
  assert.deepEqual(t.pids(), []);
});

void test("a process moving from VM to IDS is an exit from one role and a start in the other", () => {
  const t = new PidTracker();
  t.update(members({ web: { vm: [proc(30, 7)] } }));
  assert.deepEqual(t.update(members({ web: { ids: [proc(30, 7)] } })).map((c) => `${c.kind} ${c.role} ${c.pid}`), ["exited vm 30", "started ids 30"]);
});
