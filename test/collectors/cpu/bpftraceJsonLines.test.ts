import { test } from "node:test";
import assert from "node:assert/strict";
import { LineSplitter, parseBpftraceLine, quoteLargeIntegers } from "../../../collectors/cpu/bpftraceJsonLines.js";

test("real bpftrace 0.17 lines parse into typed lines", () => {
  assert.deepEqual(parseBpftraceLine('{"type": "attached_probes", "data": {"probes": 4}}'), {
    kind: "line", invalidUtf8: false, line: { type: "attached_probes", probes: 4 },
  });
  assert.deepEqual(parseBpftraceLine('{"type": "printf", "data": "cpu_window 3041 304219720829\\n"}'), {
    kind: "line", invalidUtf8: false, line: { type: "printf", text: "cpu_window 3041 304219720829\n" },
  });
  assert.deepEqual(parseBpftraceLine('{"type": "lost_events", "data": {"events": 2}}'), {
    kind: "line", invalidUtf8: false, line: { type: "lost_events", events: 2 },
  });
  assert.deepEqual(parseBpftraceLine('{"type": "time", "data": "21:43:10\\n"}'), {
    kind: "line", invalidUtf8: false, line: { type: "other", rawType: "time" },
  });
});

test("map lines: multi-key keys stay joined strings, unkeyed maps have key \"\"", () => {
  const r = parseBpftraceLine('{"type": "map", "data": {"@t1": {"15,15": 10195, "4721,4722": 21321}}}');
  assert.equal(r.kind, "line");
  assert.deepEqual(r.kind === "line" && r.line, {
    type: "map",
    maps: [{ name: "@t1", nonIntegerEntries: 0, entries: [{ key: "15,15", value: 10195n }, { key: "4721,4722", value: 21321n }] }],
  });
  const unkeyed = parseBpftraceLine('{"type": "map", "data": {"@n": -5}}');
  assert.deepEqual(unkeyed.kind === "line" && unkeyed.line, { type: "map", maps: [{ name: "@n", nonIntegerEntries: 0, entries: [{ key: "", value: -5n }] }] });
});

test("signed 64-bit values survive exactly, including beyond 2^53", () => {
  const r = parseBpftraceLine('{"type": "map", "data": {"@p0": {"1": -1, "2": 9223372036854775807, "3": -9223372036854775808, "4": 9007199254740993}}}');
  assert.equal(r.kind, "line");
  const values = r.kind === "line" && r.line.type === "map" ? r.line.maps[0]!.entries.map((e) => e.value) : [];
  assert.deepEqual(values, [-1n, 9223372036854775807n, -9223372036854775808n, 9007199254740993n]);
});

test("non-integer map values are counted, not returned", () => {
  const r = parseBpftraceLine('{"type": "map", "data": {"@s": {"k": "str", "j": 3, "t": [1,"a"]}}}');
  assert.deepEqual(r.kind === "line" && r.line, { type: "map", maps: [{ name: "@s", nonIntegerEntries: 2, entries: [{ key: "j", value: 3n }] }] });
});

test("quoteLargeIntegers leaves strings, floats and small numbers alone", () => {
  const text = '{"a": "12345678901234567890", "b": 1.5e300, "c": 12345678901234567890, "d": 7, "e": "x\\"1234567890123456789"}';
  const out = quoteLargeIntegers(text);
  const o = JSON.parse(out) as Record<string, unknown>;
  assert.equal(o.a, "12345678901234567890");
  assert.equal(o.b, 1.5e300);
  assert.equal(o.c, "\u0001big:12345678901234567890");
  assert.equal(o.d, 7);
  assert.equal(o.e, 'x"1234567890123456789');
});

test("blank lines (bpftrace writes two before the exit dump) are blank, not errors", () => {
  assert.deepEqual(parseBpftraceLine(""), { kind: "blank" });
  assert.deepEqual(parseBpftraceLine(Buffer.from("  ")), { kind: "blank" });
});

test("invalid UTF-8 in a key is flagged; the line still parses with U+FFFD", () => {
  const raw = Buffer.concat([Buffer.from('{"type": "map", "data": {"@ns": {"qemu'), Buffer.from([0xff, 0xc3]), Buffer.from('": 196}}}')]);
  const r = parseBpftraceLine(raw);
  assert.equal(r.kind, "line");
  assert.equal(r.kind === "line" && r.invalidUtf8, true);
  assert.deepEqual(r.kind === "line" && r.line.type === "map" && r.line.maps[0]!.entries, [{ key: "qemu\ufffd\ufffd", value: 196n }]);
});

test("garbage and truncated lines come back invalid, never throw", () => {
  for (const bad of ["garbage {{{", '{"type": "map", "data": {"@t0": {"1,1": 5', "[1,2]", '{"data": 1}', '{"type": "printf", "data": 5}', Buffer.from([0xff, 0xfe, 0x7b])]) {
    const r = parseBpftraceLine(bad);
    assert.equal(r.kind, "invalid", String(bad));
  }
});

test("LineSplitter: lines across chunks, multi-byte chars split across chunks, overlong lines dropped", () => {
  const s = new LineSplitter(16);
  assert.deepEqual(s.push(Buffer.from("ab")), []);
  const euro = Buffer.from("€");
  assert.deepEqual(s.push(Buffer.concat([Buffer.from("c"), euro.subarray(0, 1)])), []);
  assert.deepEqual(s.push(Buffer.concat([euro.subarray(1), Buffer.from("\n\nxyz")])).map(String), ["abc€", ""]);
  assert.deepEqual(s.push(Buffer.from("0123456789abcdefghij\nok\n")).map(String), ["ok"]);
  assert.equal(s.overlongLines, 1);
  assert.deepEqual(s.push(Buffer.from("tail")), []);
  assert.equal(String(s.flush()), "tail");
  assert.equal(s.flush(), null);
});
