import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  COLUMNS,
  DELAYS_S,
  TopModel,
  Term,
  applyKey,
  fitColumns,
  formatBytes,
  initialViewState,
  nextDelay,
  renderScreen,
  screenFrame,
  snapshot,
  sortRows,
  type ScreenInput,
  type TopRow,
} from "../../cli/topView.js";
import type { CageAggregate } from "../../protocol/cageAggregate.js";
import type { ActuatorState } from "../../protocol/actuatorMessages.js";

const MiB = 1048576;

function agg(cage: string, timeMs: number, vm: number, ids: number, windowSeconds = 0.1): CageAggregate {
  return {
    v: 1, cage, timeMs, windowSeconds,
    vm: { cpuPct: vm, pids: [1], startTimes: [100], rssBytes: 10 * MiB },
    ids: { cpuPct: ids, pids: [2, 3], startTimes: [200, 300], rssBytes: 5 * MiB, pageCacheBytes: 7 * MiB },
    totalPct: vm + ids, capPct: 50, idsCapPct: 20, weight: null,
    memory: { baseBytes: null, floorBytes: null },
  };
}

function actState(actuator: string, cage: string, mode: ActuatorState["mode"], values: ActuatorState["values"] = {}): ActuatorState {
  return { v: 1, actuator, cage, timeMs: 0, mode, backend: "test", values };
}

function row(cage: string, over: Partial<TopRow> = {}): TopRow {
  return {
    cage, vmCpuPct: 10, idsCpuPct: 5, totalCpuPct: 15, capPct: 50, idsCapPct: 20,
    vmRssBytes: 100 * MiB, idsRssBytes: 50 * MiB, idsPageCacheBytes: 30 * MiB, vmPids: 1, idsPids: 2,
    balloonTargetBytes: null, balloonActualBytes: null, actuators: {}, ...over,
  };
}

function screen(rows: TopRow[], width: number, over: Partial<ScreenInput> = {}): string[] {
  return renderScreen({ rows, state: initialViewState(), title: "cage top", lostMessages: 0, invalidFrames: 0, width, height: 50, interactive: true, ...over });
}

test("rows are the time-weighted mean of the last second, old windows pruned", () => {
  const m = new TopModel();
  m.add(agg("a", 0, 90, 90)); // older than 1 s at t=1500: pruned
  m.add(agg("a", 1000, 40, 10, 0.1));
  m.add(agg("a", 1100, 20, 30, 0.3));
  m.prune(1500);
  const [r] = m.rows();
  assert.ok(r);
  assert.equal(r.vmCpuPct, (40 * 0.1 + 20 * 0.3) / 0.4);
  assert.equal(r.idsCpuPct, (10 * 0.1 + 30 * 0.3) / 0.4);
  assert.equal(r.idsPids, 2);
  assert.equal(r.idsPageCacheBytes, 7 * MiB);
});

test("actuator states give each cage its modes and the balloon's target and actual; stale states expire", () => {
  const m = new TopModel();
  m.add(agg("web", 1000, 10, 5));
  m.add(agg("db", 1000, 10, 5));
  m.addState(actState("cpu", "web", "active", { vmCpuCapPct: 40 }), 1000);
  m.addState(actState("limiter", "web", "failsafe"), 1000);
  m.addState(actState("balloon", "web", "dry-run", { vmTargetBytes: 512 * MiB, vmActualBytes: 600 * MiB }), 1000);
  m.addState(actState("cpu", "db", "error"), 1000);
  m.prune(1500);
  const [db, web] = m.rows();
  assert.deepEqual(web?.actuators, {
    balloon: { mode: "dry-run", backend: "test" },
    cpu: { mode: "active", backend: "test" },
    limiter: { mode: "failsafe", backend: "test" },
  });
  assert.equal(web?.balloonTargetBytes, 512 * MiB);
  assert.equal(web?.balloonActualBytes, 600 * MiB);
  assert.deepEqual(db?.actuators, { cpu: { mode: "error", backend: "test" } });
  assert.equal(db?.balloonTargetBytes, null);

  m.add(agg("web", 11_500, 10, 5));
  m.addState(actState("limiter", "web", "active"), 11_000);
  m.prune(11_600); // the states received at 1000 are older than 10 s
  assert.deepEqual(m.rows()[0]?.actuators, { limiter: { mode: "active", backend: "test" } });
});

