import { test } from "node:test";
import assert from "node:assert/strict";
import { SequenceTracker } from "../../protocol/sequenceTracker.js";

void test("consecutive sequences lose nothing; a gap counts the missing messages", () => {
  const t = new SequenceTracker();
  assert.deepEqual(t.observe("raw.cpu", 7, 0n), { lost: 0, newPublisher: true, anomaly: false, whileDown: false });
  assert.deepEqual(t.observe("raw.cpu", 7, 1n), { lost: 0, newPublisher: false, anomaly: false, whileDown: false });
  assert.deepEqual(t.observe("raw.cpu", 7, 5n), { lost: 3, newPublisher: false, anomaly: false, whileDown: false });
  assert.deepEqual(t.observe("raw.cpu", 7, 6n), { lost: 0, newPublisher: false, anomaly: false, whileDown: false });
  assert.equal(t.lostTotal, 3);
});

void test("joining mid-stream loses nothing: we cannot know what was sent before we connected", () => {
  const t = new SequenceTracker();
  assert.deepEqual(t.observe("raw.cpu", 1, 1000n), { lost: 0, newPublisher: true, anomaly: false, whileDown: false });
  assert.equal(t.lostTotal, 0);
});

void test("topics and publishers are tracked separately", () => {
  const t = new SequenceTracker();
  t.observe("raw.cpu", 1, 0n);
  t.observe("raw.mem", 1, 0n);
  t.observe("raw.cpu", 2, 0n);
  assert.equal(t.observe("raw.mem", 1, 1n).lost, 0);
  assert.equal(t.observe("raw.cpu", 2, 3n).lost, 2);
  assert.equal(t.observe("raw.cpu", 1, 2n).lost, 1);
  assert.equal(t.lostTotal, 3);
});

void test("a restarted publisher (new id, sequence back at 0) is not counted as loss", () => {
  const t = new SequenceTracker();
  t.observe("raw.cpu", 1, 0n);
  t.observe("raw.cpu", 1, 1n);
  assert.deepEqual(t.observe("raw.cpu", 2, 0n), { lost: 0, newPublisher: true, anomaly: false, whileDown: false });
  assert.deepEqual(t.observe("raw.cpu", 2, 1n), { lost: 0, newPublisher: false, anomaly: false, whileDown: false });
  assert.equal(t.lostTotal, 0);
});

void test("duplicates and reordering count nothing", () => {
  const t = new SequenceTracker();
  t.observe("t", 1, 10n);
  assert.equal(t.observe("t", 1, 10n).lost, 0);
  assert.equal(t.observe("t", 1, 4n).lost, 0);
  assert.equal(t.lostTotal, 0);
});

void test("memory stays bounded with many restarted publishers, and tracking still works", () => {
  const t = new SequenceTracker();
  for (let id = 1; id <= 5000; id++) t.observe("raw.cpu", id, 0n);
  assert.equal(t.observe("raw.cpu", 5000, 2n).lost, 1);
  assert.equal(t.observe("raw.cpu", 1, 5n).newPublisher, true, "the oldest ids were forgotten");
});

void test("a jump beyond what the publisher could have sent is an anomaly, not billions lost", () => {
  const t = new SequenceTracker();
  t.observe("raw.cpu", 1, 10n, 1_000);
  // 140,737,555,464,192: what one bit-flipped header once reported as lost.
  assert.deepEqual(t.observe("raw.cpu", 1, 140_737_555_464_202n, 1_001), { lost: 0, newPublisher: false, anomaly: true, whileDown: false });
  assert.equal(t.lostTotal, 0);
  assert.equal(t.anomalyTotal, 1);
  // The reference stays the genuine sequence: the publisher's next message loses nothing.
  assert.deepEqual(t.observe("raw.cpu", 1, 11n, 1_002), { lost: 0, newPublisher: false, anomaly: false, whileDown: false });
  assert.equal(t.lostTotal, 0);
});

