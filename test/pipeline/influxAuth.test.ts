/**
 * InfluxDB authentication: the password file, the error for wrong credentials, and a real influxd
 * with `auth-enabled = true` (its own temporary config; the test creates the admin user): the
 * right user writes, a wrong password or no user is refused with a clear error while the points
 * wait in the buffer, and two hosts' points for a cage of the same name stay apart.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { InfluxSpec } from "../../config/cageConfig.js";
import { influxAuthFailure, readInfluxCredentials } from "../../pipeline/influxAuth.js";
import { InfluxHistoryWriter } from "../../pipeline/influxWriter.js";
import type { CageAggregate } from "../../protocol/cageAggregate.js";
import { capturingLogger, waitFor } from "./pipelineHarness.js";
import { influxForTests } from "./influxHarness.js";

const ADMIN = { username: "oc_admin", password: "s3cret, with spaces" };

const influx = influxForTests({ authEnabled: true }, async (server) => {
  // With auth on and no user yet, influxd accepts exactly this: creating the first admin.
  await server.query(`CREATE USER ${ADMIN.username} WITH PASSWORD '${ADMIN.password}' WITH ALL PRIVILEGES`);
});
const newSpoolDir = influx.newSpoolDir;

function passwordFile(name: string, text: string): string {
  const path = join(influx.dir, name);
  writeFileSync(path, text);
  chmodSync(path, 0o600);
  return path;
}

function spec(database: string, over: Partial<InfluxSpec>): InfluxSpec {
  return influx.spec(database, { retryMaxMs: 200, ...over });
}

function aggregate(cage: string, timeMs: number): CageAggregate {
  return {
    v: 1,
    cage,
    timeMs,
    windowSeconds: 0.1,
    vm: { cpuPct: 40, pids: [100], startTimes: [1000], rssBytes: 1e9 },
    ids: { cpuPct: 20, pids: [200], startTimes: [2000], rssBytes: 1e8, pageCacheBytes: 0 },
    totalPct: 60,
    capPct: 50,
    idsCapPct: null,
    weight: null,
    memory: { baseBytes: null, floorBytes: null },
  };
}

void test("the password file: one line, trailing newline dropped; unreadable, empty or multi-line files are named", () => {
  assert.equal(readInfluxCredentials({ username: null, passwordFile: null }), null);
  assert.deepEqual(readInfluxCredentials({ username: "a", passwordFile: passwordFile("pw1", "hunter2\n") }), { username: "a", password: "hunter2" });
  const missing = join(influx.dir, "absent");
  assert.throws(() => readInfluxCredentials({ username: "a", passwordFile: missing }), {
    message: new RegExp(`^agent\\.influx\\.passwordFile "${missing}": cannot read it: ENOENT`),
  });
  const empty = passwordFile("pw2", "\n");
  assert.throws(() => readInfluxCredentials({ username: "a", passwordFile: empty }), { message: `agent.influx.passwordFile "${empty}": is empty` });
  const two = passwordFile("pw3", "a\nb\n");
  assert.throws(() => readInfluxCredentials({ username: "a", passwordFile: two }), { message: `agent.influx.passwordFile "${two}": must hold one line` });
  assert.throws(() => readInfluxCredentials({ username: "a", passwordFile: null }), { message: "agent.influx: username and passwordFile must be set together" });
});

void test("401 and 403 are explained; other failures are not auth failures", () => {
  const withStatus = (statusCode: number): unknown => Object.assign(new Error("x"), { res: { statusCode } });
  assert.equal(
    influxAuthFailure(withStatus(401), { url: "http://db:8086", username: "agent7" }),
    'InfluxDB at http://db:8086 refused user "agent7" (HTTP 401): wrong password or unknown user; check agent.influx.username and passwordFile',
  );
  assert.equal(influxAuthFailure(withStatus(401), { url: "http://db:8086", username: null }), "InfluxDB at http://db:8086 requires authentication (HTTP 401): set agent.influx.username and passwordFile");
  assert.match(influxAuthFailure(withStatus(403), { url: "http://db:8086", username: "w" }) ?? "", /denied user "w" \(HTTP 403\)/);
  assert.equal(influxAuthFailure(withStatus(500), { url: "http://db:8086", username: "w" }), null);
  assert.equal(influxAuthFailure(new Error("ECONNREFUSED"), { url: "http://db:8086", username: "w" }), null);
});

void test("auth-enabled influxd: the right user writes, tagged with each host; two hosts' cages of one name stay apart", async () => {
  const { logger } = capturingLogger();
  const s = spec("auth_t", { username: ADMIN.username, passwordFile: passwordFile("admin.pw", `${ADMIN.password}\n`) });
  const node1 = new InfluxHistoryWriter(s, newSpoolDir(), logger, "node-1");
  const node2 = new InfluxHistoryWriter(s, newSpoolDir(), logger, "node-2");
  const base = Date.now() - 60_000;
  node1.start();
  node2.start();
  for (let i = 0; i < 20; i++) {
    node1.writeAggregate(aggregate("web", base + i * 100));
    node2.writeAggregate(aggregate("web", base + i * 100)); // the same cage name and times on another host
  }
  await waitFor("both hosts' points written", () => node1.stats.written === 60 && node2.stats.written === 60);
  await Promise.all([node1.stop(), node2.stop()]);
  const res = await influx.server.query(`SELECT count("cpu_cores") FROM "raw"."cage" WHERE "cage" = 'web' GROUP BY "host"`, "auth_t", ADMIN);
  const counts = Object.fromEntries((res.results?.[0]?.series ?? []).map((x): [string, unknown] => [x.tags?.host ?? "", x.values[0]?.[1]]));
  assert.deepEqual(counts, { "node-1": 20, "node-2": 20 }, "one series per host, nothing merged");
});

void test("auth-enabled influxd: a wrong password or no user is refused with a clear error; the points stay buffered", async () => {
  const cases: [string, Partial<InfluxSpec>, RegExp][] = [
    ["wrong password", { username: ADMIN.username, passwordFile: passwordFile("wrong.pw", "not-the-password\n") }, /refused user "oc_admin" \(HTTP 401\): wrong password or unknown user; check agent\.influx\.username and passwordFile; points stay buffered/],
    ["no user", {}, /requires authentication \(HTTP 401\): set agent\.influx\.username and passwordFile; points stay buffered/],
  ];
  for (const [what, over, message] of cases) {
    const { logger, records } = capturingLogger();
    const w = new InfluxHistoryWriter(spec("auth_denied_t", over), newSpoolDir(), logger, "node-3");
    w.start();
    for (let i = 0; i < 10; i++) w.writeAggregate(aggregate("web", Date.now() - 10_000 + i * 100));
    await waitFor(`${what}: failed attempts`, () => w.stats.failedWrites >= 2);
    const stats = w.stats;
    assert.equal(stats.connected, false, what);
    assert.equal(stats.buffered, 30, `${what}: every point kept`);
    assert.equal(stats.droppedFull + stats.droppedRejected, 0, `${what}: nothing dropped`);
    const errors = records.filter((r) => r.level === 50).map((r) => r.msg);
    assert.ok(errors.some((m) => message.test(m)), `${what}: ${errors.join("\n")}`);
    await w.stop(0);
  }
});
