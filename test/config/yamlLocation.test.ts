import { test } from "node:test";
import assert from "node:assert/strict";
import { LineCounter, parseDocument } from "yaml";
import { findNode, formatConfigPath, pointerSegments, problemAt, yamlLocator } from "../../config/yamlLocation.js";

const TEXT = `agent:
  logLevel: info
base: &b
  cap: 10
cages:
  - name: a
    cpu: *b
  - name: "b"
    "odd key": 1
`;

function parsed(): { locate: ReturnType<typeof yamlLocator>; doc: ReturnType<typeof parseDocument> } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(TEXT, { lineCounter });
  return { locate: yamlLocator(doc, lineCounter), doc };
}

void test("formatConfigPath: dots, indexes and quoted odd keys", () => {
  assert.equal(formatConfigPath(["cages", 1, "cpu", "cap"]), "cages[1].cpu.cap");
  assert.equal(formatConfigPath(["cages", 0, "odd key"]), 'cages[0]["odd key"]');
  assert.equal(formatConfigPath([]), "");
});

void test("pointerSegments: list indexes become numbers, ~1 and ~0 are unescaped", () => {
  const data = { cages: [{ "a/b": { "c~d": 1 } }] };
  assert.deepEqual(pointerSegments("/cages/0/a~1b/c~0d", data), ["cages", 0, "a/b", "c~d"]);
  assert.deepEqual(pointerSegments("", data), []);
  assert.deepEqual(pointerSegments("/x/1", { x: { 1: "key, not index" } }), ["x", "1"]);
});

void test("yamlLocator: the line of a key or a value, through aliases; undefined off the file", () => {
  const { locate } = parsed();
  assert.equal(locate(["agent", "logLevel"], "value"), 2);
  assert.equal(locate(["cages", 1, "name"], "key"), 8);
  assert.equal(locate(["cages", 1, "odd key"], "key"), 9);
  assert.equal(locate(["cages", 0, "cpu", "cap"], "value"), 4);
  assert.equal(locate(["cages", 2], "value"), undefined);
  assert.equal(locate(["agent", "logLevel", "deeper"], "value"), undefined);
});

void test("findNode and problemAt", () => {
  const { doc, locate } = parsed();
  assert.equal(String(findNode(doc, ["cages", 0, "name"], "value")), "a");
  assert.deepEqual(problemAt(["cages", 1, "name"], "bad", locate), { path: "cages[1].name", message: "bad", line: 8 });
  assert.deepEqual(problemAt(["nowhere"], "bad", locate), { path: "nowhere", message: "bad" });
});
