/**
 * The InfluxDB schema many agents share: the plan (pure), then real influxd (Debian's influxdb
 * 1.x, loopback port, temporary data directory): agents set up at once without a conflict,
 * an agent with another config changes nothing, and nobody's continuous query is dropped.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_INFLUX } from "../../config/loadConfig.js";
import { downsampleQuery, schemaPlan, shownDurationMinutes } from "../../pipeline/influxSchema.js";
import { InfluxHistoryWriter } from "../../pipeline/influxWriter.js";
import { capturingLogger, waitFor } from "./pipelineHarness.js";
import { influxForTests } from "./influxHarness.js";

void test("schema plan: creates both policies and the CQ on an empty database, nothing when all is in place", () => {
  const spec = { ...DEFAULT_INFLUX, database: "oc" };
  const cq = downsampleQuery(spec);
  assert.equal(cq.name, "offloadcage_downsample_1m");
  assert.equal(
    cq.query,
    'SELECT mean(*), max(*) INTO "oc"."longterm".:MEASUREMENT FROM "oc"."raw"./^(cage|cage_role|actuator_state)$/ GROUP BY time(1m), *',
  );
  assert.deepEqual(schemaPlan(spec, [{ name: "autogen", duration: "0s", default: true }], []), {
    actions: [
      { kind: "createPolicy", name: "raw", duration: "7d", isDefault: true },
      { kind: "createPolicy", name: "longterm", duration: "90d", isDefault: false },
      { kind: "createQuery", ...cq },
    ],
    differences: [],
  });
  const inPlace = [
    { name: "raw", duration: "168h0m0s", default: true },
    { name: "longterm", duration: "2160h0m0s", default: false },
  ];
  assert.deepEqual(schemaPlan(spec, inPlace, [cq.name, "someone_elses_cq"]), { actions: [], differences: [] });
});

void test("schema plan: what another agent defined differently is reported, never altered or dropped", () => {
  const spec = { ...DEFAULT_INFLUX, database: "oc", retention: "2d", downsampleEvery: "5m" };
  const have = [
    { name: "raw", duration: "168h0m0s", default: false },
    { name: "longterm", duration: "2160h0m0s", default: false },
  ];
  assert.deepEqual(schemaPlan(spec, have, ["offloadcage_downsample_1m", "someone_elses_cq"]), {
    actions: [],
    differences: [
      "retention policy raw keeps 168h0m0s, not agent.influx.retention 2d; left as it is",
      "downsampling query offloadcage_downsample_1m is in place, not offloadcage_downsample_5m (agent.influx.downsampleEvery 5m); left as it is",
    ],
  });
  // Only what is missing is created, with this agent's definition.
  assert.deepEqual(schemaPlan(spec, have.slice(0, 1), []).actions, [
    { kind: "createPolicy", name: "longterm", duration: "90d", isDefault: false },
    { kind: "createQuery", ...downsampleQuery(spec) },
  ]);
  assert.equal(shownDurationMinutes("1h0m0s"), 60);
  assert.equal(shownDurationMinutes("0s"), Infinity);
  assert.throws(() => shownDurationMinutes("7 days"), /cannot read retention policy duration "7 days"/);
});

const influx = influxForTests();
const { spec, newSpoolDir } = influx;

async function policies(db: string): Promise<Map<string, unknown[]>> {
  const rows = (await influx.server.query(`SHOW RETENTION POLICIES ON ${db}`)).results?.[0]?.series?.[0]?.values ?? [];
  return new Map(rows.map((r) => [r[0] as string, r]));
}

async function queryNames(db: string): Promise<string[]> {
  const series = (await influx.server.query("SHOW CONTINUOUS QUERIES")).results?.[0]?.series?.find((s) => s.name === db);
  return (series?.values ?? []).map((v) => v[0] as string).sort();
}

void test("real influxd: five agents setting up one database at once agree; one with another config changes nothing", async () => {
  const { logger, records } = capturingLogger();
  // An operator's own continuous query on the same database must survive every agent.
  await influx.server.query("CREATE DATABASE fleet_t");
  await influx.server.query('CREATE CONTINUOUS QUERY "operators_cq" ON "fleet_t" BEGIN SELECT count(*) INTO "fleet_t"."autogen"."cq_counts" FROM "fleet_t"."autogen"./.*/ GROUP BY time(1h) END');
  const agents = ["node-1", "node-2", "node-3", "node-4", "node-5"].map((host) => new InfluxHistoryWriter(spec("fleet_t"), newSpoolDir(), logger, host));
  for (const w of agents) w.start();
  await waitFor("every agent to connect", () => agents.every((w) => w.stats.connected));
  for (const w of agents) assert.equal(w.stats.failedWrites, 0, "no agent's set-up failed: identical CREATEs do not conflict");
  await Promise.all(agents.map((w) => w.stop()));

  const byName = await policies("fleet_t");
  assert.equal(byName.get("raw")?.[1], "168h0m0s");
  assert.equal(byName.get("raw")?.[4], true, "raw is the default policy");
  assert.equal(byName.get("longterm")?.[1], "2160h0m0s");
  assert.deepEqual(await queryNames("fleet_t"), ["offloadcage_downsample_1m", "operators_cq"]);

  // An agent with a shorter retention and another interval: warned, nothing altered or dropped.
  const other = new InfluxHistoryWriter(spec("fleet_t", { retention: "2d", downsampleEvery: "5m" }), newSpoolDir(), logger, "node-6");
  other.start();
  await waitFor("the differing agent to connect", () => other.stats.connected);
  await other.stop();
  assert.equal((await policies("fleet_t")).get("raw")?.[1], "168h0m0s", "raw keeps the first definition");
  assert.deepEqual(await queryNames("fleet_t"), ["offloadcage_downsample_1m", "operators_cq"]);
  const warnings = records.filter((r) => r.level === 40).map((r) => r.msg);
  assert.ok(warnings.includes("influx: retention policy raw keeps 168h0m0s, not agent.influx.retention 2d; left as it is"), warnings.join("\n"));
  assert.ok(warnings.some((m) => m.startsWith("influx: downsampling query offloadcage_downsample_1m is in place, not offloadcage_downsample_5m")), warnings.join("\n"));
  assert.ok(!records.some((r) => r.msg === "influx: schema created" && r.name === "offloadcage_downsample_5m"), "the 5m query was not created");
});
