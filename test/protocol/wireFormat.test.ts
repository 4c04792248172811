import { test } from "node:test";
import assert from "node:assert/strict";
import { protocolError } from "./protocolAssertions.js";
import {
  decodeHeader,
  encodeHeader,
  Encoding,
  HEADER_BYTES,
  PROTOCOL_VERSION,
  ProtocolError,
  Topic,
  type FrameHeader,
} from "../../protocol/wireFormat.js";
import { parseFrames } from "../../protocol/messageBus.js";

const header: FrameHeader = {
  version: PROTOCOL_VERSION,
  encoding: Encoding.cpuBatch,
  publisherId: 0xdead_beef,
  sequence: 2n ** 63n + 5n,
  sentAtUs: 1_700_000_000_123_456n,
};


void test("a header round-trips, every field at full width", () => {
  const b = encodeHeader(header);
  assert.equal(b.length, HEADER_BYTES);
  assert.deepEqual(decodeHeader(b), header);
});

void test("the header layout matches docs/protocol.md byte for byte", () => {
  const b = encodeHeader({ version: 1, encoding: Encoding.json, publisherId: 0x04030201, sequence: 0x0807060504030201n, sentAtUs: 0x1817161514131211n });
  assert.equal(
    b.toString("hex"),
    "4f43" + "01" + "03" + "01020304" + "0102030405060708" + "1112131415161718",
  );
});

void test("a short or long header names frame 1 and its length", () => {
  const e = protocolError(() => decodeHeader(encodeHeader(header).subarray(0, 23)));
  assert.equal(e.where, "frame 1 (header)");
  assert.match(e.reason, /must be 24 bytes, got 23/);
  assert.match(protocolError(() => decodeHeader(Buffer.alloc(25))).reason, /got 25/);
  assert.match(protocolError(() => decodeHeader(Buffer.alloc(0))).reason, /got 0/);
});

void test("bad magic names byte 0", () => {
  const b = encodeHeader(header);
  b[1] = 0x44;
  const e = protocolError(() => decodeHeader(b));
  assert.equal(e.where, "frame 1 (header) byte 0");
  assert.match(e.reason, /bad magic 0x4f44/);
});

void test("an unsupported version names byte 2", () => {
  const b = encodeHeader(header);
  b[2] = 2;
  const e = protocolError(() => decodeHeader(b));
  assert.equal(e.where, "frame 1 (header) byte 2");
  assert.match(e.reason, /unsupported version 2/);
  b[2] = 0;
  assert.equal(protocolError(() => decodeHeader(b)).where, "frame 1 (header) byte 2");
});

void test("an unknown encoding names byte 3", () => {
  const firstUnknown = Math.max(...Object.values(Encoding)) + 1;
  for (const enc of [0, firstUnknown, 255]) {
    const b = encodeHeader(header);
    b[3] = enc;
    const e = protocolError(() => decodeHeader(b));
    assert.equal(e.where, "frame 1 (header) byte 3");
    assert.match(e.reason, new RegExp(`unknown encoding ${enc}`));
  }
});

void test("ProtocolError's message is where: reason", () => {
  const e = new ProtocolError("frame 2 (cpu batch) byte 16", "too short");
  assert.equal(e.message, "frame 2 (cpu batch) byte 16: too short");
  assert.equal(e.name, "ProtocolError");
});

void test("a message must have exactly three frames", () => {
  for (const n of [0, 1, 2, 4]) {
    const frames = Array.from({ length: n }, () => Buffer.from("x"));
    const e = protocolError(() => parseFrames(frames));
    assert.equal(e.where, "message");
    assert.match(e.reason, new RegExp(`expected 3 frames .*got ${n}`));
  }
});

void test("a bad topic names frame 0", () => {
  for (const topic of ["", "Raw.cpu", "1abc", "raw cpu", "x".repeat(65), "\u00e9t\u00e9"]) {
    const e = protocolError(() => parseFrames([Buffer.from(topic), encodeHeader(header), Buffer.alloc(0)]));
    assert.equal(e.where, "frame 0 (topic)", topic);
  }
});

void test("parseFrames accepts a well-formed message and hands back the payload untouched", () => {
  const payload = Buffer.from([1, 2, 3]);
  const msg = parseFrames([Buffer.from("raw.cpu"), encodeHeader(header), payload]);
  assert.equal(msg.topic, "raw.cpu");
  assert.deepEqual(msg.header, header);
  assert.equal(msg.payload, payload);
  assert.equal(msg.lostBefore, 0);
});

void test("a bad header inside a message surfaces from parseFrames with the header's where", () => {
  const e = protocolError(() => parseFrames([Buffer.from("raw.cpu"), Buffer.from("garbage"), Buffer.alloc(0)]));
  assert.equal(e.where, "frame 1 (header)");
});

test("no topic is a prefix of another, so a subscription to one never receives another", () => {
  const topics = Object.values(Topic);
  for (const a of topics) for (const b of topics) if (a !== b) assert.ok(!b.startsWith(a), `${a} is a prefix of ${b}`);
});