void test("the plausible jump grows with the time since the publisher's last message", () => {
  const t = new SequenceTracker();
  t.observe("raw.cpu", 1, 0n, 0);
  assert.equal(t.observe("raw.cpu", 1, 10_001n, 0).lost, 10_000, "a full high-water mark of drops at once is real loss");
  assert.equal(t.observe("raw.cpu", 1, 30_003n, 0).anomaly, true, "20,001 more in no time is not");
  assert.equal(t.observe("raw.cpu", 1, 30_003n, 20).lost, 20_001, "20 ms later it is");
  assert.equal(t.lostTotal, 30_001);
  assert.equal(t.anomalyTotal, 1);
});

void test("an old sequence does not move the reference back", () => {
  const t = new SequenceTracker();
  t.observe("raw.cpu", 1, 1000n, 0);
  assert.equal(t.observe("raw.cpu", 1, 5n, 1).lost, 0);
  assert.equal(t.observe("raw.cpu", 1, 1001n, 2).lost, 0, "not 995 lost after a stray low sequence");
});

void test("restored state: what a publisher sent while the subscriber was down is counted as lost", () => {
  const before = new SequenceTracker();
  before.observe("raw.cpu", 7, 0n, 1_000);
  before.observe("raw.cpu", 7, 41n, 1_010);
  before.observe("status", 7, 3n, 1_010);
  const saved = before.snapshot();
  assert.deepEqual(saved, [
    { topic: "raw.cpu", publisherId: 7, sequence: 41n, atMs: 1_010 },
    { topic: "status", publisherId: 7, sequence: 3n, atMs: 1_010 },
  ]);
  const after = new SequenceTracker();
  after.restore(saved);
  assert.deepEqual(after.observe("raw.cpu", 7, 60n, 5_000), { lost: 18, newPublisher: false, anomaly: false, whileDown: true });
  assert.deepEqual(after.observe("raw.cpu", 7, 62n, 5_001), { lost: 1, newPublisher: false, anomaly: false, whileDown: false }, "after the first message, gaps are live losses");
  assert.equal(after.lostTotal, 19);
  assert.equal(after.lostWhileDownTotal, 18);
  // A jump beyond what 4 s could carry is still an anomaly, not loss.
  const forged = new SequenceTracker();
  forged.restore(saved);
  assert.equal(forged.observe("raw.cpu", 7, 10n ** 15n, 5_000).anomaly, true);
  assert.equal(forged.lostTotal, 0);
});

void test("restored state: a publisher that restarted while the subscriber was down lost everything before its first message seen", () => {
  const t = new SequenceTracker();
  t.restore([
    { topic: "raw.cpu", publisherId: 7, sequence: 500n, atMs: 1_000 },
    { topic: "status", publisherId: 7, sequence: 20n, atMs: 1_000 },
  ]);
  // Publisher 9 replaced 7 on raw.cpu: its sequences 0..11 went to nobody.
  assert.deepEqual(t.observe("raw.cpu", 9, 12n, 3_000), { lost: 12, newPublisher: true, anomaly: false, whileDown: true });
  assert.equal(t.snapshot().some((e) => e.topic === "raw.cpu" && e.publisherId === 7), false, "the old id is forgotten");
  assert.deepEqual(t.observe("status", 9, 0n, 3_000), { lost: 0, newPublisher: true, anomaly: false, whileDown: false }, "its first status message: nothing lost");
  // Once the restored publisher of a topic is replaced, a further new id is an ordinary join.
  assert.deepEqual(t.observe("raw.cpu", 11, 40n, 3_001), { lost: 0, newPublisher: true, anomaly: false, whileDown: false });
  assert.equal(t.lostWhileDownTotal, 12);
  // Without restored state a publisher joined mid-stream loses nothing (we cannot know).
  assert.equal(new SequenceTracker().observe("raw.cpu", 9, 12n).lost, 0);
});
