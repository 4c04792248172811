import { test } from "node:test";
import assert from "node:assert/strict";
import { SequenceTracker } from "../../protocol/sequenceTracker.js";

void test("consecutive sequences lose nothing; a gap counts the missing messages", () => {
  const t = new SequenceTracker();
  assert.deepEqual(t.observe("raw.cpu", 7, 0n), { lost: 0, newPublisher: true });
  assert.deepEqual(t.observe("raw.cpu", 7, 1n), { lost: 0, newPublisher: false });
  assert.deepEqual(t.observe("raw.cpu", 7, 5n), { lost: 3, newPublisher: false });
  assert.deepEqual(t.observe("raw.cpu", 7, 6n), { lost: 0, newPublisher: false });
  assert.equal(t.lostTotal, 3);
});

void test("joining mid-stream loses nothing: we cannot know what was sent before we connected", () => {
  const t = new SequenceTracker();
  assert.deepEqual(t.observe("raw.cpu", 1, 1000n), { lost: 0, newPublisher: true });
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
  assert.deepEqual(t.observe("raw.cpu", 2, 0n), { lost: 0, newPublisher: true });
  assert.deepEqual(t.observe("raw.cpu", 2, 1n), { lost: 0, newPublisher: false });
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
