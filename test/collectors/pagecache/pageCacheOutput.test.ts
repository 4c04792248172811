import { test } from "node:test";
import assert from "node:assert/strict";
import { PageCacheOutputParser } from "../../../collectors/pagecache/pageCacheOutput.js";

// Lines as bpftrace 0.17 printed them for bpf/pageCache.bt on this machine.
const REAL = [
  '{"type": "attached_probes", "data": {"probes": 5}}',
  '{"type": "printf", "data": "pc_start 449454721052\\n"}',
  '{"type": "map", "data": {"@untrackedInserts": 0}}',
  '{"type": "map", "data": {"@staleOwners": 0}}',
  '{"type": "printf", "data": "pc_tick 450455951296\\n"}',
  '{"type": "map", "data": {"@inserted": {"13822": 67108864}}}',
  '{"type": "map", "data": {"@resident": {"13822": 67108864}}}',
  '{"type": "map", "data": {"@untrackedInserts": 0}}',
  '{"type": "map", "data": {"@staleOwners": 0}}',
  '{"type": "map", "data": {"@ownedFolios": 385}}',
  '{"type": "printf", "data": "pc_tick 453455954142\\n"}',
  '{"type": "map", "data": {"@inserted": {"13822": 67108864, "13900": 8192}}}',
  '{"type": "map", "data": {"@resident": {"13822": 0, "13900": 8192}}}',
  '{"type": "map", "data": {"@untrackedInserts": 3}}',
  '{"type": "map", "data": {"@untrackedBytes": 12288}}',
  '{"type": "map", "data": {"@staleOwners": 1}}',
  '{"type": "map", "data": {"@ownedFolios": 2}}',
  '{"type": "printf", "data": "pc_tick 454455980081\\n"}',
  '{"type": "printf", "data": "pc_end 459104496518\\n"}',
  "",
  "",
  '{"type": "map", "data": {"@staleOwners": 0}}',
  '{"type": "map", "data": {"@untrackedInserts": 0}}',
];

function feedAll(parser: PageCacheOutputParser, lines: string[]) {
  return lines.map((l) => parser.feed(l)).filter((b) => b !== null);
}

void test("one batch per heartbeat, from real bpftrace lines", () => {
  const p = new PageCacheOutputParser();
  const batches = feedAll(p, REAL);
  assert.equal(batches.length, 3);
  assert.equal(p.startedAtNs, 449454721052n);
  assert.deepEqual(batches[0], { sampledAtNs: 450455951296n, untrackedInserts: 0, processes: [] });
  assert.deepEqual(batches[1], {
    sampledAtNs: 453455954142n,
    untrackedInserts: 0,
    processes: [{ pid: 13822, insertedBytes: 67108864, residentBytes: 67108864 }],
  });
  assert.deepEqual(batches[2]!.processes, [
    { pid: 13822, insertedBytes: 67108864, residentBytes: 0 },
    { pid: 13900, insertedBytes: 8192, residentBytes: 8192 },
  ]);
  assert.equal(batches[2]!.untrackedInserts, 3);
  assert.deepEqual(p.kernel, { untrackedInserts: 3, untrackedBytes: 12288, staleOwners: 1, ownedFolios: 2 });
  assert.equal(p.ended, true);
  assert.equal(p.counters.invalidLines, 0);
  assert.equal(p.counters.batches, 3);
});

void test("the exit dump after pc_end does not overwrite live figures", () => {
  const p = new PageCacheOutputParser();
  feedAll(p, REAL);
  assert.equal(p.kernel.untrackedInserts, 3);
  assert.equal(p.feed('{"type": "printf", "data": "pc_tick 999\\n"}'), null);
});

void test("a map missing from a tick (lost print) carries over its cumulative value", () => {
  const p = new PageCacheOutputParser();
  feedAll(p, REAL.slice(0, 11));
  p.feed('{"type": "lost_events", "data": {"events": 2}}');
  // @inserted and @resident prints were lost this interval.
  const b = p.feed('{"type": "printf", "data": "pc_tick 460000000000\\n"}');
  assert.deepEqual(b?.processes, [{ pid: 13822, insertedBytes: 67108864, residentBytes: 67108864 }]);
  assert.equal(p.counters.lostEvents, 2);
});

void test("a pid only in @resident or only in @inserted still appears", () => {
  const p = new PageCacheOutputParser();
  p.feed('{"type": "map", "data": {"@inserted": {"5": 4096}}}');
  p.feed('{"type": "map", "data": {"@resident": {"7": -4096}}}');
  const b = p.feed('{"type": "printf", "data": "pc_tick 1\\n"}');
  assert.deepEqual(b?.processes, [
    { pid: 5, insertedBytes: 4096, residentBytes: 0 },
    { pid: 7, insertedBytes: 0, residentBytes: -4096 },
  ]);
});

void test("bad lines are counted and skipped, never thrown", () => {
  const p = new PageCacheOutputParser();
  const bad = [
    "not json",
    '{"type": "map", "data": {"@inserted": {"abc": 1}}}',
    '{"type": "map", "data": {"@inserted": {"1": "x"}}}',
    '{"type": "map", "data": {"@untrackedInserts": {"1": 2}}}',
    '{"type": "printf", "data": "something else\\n"}',
    '{"type": "wat"}',
    "[1,2]",
    '{"type": "map", "data": {"@a": 1, "@b": 2}}',
  ];
  for (const l of bad) assert.equal(p.feed(l), null);
  assert.equal(p.counters.invalidLines, bad.length);
  p.feed('{"type": "helper_error", "helper": "map_update_elem", "retcode": -7, "line": 1, "col": 27}');
  assert.equal(p.counters.helperErrors, 1);
  // Unknown maps are someone else's business, not an error.
  p.feed('{"type": "map", "data": {"@other": {"1": 2}}}');
  assert.equal(p.counters.invalidLines, bad.length);
  assert.ok(p.feed('{"type": "printf", "data": "pc_tick 2\\n"}'));
});
