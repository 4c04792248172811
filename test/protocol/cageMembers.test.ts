import { test } from "node:test";
import assert from "node:assert/strict";
import { protocolError } from "./protocolAssertions.js";
import { decodeCageMembers, encodeCageMembers, type CageMembersMessage } from "../../protocol/cageMembers.js";
import { PID_MAX } from "../../protocol/jsonFields.js";

const message: CageMembersMessage = {
  v: 1,
  timeMs: 1_763_760_000_123,
  cages: [
    { cage: "web", vm: { pids: [4100, 4101], startTimes: [91234, 91240] }, ids: { pids: [5120], startTimes: [95000] } },
    { cage: "db", vm: { pids: [], startTimes: [] }, ids: { pids: [], startTimes: [] } },
  ],
};

const bytes = (o: unknown): Buffer => Buffer.from(JSON.stringify(o), "utf8");
const withCage = (patch: (c: Record<string, unknown>) => void): Buffer => {
  const copy = JSON.parse(JSON.stringify(message)) as { cages: Record<string, unknown>[] };
  patch(copy.cages[0]!);
  return bytes(copy);
};

void test("agg.members round-trips: every cage, both roles, PIDs paired with start times", () => {
  assert.deepEqual(decodeCageMembers(encodeCageMembers(message)), message);
});

void test("a bad envelope is rejected whole, naming frame 2 and the field", () => {
  assert.equal(protocolError(() => decodeCageMembers(Buffer.from("{"))).where, "frame 2 (cage members)");
  assert.equal(protocolError(() => decodeCageMembers(bytes([1]))).reason, "must be a JSON object");
  assert.equal(protocolError(() => decodeCageMembers(bytes({ ...message, v: 2 }))).where, "frame 2 (cage members) field v");
  assert.equal(protocolError(() => decodeCageMembers(bytes({ ...message, timeMs: -1 }))).where, "frame 2 (cage members) field timeMs");
  assert.equal(protocolError(() => decodeCageMembers(bytes({ ...message, cages: {} }))).where, "frame 2 (cage members) field cages");
  assert.equal(protocolError(() => decodeCageMembers(bytes({ ...message, cages: [7] }))).where, "frame 2 (cage members) field cages[0]");
});

void test("one bad cage rejects the whole message, naming the element and its field", () => {
  const where = (b: Buffer): string => protocolError(() => decodeCageMembers(b)).where;
  assert.equal(where(withCage((c) => (c.cage = ""))), "frame 2 (cage members) field cages[0].cage");
  assert.equal(where(withCage((c) => delete c.ids)), "frame 2 (cage members) field cages[0].ids");
  assert.equal(where(withCage((c) => (c.vm = { pids: [0], startTimes: [1] }))), "frame 2 (cage members) field cages[0].vm.pids[0]");
  assert.equal(where(withCage((c) => (c.vm = { pids: [PID_MAX + 1], startTimes: [1] }))), "frame 2 (cage members) field cages[0].vm.pids[0]");
  assert.equal(where(withCage((c) => (c.ids = { pids: [5120] }))), "frame 2 (cage members) field cages[0].ids.startTimes");
  assert.equal(where(withCage((c) => (c.ids = { pids: [5120, 5121], startTimes: [1] }))), "frame 2 (cage members) field cages[0].ids.startTimes");
  assert.equal(where(withCage((c) => (c.ids = { pids: [5120], startTimes: [-1] }))), "frame 2 (cage members) field cages[0].ids.startTimes[0]");
  const twice = protocolError(() => decodeCageMembers(bytes({ ...message, cages: [message.cages[0], message.cages[0]] })));
  assert.equal(twice.where, "frame 2 (cage members) field cages[1].cage");
  assert.match(twice.reason, /"web" appears twice/);
});
