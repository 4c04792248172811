import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSequenceState, parseSequenceState, SequenceStateFile, sequenceStatePath } from "../../pipeline/sequenceState.js";

const root = mkdtempSync(join(tmpdir(), "oc-seqstate-"));
after(() => rmSync(root, { recursive: true, force: true }));

void test("saved state loads back exactly, sequences beyond 2^53 included", () => {
  const dir = join(root, "a", "state");
  assert.equal(loadSequenceState(dir), null, "no file yet: no state");
  const state = new Map([
    ["ipc:///run/x/cpu.sock", [{ topic: "raw.cpu", publisherId: 4_294_967_295, sequence: 2n ** 60n + 3n, atMs: 1_700_000_000_123 }]],
    ["ipc:///run/x/memory.sock", []],
  ]);
  const file = new SequenceStateFile(dir);
  file.save(state, 42);
  assert.deepEqual(loadSequenceState(dir), state);
  assert.equal((JSON.parse(readFileSync(sequenceStatePath(dir), "utf8")) as { savedAtMs: number }).savedAtMs, 42);
  // A shorter state over a longer one: the rest of the old text is blanked, the file still parses.
  file.save(new Map([["ipc:///run/x/cpu.sock", []]]), 43);
  file.close();
  assert.deepEqual(loadSequenceState(dir), new Map([["ipc:///run/x/cpu.sock", []]]));
  assert.match(readFileSync(sequenceStatePath(dir), "utf8"), /^\{"version":1,"savedAtMs":43,.*\}\n +$/s);
});

void test("a new writer overwrites the last run's file in place, whatever its length", () => {
  const dir = join(root, "c");
  const first = new SequenceStateFile(dir);
  first.save(new Map([["ipc:///a-rather-long-endpoint-name.sock", [{ topic: "raw.cpu", publisherId: 7, sequence: 99n, atMs: 5 }]]]), 1);
  first.close();
  const second = new SequenceStateFile(dir);
  second.save(new Map(), 2);
  second.close();
  assert.deepEqual(loadSequenceState(dir), new Map());
});

void test("a damaged file is refused with its path and the first thing wrong", () => {
  const dir = join(root, "b");
  mkdirSync(dir, { recursive: true });
  writeFileSync(sequenceStatePath(dir), '{"version":1,"sources":{"e":[{"topic":"raw.cpu","publisherId":1,"sequence":"12x","atMs":5}]}}');
  assert.throws(() => loadSequenceState(dir), { message: `${sequenceStatePath(dir)}: sources["e"][0].sequence must be a decimal string` });
  writeFileSync(sequenceStatePath(dir), '{"version":1,"sou');
  assert.throws(() => loadSequenceState(dir), (err: Error) => err.message.startsWith(`${sequenceStatePath(dir)}: `));
  assert.throws(() => parseSequenceState('{"version":2,"sources":{}}'), { message: "version must be 1, got 2" });
  assert.throws(() => parseSequenceState('{"version":1,"sources":{"e":[{"topic":"t","publisherId":-1,"sequence":"1","atMs":1}]}}'), {
    message: 'sources["e"][0].publisherId must be an integer in [0, 4294967295]',
  });
  assert.throws(() => parseSequenceState('{"version":1,"sources":{"e":[{"topic":"","publisherId":1,"sequence":"1","atMs":1}]}}'), { message: 'sources["e"][0].topic must be a non-empty string' });
});
