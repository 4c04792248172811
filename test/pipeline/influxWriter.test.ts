/**
 * The history writer against a real influxd (Debian's influxdb 1.6, loopback port, temporary
 * data directory): schema set-up, then a crash and restart of the server in the middle of a
 * run that must lose no point, then an outage longer than the spool's bound that must drop exactly the
 * oldest points and say so.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { InfluxSpec } from "../../config/cageConfig.js";
import { DEFAULT_INFLUX } from "../../config/loadConfig.js";
import { InfluxHistoryWriter } from "../../pipeline/influxWriter.js";
import type { CageAggregate } from "../../protocol/cageAggregate.js";
import { capturingLogger, waitFor } from "./pipelineHarness.js";
import { influxForTests } from "./influxHarness.js";

const influx = influxForTests();
const spoolDir = influx.spoolDir;

function spec(database: string, over: Partial<InfluxSpec> = {}): InfluxSpec {
  return influx.spec(database, { batchPoints: 300, ...over });
}

function aggregate(cage: string, timeMs: number, i: number): CageAggregate {
  return {
    v: 1,
    cage,
    timeMs,
    windowSeconds: 0.1,
    vm: { cpuPct: 40 + (i % 7), pids: [100, 101], startTimes: [1000, 1010], rssBytes: 1e9 },
    ids: { cpuPct: 20, pids: [200], startTimes: [2000], rssBytes: 1e8, pageCacheBytes: 5e7 },
    totalPct: 60 + (i % 7),
    capPct: 50,
    idsCapPct: 25,
    weight: null,
    memory: { baseBytes: 2 ** 31, floorBytes: 2 ** 29 },
  };
}

void test("the influx package is loaded with the first request, not with the pipeline", () => {
  const dir = mkdtempSync(join(tmpdir(), "oc-influx-load-"));
  try {
    // A fresh process: what importing the pipeline loads, then what a writer's first request loads.
    const script = `
      import { createRequire } from "node:module";
      const require = createRequire(${JSON.stringify(new URL("../../pipeline/pipelineService.js", import.meta.url).href)});
      const loaded = () => Object.keys(require.cache).some((k) => k.includes("/node_modules/influx/"));
      await import(${JSON.stringify(new URL("../../pipeline/pipelineService.js", import.meta.url).href)});
      const { InfluxHistoryWriter } = await import(${JSON.stringify(new URL("../../pipeline/influxWriter.js", import.meta.url).href)});
      const { DEFAULT_INFLUX } = await import(${JSON.stringify(new URL("../../config/loadConfig.js", import.meta.url).href)});
      const { default: pino } = await import("pino");
      const afterImport = loaded();
      // Port 9 on loopback: nothing listens, the request fails at once.
      const writer = new InfluxHistoryWriter({ ...DEFAULT_INFLUX, url: "http://127.0.0.1:9" }, ${JSON.stringify(join(dir, "spool"))}, pino({ level: "silent" }), "h1");
      const afterConstruct = loaded();
      writer.start();
      const t0 = Date.now();
      while (!loaded() && Date.now() - t0 < 10000) await new Promise((r) => setTimeout(r, 50));
      await writer.stop(0);
      console.log(JSON.stringify({ afterImport, afterConstruct, afterStart: loaded() }));
    `;
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 30_000, cwd: new URL("../../../", import.meta.url) });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}"), { afterImport: false, afterConstruct: false, afterStart: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function countOf(db: string, q: string): Promise<number> {
  const res = await influx.server.query(q, db);
  const v = res.results?.[0]?.series?.[0]?.values?.[0]?.[1];
  return typeof v === "number" ? v : 0;
}

void test("sets up the database: raw (default) and longterm policies, the downsampling CQ; a changed config alters nothing", async () => {
  const { logger } = capturingLogger();
  const w = new InfluxHistoryWriter(spec("schema_t"), spoolDir("schema"), logger);
  w.start();
  await waitFor("the writer to connect", () => w.stats.connected);
  await w.stop();
  const rps = await influx.server.query("SHOW RETENTION POLICIES ON schema_t");
  const rows = rps.results?.[0]?.series?.[0]?.values ?? [];
  const byName = new Map(rows.map((r) => [r[0] as string, r]));
  assert.equal(byName.get("raw")?.[1], "168h0m0s");
  assert.equal(byName.get("raw")?.[4], true, "raw is the default policy");
  assert.equal(byName.get("longterm")?.[1], "2160h0m0s");
  const cqs = async (): Promise<string[]> =>
    ((await influx.server.query("SHOW CONTINUOUS QUERIES")).results?.[0]?.series?.find((s) => s.name === "schema_t")?.values ?? []).map((v) => v[0] as string);
  assert.deepEqual(await cqs(), ["offloadcage_downsample_1m"]);

  const w2 = new InfluxHistoryWriter(spec("schema_t", { retention: "2d", downsampleEvery: "5m" }), spoolDir("schema"), logger);
  w2.start();
  await waitFor("the second writer to connect", () => w2.stats.connected);
  await w2.stop();
  const rows2 = (await influx.server.query("SHOW RETENTION POLICIES ON schema_t")).results?.[0]?.series?.[0]?.values ?? [];
  // Agents share the database: what exists stays (test/pipeline/influxSchema.test.ts has the rest).
  assert.equal(rows2.find((r) => r[0] === "raw")?.[1], "168h0m0s");
  assert.deepEqual(await cqs(), ["offloadcage_downsample_1m"]);
});

void test("influxd killed (SIGKILL) and restarted mid-run: every point that fit in the spool is written", async () => {
  const { logger, records } = capturingLogger();
  const w = new InfluxHistoryWriter(spec("restart_t"), spoolDir("restart"), logger);
  w.start();
  await waitFor("the writer to connect", () => w.stats.connected);

  // 200 aggregates a second (3 points each) for 6 s; the server is down from 1.5 s to ~3.5 s.
  const t0 = Date.now();
  let sent = 0;
  let killedAt = 0;
  let restartedAt = 0;
  let restarting: Promise<void> | null = null;
  const base = Date.now() - 10_000;
  while (Date.now() - t0 < 6000) {
    for (let k = 0; k < 10; k++) {
      w.writeAggregate(aggregate("restart", base + sent * 5, sent));
      sent++;
    }
    const t = Date.now() - t0;
    if (killedAt === 0 && t >= 1500) {
      await influx.server.kill();
      killedAt = Date.now();
    } else if (killedAt !== 0 && restarting === null && t >= 3500) {
      restarting = influx.server.restart().then(() => {
        restartedAt = Date.now();
      });
    }
    await sleep(50);
  }
  await restarting;
  const lastPointAt = Date.now();
  w.writeDecision({ v: 1, actuator: "balloon", cage: "restart", timeMs: Date.now(), setting: "vm.memory.target", from: null, to: 1e9, reason: "test", dryRun: false });
  await waitFor("the spool to drain", () => w.stats.buffered === 0 && w.stats.connected);
  const drainedAt = Date.now();
  const stats = w.stats;
  await w.stop();

  const cagePoints = await countOf("restart_t", `SELECT count(cpu_cores) FROM "raw"."cage" WHERE cage = 'restart'`);
  const rolePoints = await countOf("restart_t", `SELECT count(cpu_cores) FROM "raw"."cage_role" WHERE cage = 'restart'`);
  const decisions = await countOf("restart_t", `SELECT count(reason) FROM "longterm"."actuator_decision" WHERE cage = 'restart'`);
  const report = {
    aggregatesSent: sent,
    pointsSent: sent * 3 + 1,
    written: stats.written,
    inInflux: cagePoints + rolePoints + decisions,
    droppedFull: stats.droppedFull,
    failedWrites: stats.failedWrites,
    downMs: restartedAt - killedAt,
    outageMs: stats.lastOutageMs,
    // From influxd answering /ping again to the writer's first successful write.
    firstWriteAfterRestartMs: (records.find((r) => /reachable again/.test(r.msg))?.time as number) - restartedAt,
    drainedAfterLastPointMs: drainedAt - lastPointAt,
  };
  console.log(`influx restart: ${JSON.stringify(report)}`);
  assert.ok(stats.failedWrites > 0, "writes failed while the server was down");
  assert.equal(stats.droppedFull + stats.droppedRejected, 0, "nothing dropped");
  assert.equal(cagePoints, sent, "one cage point per aggregate");
  assert.equal(rolePoints, 2 * sent, "two role points per aggregate");
  assert.equal(decisions, 1);
  assert.equal(stats.written, sent * 3 + 1);
  assert.ok(records.some((r) => /writing points failed; retrying/.test(r.msg)), "the outage is logged");
  assert.ok(records.some((r) => /reachable again/.test(r.msg)), "the recovery is logged");
});

void test("an outage longer than the spool bound drops the oldest points, logs and counts them, keeps the newest", async () => {
  const { logger, records } = capturingLogger();
  const w = new InfluxHistoryWriter(spec("overflow_t", { bufferPoints: 30 }), spoolDir("overflow"), logger);
  w.start();
  await waitFor("the writer to connect", () => w.stats.connected);
  await influx.server.kill();
  const base = Date.now() - 5000;
  for (let i = 0; i < 20; i++) w.writeAggregate(aggregate("overflow", base + i * 100, i)); // 60 points into 30
  await waitFor("a failed write", () => w.stats.failedWrites > 0);
  await influx.server.restart();
  await waitFor("the spool to drain", () => w.stats.buffered === 0 && w.stats.connected);
  const stats = w.stats;
  await w.stop();
  assert.equal(stats.droppedFull, 30);
  assert.equal(stats.written, 30);
  assert.ok(records.some((r) => /history spool full; dropped the oldest points/.test(r.msg) && typeof r.droppedTotal === "number" && r.droppedTotal > 0), "drops are logged with their count");
  // The newest 10 aggregates survive: their times are base + 1000 .. base + 1900.
  const res = await influx.server.query(`SELECT cpu_cores FROM "raw"."cage" WHERE cage = 'overflow'`, "overflow_t");
  const times = (res.results?.[0]?.series?.[0]?.values ?? []).map((v) => v[0] as number);
  assert.deepEqual(times, Array.from({ length: 10 }, (_, k) => Math.round(base + (10 + k) * 100)));
});

void test("points spooled while influxd is down outlive the writer: the next one on the spool writes them first", async () => {
  const { logger, records } = capturingLogger();
  const first = new InfluxHistoryWriter(spec("carry_t"), spoolDir("carry"), logger);
  first.start();
  await waitFor("the writer to connect", () => first.stats.connected);
  await influx.server.kill();
  const base = Date.now() - 5000;
  for (let i = 0; i < 10; i++) first.writeAggregate(aggregate("carry", base + i * 100, i));
  await waitFor("a failed write", () => first.stats.failedWrites > 0);
  await first.stop(200);
  assert.equal(first.stats.buffered, 30, "still spooled after stop");
  assert.ok(records.some((r) => /points left in the spool for the next start/.test(r.msg)));
  await influx.server.restart();
  const second = new InfluxHistoryWriter(spec("carry_t"), spoolDir("carry"), logger);
  second.start();
  assert.equal(second.stats.replayedPoints, 30);
  second.writeAggregate(aggregate("carry", base + 2000, 20));
  await waitFor("the spool to drain", () => second.stats.buffered === 0 && second.stats.connected);
  await second.stop();
  assert.equal(second.stats.written, 33);
  assert.equal(await countOf("carry_t", `SELECT count(cpu_cores) FROM "raw"."cage" WHERE cage = 'carry'`), 11);
});

void test("bad options are refused at construction with exact messages", () => {
  const { logger } = capturingLogger();
  const base = { ...DEFAULT_INFLUX, url: "http://127.0.0.1:1" };
  const d = spoolDir("refused");
  assert.throws(() => new InfluxHistoryWriter({ ...base, url: "not a url" }, d, logger), { message: 'influx url "not a url": not a URL' });
  assert.throws(() => new InfluxHistoryWriter({ ...base, url: "ftp://db:21" }, d, logger), { message: 'influx url "ftp://db:21": must be http:// or https://' });
  assert.throws(() => new InfluxHistoryWriter({ ...base, batchPoints: 0 }, d, logger), { message: "influx: batchPoints and flushMs must be >= 1, got 0, 1000" });
  assert.throws(() => new InfluxHistoryWriter({ ...base, bufferPoints: 0 }, d, logger), { message: "history buffer: points bound must be a positive integer, got 0" });
  assert.throws(() => new InfluxHistoryWriter({ ...base, bufferBytes: 0 }, d, logger), { message: "history buffer: bytes bound must be a positive integer, got 0" });
  assert.throws(() => new InfluxHistoryWriter({ ...base, retryMinMs: 500, retryMaxMs: 100 }, d, logger), { message: "retry backoff: need 0 < minMs <= maxMs, got 500, 100" });
});