test("formatBytes: binary units in at most five characters", () => {
  assert.equal(formatBytes(0), "0B");
  assert.equal(formatBytes(1023), "1023B");
  assert.equal(formatBytes(9.5 * 1024), "9.5K");
  assert.equal(formatBytes(512 * MiB), "512M");
  assert.equal(formatBytes(1023 * MiB), "1023M");
  assert.equal(formatBytes(1023.8 * MiB), "1.0G");
  assert.equal(formatBytes(1.5 * 1024 * MiB), "1.5G");
  for (const b of [1, 999, 1000 * 1024, 1023.9 * MiB, 50e12]) assert.ok(formatBytes(b).length <= 5, formatBytes(b));
});

test("at 200 and 120 columns every column is shown at full width", () => {
  for (const width of [200, 120]) {
    const placed = fitColumns(width);
    assert.deepEqual(placed.map((p) => p.column.id), COLUMNS.map((c) => c.id));
    assert.deepEqual(placed.map((p) => p.title), COLUMNS.map((c) => c.title));
  }
  const lines = screen([row("web", { actuators: { cpu: { mode: "failsafe", backend: "x" } } })], 120);
  assert.match(lines[1] ?? "", /^CAGE +VM% +IDS% +TOTAL\/CAP +IDSCAP +VM RSS +IDS RSS +IDS PC +BAL TGT\/ACT CPU ACT +LIMITER +BALLOON +PIDS$/);
  assert.match(lines[2] ?? "", /^web +10\.0 +5\.0 +15\.0\/50 +20 +100M +50M +30M +- failsafe +- +- +1\/2$/);
});

test("at 80 columns low-priority columns are narrowed or dropped, page cache, balloon and modes stay, nothing wraps", () => {
  const placed = fitColumns(80);
  const ids = placed.map((p) => p.column.id);
  assert.deepEqual(ids, ["cage", "vm-cpu", "ids-cpu", "total", "ids-pagecache", "balloon-memory", "cpu-mode", "limiter-mode", "balloon-mode"]);
  assert.deepEqual(placed.filter((p) => p.title !== p.column.title).map((p) => p.title), ["TOT/CAP", "CPU", "LIM", "BAL"]);
  const r = row("a-cage-with-a-very-long-name", {
    totalCpuPct: 180, capPct: 150, balloonTargetBytes: 1536 * MiB, balloonActualBytes: 2048 * MiB,
    actuators: { cpu: { mode: "active", backend: "x" }, limiter: { mode: "dry-run", backend: "x" }, balloon: { mode: "error", backend: "x" } },
  });
  const lines = screen([r], 80);
  for (const l of lines) assert.ok(l.length <= 80, `${l.length}: ${l}`);
  assert.match(lines[1] ?? "", /^CAGE +VM% +IDS% +TOT\/CAP +IDS PC +BAL TGT\/ACT CPU +LIM +BAL$/);
  assert.match(lines[2] ?? "", /^a-cage-with-a-ve +10\.0 +5\.0 +180\/150! +30M +1\.5G\/2\.0G on +dry +ERR$/);
});

test("very narrow terminals narrow the cage column, then keep dropping; the status line is cut, not wrapped", () => {
  assert.deepEqual(fitColumns(40).map((p) => `${p.column.id}:${p.width}`), ["cage:16", "vm-cpu:6", "ids-cpu:6", "total:8"]);
  assert.deepEqual(fitColumns(36).map((p) => `${p.column.id}:${p.width}`), ["cage:10", "vm-cpu:6", "ids-cpu:6", "total:8"]);
  const tiny = fitColumns(12);
  assert.deepEqual(tiny.map((p) => p.column.id), ["cage"]);
  for (const l of screen([row("web")], 12)) assert.ok(l.length <= 12, l);
});

test("sorting: by any column, nulls last both ways, ties by cage name", () => {
  const rows = [
    row("c", { idsCpuPct: 5, balloonTargetBytes: null }),
    row("a", { idsCpuPct: 30, balloonTargetBytes: 100 }),
    row("b", { idsCpuPct: 5, balloonTargetBytes: 200 }),
  ];
  const names = (order: Parameters<typeof sortRows>[1]): string[] => sortRows(rows, order).map((r) => r.cage);
  assert.deepEqual(names({ column: "cage", descending: false }), ["a", "b", "c"]);
  assert.deepEqual(names({ column: "ids-cpu", descending: true }), ["a", "b", "c"]);
  assert.deepEqual(names({ column: "ids-cpu", descending: false }), ["b", "c", "a"]);
  assert.deepEqual(names({ column: "balloon-memory", descending: true }), ["b", "a", "c"]);
  assert.deepEqual(names({ column: "balloon-memory", descending: false }), ["a", "b", "c"]);
  const lines = screen(rows, 120, { state: { ...initialViewState("ids-cpu"), delayS: 2 } });
  assert.match(lines[0] ?? "", /sort: IDS% desc {2}delay: 2s.*q: quit/);
  assert.doesNotMatch(screen(rows, 200, { interactive: false })[0] ?? "", /quit/);
  assert.deepEqual(lines.slice(2).map((l) => l.split(" ")[0]), ["a", "b", "c"]);
});

