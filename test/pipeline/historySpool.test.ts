/**
 * The history spool on a real file system (a temporary directory): replay after close and after
 * SIGKILL of a real writer process, torn and corrupt records, deletion of written segments,
 * the bounds, and the lock.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseProcStat } from "../../host/proc/processTable.js";
import { HistorySpool, RECORD_HEADER_BYTES } from "../../pipeline/historySpool.js";
import type { HistoryPoint } from "../../pipeline/influxPoints.js";
import { capturingLogger } from "./pipelineHarness.js";

const root = mkdtempSync(join(tmpdir(), "oc-spool-"));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => join(root, `s${++n}`);

function point(i: number): HistoryPoint {
  return { measurement: "cage", tags: { cage: "c" }, fields: { total_pct: i }, timestamp: String(1_700_000_000_000_000 + i) };
}

function spool(dir: string, over: { points?: number; bytes?: number; fsyncMs?: number } = {}): HistorySpool {
  const { logger } = capturingLogger();
  return new HistorySpool({ dir, bounds: { points: over.points ?? 1_000_000, bytes: over.bytes ?? 64 << 20 }, fsyncMs: over.fsyncMs ?? 50, log: logger });
}

/** Takes and acknowledges every batch; returns the points' values in order. */
function drain(s: HistorySpool, maxPoints = 100): number[] {
  const out: number[] = [];
  for (let b = s.takeBatch(maxPoints); b !== null; b = s.takeBatch(maxPoints)) {
    out.push(...b.points.map((p) => p.fields.total_pct as number));
    s.succeeded();
  }
  return out;
}

function segments(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith(".spool")).sort();
}

void test("what a closed spool held is replayed in order by the next open, once", () => {
  const dir = freshDir();
  const a = spool(dir);
  a.open();
  a.append("raw", [point(1), point(2)]);
  a.append("longterm", [point(3)]);
  a.append("raw", [point(4)]);
  assert.deepEqual(a.takeBatch(10)?.points.map((p) => p.fields.total_pct), [1, 2]);
  a.succeeded();
  a.close();
  const b = spool(dir);
  b.open();
  assert.equal(b.counters.replayedPoints, 2, "the written record is not replayed");
  assert.equal(b.size, 2);
  const first = b.takeBatch(10);
  assert.equal(first?.policy, "longterm", "one policy per batch");
  assert.deepEqual(first?.points, [point(3)]);
  b.succeeded();
  b.append("raw", [point(5)]);
  assert.deepEqual(drain(b), [4, 5], "replayed records go before new ones");
  assert.equal(b.counters.written, 3);
  b.close();
  const c = spool(dir);
  c.open();
  assert.equal(c.size, 0);
  assert.equal(c.counters.replayedPoints, 0);
  c.close();
});

void test("a torn last record is detected, counted and skipped; a corrupt one skips the rest of its segment", () => {
  const dir = freshDir();
  const a = spool(dir);
  a.open();
  for (let i = 1; i <= 3; i++) a.append("raw", [point(i)]);
  a.close();
  const [seg] = segments(dir);
  const path = join(dir, seg!);
  truncateSync(path, statSync(path).size - 5); // the third record's write cut short
  const b = spool(dir);
  b.open();
  assert.equal(b.counters.tornRecords, 1);
  assert.deepEqual(drain(b), [1, 2]);
  for (let i = 10; i <= 12; i++) b.append("raw", [point(i)]);
  b.close();
  // Flip one payload byte of record 11: its checksum fails, 11 and 12 are skipped.
  const newest = join(dir, segments(dir).at(-1)!);
  const bytes = readFileSync(newest);
  const recordBytes = bytes.length / 3;
  const at = recordBytes + RECORD_HEADER_BYTES + 3;
  bytes.writeUInt8(bytes.readUInt8(at) ^ 0x20, at);
  writeFileSync(newest, bytes);
  const c = spool(dir);
  c.open();
  assert.equal(c.counters.tornRecords, 1);
  assert.deepEqual(drain(c), [10]);
  c.close();
});

void test("segments roll at a sixteenth of the byte bound and are deleted once every record in them was written", () => {
  const dir = freshDir();
  const s = spool(dir, { bytes: 1 << 20 }); // 64 KiB segments
  s.open();
  const big = Array.from({ length: 50 }, (_, i) => point(i));
  for (let i = 0; i < 100; i++) s.append("raw", big); // ~4.5 KB a record, ~450 KB in all
  const rolled = segments(dir).length;
  assert.ok(rolled >= 6, `expected several segments, got ${rolled}`);
  assert.ok(s.diskBytes > 400_000);
  // Write half: the fully written segments go.
  for (let i = 0; i < 50; i++) {
    assert.equal(s.takeBatch(50)?.points.length, 50);
    s.succeeded();
  }
  assert.ok(segments(dir).length <= rolled / 2 + 2, `${segments(dir).length} of ${rolled} segments left after half was written`);
  s.close();
  const t = spool(dir, { bytes: 1 << 20 });
  t.open();
  assert.equal(t.counters.replayedPoints, 50 * 50, "exactly the unwritten half comes back");
  assert.equal(drain(t, 1000).length, 50 * 50);
  assert.deepEqual(segments(dir).length, 1, "only the active segment is left");
  t.close();
});

