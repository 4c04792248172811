import { test } from "node:test";
import assert from "node:assert/strict";
import { TopModel, renderTop } from "../../cli/topView.js";
import type { CageAggregate } from "../../protocol/cageAggregate.js";

function agg(cage: string, timeMs: number, vm: number, ids: number, windowSeconds = 0.1): CageAggregate {
  return {
    v: 1, cage, timeMs, windowSeconds,
    vm: { cpuPct: vm, pids: [1], rssBytes: 10 * 1048576 },
    ids: { cpuPct: ids, pids: [2, 3], rssBytes: 5 * 1048576, pageCacheBytes: 7 * 1048576 },
    totalPct: vm + ids, capPct: 50, idsCapPct: 20, weight: null,
    memory: { baseBytes: null, floorBytes: null },
  };
}

test("rows are the time-weighted mean of the last second, old windows pruned", () => {
  const m = new TopModel();
  m.add(agg("a", 0, 90, 90)); // older than 1 s at t=1500: pruned
  m.add(agg("a", 1000, 40, 10, 0.1));
  m.add(agg("a", 1100, 20, 30, 0.3));
  m.prune(1500);
  const [row] = m.rows();
  assert.ok(row);
  assert.equal(row.vmPct, (40 * 0.1 + 20 * 0.3) / 0.4);
  assert.equal(row.idsPct, (10 * 0.1 + 30 * 0.3) / 0.4);
  assert.equal(row.idsPids, 2);
});

test("render flags a cage over its cap and waits politely with no data", () => {
  const m = new TopModel();
  m.add(agg("web", 1000, 45, 20));
  const text = renderTop(m.rows(), "hdr");
  assert.match(text, /^hdr\n/);
  assert.match(text, /web .*45\.0 .*20\.0 .*65\.0 .*50 .*OVER CAP/);
  assert.match(renderTop([], "hdr"), /waiting for aggregates/);
});