test("keys: < and > move the sort column, r reverses, d cycles the delay, h shows help, q and Ctrl-C quit", () => {
  let s = initialViewState();
  s = applyKey(s, ">").state;
  assert.deepEqual(s.sort, { column: "vm-cpu", descending: true });
  s = applyKey(s, "<").state;
  assert.deepEqual(s.sort, { column: "cage", descending: false });
  s = applyKey(s, "<").state;
  assert.equal(s.sort.column, "pids");
  s = applyKey(s, "r").state;
  assert.equal(s.sort.descending, false);
  assert.equal(applyKey(s, "d").state.delayS, 2);
  assert.equal(nextDelay(5), 0.5);
  assert.equal(nextDelay(3), 5);
  s = applyKey(s, "h").state;
  assert.ok(s.help);
  assert.match(screen([row("web")], 100, { state: s }).join("\n"), /cage top keys/);
  const closed = applyKey(s, ">").state;
  assert.equal(closed.help, false);
  assert.equal(closed.sort.column, "pids", "the key that closes the help does nothing else");
  assert.equal(applyKey(s, "q").quit, true);
  assert.equal(applyKey(initialViewState(), "\x03").quit, true);
  assert.equal(applyKey(initialViewState(), "x").quit, false);
});

test("the screen waits politely with no data and never has more lines than the terminal", () => {
  assert.match(screen([], 80).join("\n"), /waiting for aggregates/);
  const many = Array.from({ length: 30 }, (_, i) => row(`cage${String(i).padStart(2, "0")}`));
  assert.equal(screen(many, 80, { height: 10 }).length, 10);
});

test("screenFrame redraws in place: home, erase each line's rest, erase below, no full clear", () => {
  const frame = screenFrame(["ab", "abcd"], 4);
  assert.equal(frame, `${Term.home}ab${Term.eraseLineEnd}\r\nabcd${Term.eraseScreenEnd}`);
  assert.ok(!frame.includes("\x1b[2J"));
});

test("the JSON snapshot carries the rows in the view's sort order", () => {
  const s = snapshot([row("a", { totalCpuPct: 1 }), row("b", { totalCpuPct: 9 })], initialViewState("total"), "ipc:///x", 123, 4, 5);
  assert.deepEqual(
    { ...s, cages: s.cages.map((c) => c.cage) },
    { v: 1, timeMs: 123, endpoint: "ipc:///x", lostMessages: 4, invalidFrames: 5, cages: ["b", "a"] },
  );
});

test("docs/top.md lists every column with its id, titles and priority, and every JSON field", () => {
  const doc = readFileSync(fileURLToPath(new URL("../../../docs/top.md", import.meta.url)), "utf8");
  const documented = [...doc.matchAll(/^\| `([a-z-]+)` \| `([^`]+)`(?: \[`([^`]+)`\])? \| .* \| (\d+) \|$/gm)].map((m) => ({
    id: m[1], title: m[2], narrow: m[3], priority: Number(m[4]),
  }));
  assert.deepEqual(documented, COLUMNS.map((c) => ({ id: c.id, title: c.title, narrow: c.narrow && c.narrow.title !== c.title ? c.narrow.title : undefined, priority: c.priority })));
  const s = snapshot([row("a")], initialViewState(), "ipc:///x", 1, 0, 0);
  for (const key of Object.keys(s)) assert.ok(doc.includes(`| \`${key}\``), `docs/top.md: JSON field ${key}`);
  for (const key of Object.keys(s.cages[0] as TopRow)) assert.ok(doc.includes(`\`cages[].${key}\``), `docs/top.md: JSON field cages[].${key}`);
  assert.ok(doc.includes(`${DELAYS_S.join(", ")} s`), "docs/top.md: the delays d cycles through");
});
