import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { cr3Frame, helperSnapshotFromLs, IDS_HELPER_DIR, MAX_HELPER_ENTRIES_PER_DOMAIN, parseHelperEntry } from "../../../host/xen/idsHelperEntries.js";

// The shape `xenstore-ls -f /local/domain` prints in dom0 (full paths, values in double quotes).
const LS = [
  '/local/domain/0 = ""',
  '/local/domain/0/name = "Domain-0"',
  '/local/domain/0/domid = "0"',
  '/local/domain/3 = ""',
  '/local/domain/3/name = "ids-vm"',
  '/local/domain/3/data = ""',
  '/local/domain/3/data/offloadcage = ""',
  `/local/domain/3/${IDS_HELPER_DIR} = ""`,
  `/local/domain/3/${IDS_HELPER_DIR}/412 = "0x4c7c000 1234"`,
  `/local/domain/3/${IDS_HELPER_DIR}/77 = "0x1b2e000 98"`,
  '/local/domain/4/name = "web"',
  `/local/domain/4/${IDS_HELPER_DIR}/1 = "0x2000 5"`,
  '/local/domain/4/device/vbd/51712/state = "4"',
  "",
].join("\n");

void test("xenstore-ls -f output: the helper's nodes grouped by the domain whose path holds them, with its name", () => {
  assert.deepEqual(helperSnapshotFromLs(LS), {
    domains: [
      { domain: 3, name: "ids-vm", entries: [{ key: "412", value: "0x4c7c000 1234" }, { key: "77", value: "0x1b2e000 98" }], overflow: 0 },
      { domain: 4, name: "web", entries: [{ key: "1", value: "0x2000 5" }], overflow: 0 },
    ],
  });
  assert.deepEqual(helperSnapshotFromLs(""), { domains: [] });
  assert.deepEqual(helperSnapshotFromLs(`/local/domain/9/${IDS_HELPER_DIR}/5 = "0x3000 1"`).domains[0]?.name, null);
});

void test("entries beyond the per-domain bound are dropped and counted", () => {
  const lines = Array.from({ length: MAX_HELPER_ENTRIES_PER_DOMAIN + 3 }, (_, i) => `/local/domain/2/${IDS_HELPER_DIR}/${i + 1} = "0x${(i + 1).toString(16)}000 1"`);
  const [d] = helperSnapshotFromLs(lines.join("\n")).domains;
  assert.equal(d?.entries.length, MAX_HELPER_ENTRIES_PER_DOMAIN);
  assert.equal(d?.overflow, 3);
});

void test("a well-formed entry is PID → CR3 and start time; anything else says why not", () => {
  assert.deepEqual(parseHelperEntry({ key: "412", value: "0x4c7c000 1234" }), { pid: 412, startTime: 1234, cr3: "0x4c7c000", frame: "0x4c7c000" });
  // PCID bits (low 12) and the no-flush bit (63) are not part of the address space's identity.
  assert.deepEqual(parseHelperEntry({ key: "9", value: "0x8000000004c7c005 7" }), { pid: 9, startTime: 7, cr3: "0x8000000004c7c005", frame: "0x4c7c000" });
  const bad: [string, string, RegExp][] = [
    ["aide", "0x4c7c000 1", /node name "aide" is not a PID/],
    ["0", "0x4c7c000 1", /not a PID/],
    ["4194305", "0x4c7c000 1", /not a PID/],
    ["12/x", "0x4c7c000 1", /not a PID/],
    ["12", "0x4C7C000 1", /is not "CR3 STARTTIME"/],
    ["12", "4c7c000 1", /is not "CR3 STARTTIME"/],
    ["12", "0x4c7c000", /is not "CR3 STARTTIME"/],
    ["12", "0x4c7c000 1 extra", /is not "CR3 STARTTIME"/],
    ["12", "0x4c7c000 -1", /is not "CR3 STARTTIME"/],
    ["12", "0x4c7c000\\0121", /is not "CR3 STARTTIME"/],
    ["12", "0x00000000000000fff 1", /is not "CR3 STARTTIME"/],
    ["12", "0xfff 1", /has no page-table address/],
    ["12", "0x4c7c000 99999999999999999999", /too large/],
  ];
  for (const [key, value, why] of bad) {
    const got = parseHelperEntry({ key, value });
    assert.equal(typeof got, "string", `${key} = ${value}`);
    assert.match(got as string, why);
  }
});

void test("cr3Frame keeps bits 12–51", () => {
  assert.equal(cr3Frame("0x4c7c000"), "0x4c7c000");
  assert.equal(cr3Frame("0x4c7cfff"), "0x4c7c000");
  assert.equal(cr3Frame("0xfff0001234567001"), "0x1234567000");
});

void test("real xenstore-ls output from the Xen lab's cr3-ids phase: the helper's report and the planted ones", () => {
  const text = readFileSync(new URL("../../../../test/fixtures/xen/xenstore-ls-cr3-ids.txt", import.meta.url), "utf8");
  const snapshot = helperSnapshotFromLs(text);
  assert.deepEqual(snapshot.domains.map((d) => [d.domain, d.name, d.entries.map((e) => e.key)]), [
    [0, "Domain-0", ["4242"]],
    [1, "idsvm", ["99", "not-a-pid", "4194303"]],
  ]);
  const [, idsvm] = snapshot.domains;
  assert.deepEqual(idsvm?.entries.map((e) => parseHelperEntry(e)), [
    { pid: 99, startTime: 2685, cr3: "0x6d96000", frame: "0x6d96000" },
    'node name "not-a-pid" is not a PID',
    { pid: 4194303, startTime: 3, cr3: "0x7ffff000", frame: "0x7ffff000" },
  ]);
});
