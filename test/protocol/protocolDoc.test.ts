/** docs/protocol.md must agree with protocol/*.ts: these checks catch the drift that is easy to miss. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { encodeCpuBatch, encodeMemoryBatch, encodePageCacheBatch } from "../../protocol/rawBatches.js";
import { encodeHeader, Encoding, HEADER_BYTES, PROTOCOL_VERSION, Topic } from "../../protocol/wireFormat.js";
import { defaultEndpoints } from "../../protocol/endpoints.js";

const doc = readFileSync(fileURLToPath(new URL("../../../docs/protocol.md", import.meta.url)), "utf8");

void test("every topic is in the topic table", () => {
  for (const topic of Object.values(Topic)) assert.match(doc, new RegExp(`^\\| \`${topic.replace(".", "\\.")}\` \\|`, "m"), topic);
});

void test("every encoding id is named in the header's encoding row", () => {
  const row = doc.split("\n").find((l) => l.startsWith("| 3 | 1 | u8 | encoding |"));
  assert.ok(row, "header row for byte 3");
  for (const id of Object.values(Encoding)) assert.match(row, new RegExp(`\`${id}\``), `encoding ${id}`);
  assert.equal(Object.values(Encoding).length, 4, "a new encoding needs its payload table in docs/protocol.md");
});

void test("the header example, size and version match the code", () => {
  const hex = encodeHeader({ version: 1, encoding: Encoding.json, publisherId: 0x04030201, sequence: 0x0807060504030201n, sentAtUs: 0x1817161514131211n }).toString("hex");
  assert.ok(doc.includes("`4f43 01 03 01020304 0102030405060708 1112131415161718`"));
  assert.equal(hex, "4f430103010203040102030405060708" + "1112131415161718");
  assert.ok(doc.includes(`header, ${HEADER_BYTES} bytes`));
  assert.ok(doc.includes(`protocol version, currently **${PROTOCOL_VERSION}**`));
});

void test("the payload length formulas match the encoders", () => {
  assert.ok(doc.includes("`24 + 12 × processCount + 16 × threadCount`"));
  assert.equal(encodeCpuBatch({ windowStartNs: 0n, windowEndNs: 0n, processes: [{ pid: 1, cpuNs: 1 }], threads: [{ pid: 1, tid: 1, cpuNs: 1 }] }).length, 24 + 12 + 16);
  assert.ok(doc.includes("`12 + 44 × processCount`"));
  assert.equal(encodeMemoryBatch({ sampledAtNs: 0n, processes: [{ pid: 1, vmRssBytes: 0, rssAnonBytes: 0, rssFileBytes: 0, rssShmemBytes: 0, vmHwmBytes: 0 }] }).length, 12 + 44);
  assert.ok(doc.includes("`20 + 20 × processCount`"));
  assert.equal(encodePageCacheBatch({ sampledAtNs: 0n, untrackedInserts: 0, processes: [{ pid: 1, insertedBytes: 0, residentBytes: 0 }] }).length, 20 + 20);
});

void test("the default endpoints table matches defaultEndpoints()", () => {
  const ep = defaultEndpoints("DIR");
  for (const endpoint of [...Object.values(ep.collectors), ep.aggregates, ...Object.values(ep.actuators ?? {})]) assert.ok(doc.includes(`| \`${endpoint}\` |`), endpoint);
});

void test("every field of a decoded aggregate has a row in the aggregate table", async () => {
  const { decodeCageAggregate, encodeJson } = await import("../../protocol/cageAggregate.js");
  const example = /### Cage aggregate[\s\S]*?```json\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(example !== undefined, "the aggregate example");
  // The example itself must decode: it shows the shape a receiver accepts.
  const decoded = decodeCageAggregate(encodeJson(JSON.parse(example))) as unknown as Record<string, unknown>;
  const paths: string[] = [];
  for (const [key, value] of Object.entries(decoded)) {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) for (const inner of Object.keys(value)) paths.push(`${key}.${inner}`);
    else paths.push(key);
  }
  for (const path of paths) assert.match(doc, new RegExp(`^\\| \`${path.replace(".", "\\.")}\` \\|`, "m"), path);
  assert.ok(paths.includes("ids.startTimes") && paths.includes("vm.startTimes"));
});

void test("the agg.memory example decodes whole, and every field the decoder reads is in its table", async () => {
  const { decodeCageIdsMemoryUpdate, encodeJson } = await import("../../protocol/cageAggregate.js");
  const section = /### IDS memory between windows \(encoding 3, topic `([a-z.]+)`\)([\s\S]*?)\n### /.exec(doc);
  assert.ok(section !== null, "the agg.memory section");
  assert.equal(section[1], Topic.cageIdsMemory);
  assert.match(doc, new RegExp(`^\\| \`${Topic.cageIdsMemory.replace(".", "\\.")}\` \\|`, "m"), "the topic table names it");
  const example = /```json\n([\s\S]*?)```/.exec(section[2]!)?.[1];
  assert.ok(example !== undefined, "the agg.memory example");
  const decoded = decodeCageIdsMemoryUpdate(encodeJson(JSON.parse(example)));
  assert.deepEqual(decoded.rejected, []);
  assert.deepEqual(decoded.cages, [{ cage: "web", ids: { rssBytes: 130023424, pageCacheBytes: 4096 } }]);
  for (const field of ["v", "timeMs", "cages", "cages[].cage", "cages[].ids.rssBytes", "cages[].ids.pageCacheBytes"]) {
    assert.ok(section[2]!.includes(`| \`${field}\` |`), field);
  }
});

void test("the agg.window example decodes whole, one aggregate per cage, and names the topic the code publishes", async () => {
  const { decodeCageAggregates, encodeJson } = await import("../../protocol/cageAggregate.js");
  const section = /### Cage aggregates of a window \(encoding 3, topic `([a-z.]+)`\)([\s\S]*?)\n### /.exec(doc);
  assert.ok(section !== null, "the agg.window section");
  assert.equal(section[1], Topic.cageAggregates);
  const example = /```json\n([\s\S]*?)```/.exec(section[2]!)?.[1];
  assert.ok(example !== undefined, "the agg.window example");
  const decoded = decodeCageAggregates(encodeJson(JSON.parse(example)));
  assert.deepEqual(decoded.rejected, []);
  assert.deepEqual(decoded.aggregates.map((a) => a.cage), ["web", "db"]);
  assert.match(section[2]!, /^\| `aggregates` \| object\[\] \|/m);
  assert.ok(doc.includes(`subscribe to \`${Topic.cageAggregates}\``), "external actuators are told the batch topic");
});

void test("the agg.members example decodes, names the topic the code publishes, and every field has a row", async () => {
  const { decodeCageMembers } = await import("../../protocol/cageMembers.js");
  const section = /### Cage members \(encoding 3, topic `([a-z.]+)`\)([\s\S]*?)\n### /.exec(doc);
  assert.ok(section !== null, "the agg.members section");
  assert.equal(section[1], Topic.cageMembers);
  const example = /```json\n([\s\S]*?)```/.exec(section[2]!)?.[1];
  assert.ok(example !== undefined, "the agg.members example");
  const decoded = decodeCageMembers(Buffer.from(example, "utf8"));
  assert.deepEqual(decoded.cages.map((c) => c.cage), ["web", "db"]);
  for (const key of Object.keys(decoded)) assert.match(section[2]!, new RegExp(`^\\| \`${key}\` \\|`, "m"), key);
  for (const key of Object.keys(decoded.cages[0]!)) assert.match(section[2]!, new RegExp(`\`cages\\[\\]\\.${key}`), `cages[].${key}`);
  for (const key of Object.keys(decoded.cages[0]!.vm)) {
    for (const role of ["vm", "ids"]) assert.ok(section[2]!.includes(`\`cages[].${role}.${key}\``), `cages[].${role}.${key}`);
  }
});