void test("beyond the bounds the oldest records are dropped and counted, at a later open too", () => {
  const dir = freshDir();
  const s = spool(dir, { points: 100, bytes: 1 << 20 });
  s.open();
  let dropped = 0;
  for (let i = 0; i < 300; i++) dropped += s.append("raw", [point(i)]);
  assert.equal(dropped, 200);
  assert.equal(s.counters.droppedFull, 200);
  assert.equal(s.size, 100);
  s.close();
  // A smaller bound at the next start drops the oldest of the replay, counted the same way.
  const t = spool(dir, { points: 40, bytes: 1 << 20 });
  t.open();
  assert.equal(t.counters.replayedPoints, 100);
  assert.equal(t.counters.droppedFull, 60);
  assert.deepEqual(drain(t), Array.from({ length: 40 }, (_, i) => 260 + i));
  t.close();
});

void test("a failed write keeps the batch at the front; a rejected one is dropped", () => {
  const dir = freshDir();
  const s = spool(dir);
  s.open();
  s.append("raw", [point(1)]);
  s.append("raw", [point(2)]);
  s.takeBatch(1);
  s.failed();
  assert.deepEqual(s.takeBatch(1)?.points, [point(1)]);
  assert.equal(s.rejected(), 1);
  assert.deepEqual(drain(s), [2]);
  assert.deepEqual({ ...s.counters }, { written: 1, droppedFull: 0, droppedRejected: 1, failedWrites: 1, droppedSpoolError: 0, tornRecords: 0, replayedPoints: 0 });
  s.close();
});

void test("one spool per directory: a second opener in this process or a live process is refused, a dead one's lock is taken", () => {
  const dir = freshDir();
  const a = spool(dir);
  a.open();
  assert.throws(() => spool(dir).open(), { message: `history spool ${dir}: already open in this process` });
  a.close();
  // PID 1 is alive: its lock holds.
  const init = parseProcStat(readFileSync("/proc/1/stat", "utf8"));
  writeFileSync(join(dir, "lock"), `1@${init.startTime}\n`);
  assert.throws(() => spool(dir).open(), { message: `history spool ${dir}: in use by process 1@${init.startTime} (one pipeline per agent.stateDir)` });
  // The same PID with another start time is a reused PID: the lock is stale.
  writeFileSync(join(dir, "lock"), `1@${init.startTime + 1}\n`);
  const b = spool(dir);
  b.open();
  b.close();
  assert.equal(existsSync(join(dir, "lock")), false, "close releases the lock");
});

void test("an unusable directory fails open() with the path; bad options are refused at construction", () => {
  const file = join(freshDir());
  mkdirSync(root, { recursive: true });
  writeFileSync(file, "not a directory");
  assert.throws(() => spool(join(file, "spool")).open(), /ENOTDIR/);
  const { logger } = capturingLogger();
  assert.throws(() => new HistorySpool({ dir: freshDir(), bounds: { points: 10, bytes: 1 << 20 }, fsyncMs: 0, log: logger }), { message: "history spool: fsyncMs must be >= 1, got 0" });
});

void test("SIGKILL of a writer process loses no record that append() returned from", async () => {
  const dir = freshDir();
  const spoolModule = fileURLToPath(new URL("../../pipeline/historySpool.js", import.meta.url));
  // The child appends as fast as it can and reports each record after append() returned.
  const script = `
    import { HistorySpool } from ${JSON.stringify(spoolModule)};
    import { pino } from "pino";
    const s = new HistorySpool({ dir: ${JSON.stringify(dir)}, bounds: { points: 10000000, bytes: 1 << 30 }, fsyncMs: 1000, log: pino({ level: "silent" }) });
    s.open();
    for (let i = 0; ; i++) {
      s.append("raw", [{ measurement: "cage", tags: { cage: "c" }, fields: { total_pct: i }, timestamp: String(1700000000000000 + i) }]);
      if (i % 50 === 0) process.stdout.write(i + "\\n");
    }`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"], cwd: fileURLToPath(new URL("../../../", import.meta.url)) });
  let reported = -1;
  let text = "";
  child.stdout.on("data", (b: Buffer) => {
    text += b.toString();
    const lines = text.split("\n");
    text = lines.pop() ?? "";
    for (const l of lines) if (l !== "") reported = Number(l);
  });
  const exited = new Promise((r) => child.once("exit", r));
  while (reported < 20_000) await new Promise((r) => setTimeout(r, 20));
  child.kill("SIGKILL");
  await exited;
  const s = spool(dir);
  s.open();
  const values = drain(s, 10_000);
  s.close();
  assert.ok(values.length > reported, `${values.length} records replayed, ${reported + 1} were reported appended`);
  assert.deepEqual(values, Array.from({ length: values.length }, (_, i) => i), "every record from the first, in order, none twice");
  assert.ok(s.counters.tornRecords <= 1, "at most the record being written when the kill came is torn");
});
