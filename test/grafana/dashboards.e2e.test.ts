/**
 * The shipped dashboards and alert rules against real servers and a real agent:
 *  - a real influxd and a real prometheus (Debian packages; loopback ports, temporary dirs),
 *    Prometheus scraping the agent every second and evaluating grafana/prometheus/offloadcage-rules.yml;
 *  - `cage demo` (the embedded demo cage: real workloads, real bpftrace), pointed at
 *    that influxd (`--influx`) and a free Prometheus port;
 *  - test actuator publishers (fakes, see testActuators.ts) sending act.state / act.decision;
 *  - influxd is killed (SIGKILL) and restarted in the middle: no aggregate may be missing after.
 * Then every panel query, template variable and annotation of every dashboard, and every alert
 * query (Prometheus rules, Grafana alert rules), is executed and must return the expected series.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { ChildProcess } from "node:child_process";
import { defaultEndpoints } from "../../protocol/endpoints.js";
import { pidsMatching, startCage } from "../cli/cliHarness.js";
import { capturingLogger, httpGet } from "../pipeline/pipelineHarness.js";
import { parsePrometheusText } from "../../lab/common/prometheusText.js";
import { dashboardFiles, dashboardQueries, grafanaAlertRules, prometheusRules, prometheusRulesFile, type ShippedQuery } from "./grafanaFiles.js";
import { InfluxServer, PrometheusServer, freePort, stopChild, type InfluxSeries, type PromRangeSeries } from "../../lab/common/realServers.js";
import { TestActuatorPublishers } from "./testActuators.js";

const AGENT_START_LIMIT_MS = 60_000;
const WRITE_BEFORE_KILL_MS = 5_000;
const INFLUX_DOWN_MS = 3_000;
const RUN_AFTER_RESTART_MS = 10_000;

let dir = "";
let influx: InfluxServer | null = null;
let prometheus: PrometheusServer | null = null;
let agent: { child: ChildProcess; output: () => string } | null = null;
let actuators: TestActuatorPublishers | null = null;
let agentPort = 0;
let runStartMs = 0;
let influxKilledAt = 0;
let influxBackAt = 0;

/** The agent's cage_history_points_written_total, 0 while it does not answer yet. */
async function historyWritten(): Promise<number> {
  try {
    return parsePrometheusText((await httpGet(`http://127.0.0.1:${agentPort}/metrics`)).body).get("cage_history_points_written_total") ?? 0;
  } catch {
    return 0;
  }
}

async function stopAgent(): Promise<void> {
  if (agent !== null) await stopChild(agent.child);
  agent = null;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "offloadcage-grafana-"));
  influx = await InfluxServer.start(join(dir, "influx"));
  agentPort = await freePort();
  prometheus = await PrometheusServer.start(join(dir, "prometheus"), [`127.0.0.1:${agentPort}`], [prometheusRulesFile], 1);

  // The demo's runtime dir (cage demo puts the demo under DIR/demo); the test actuators bind there.
  const runtimeDir = join(dir, "rt");
  mkdirSync(join(runtimeDir, "demo"), { recursive: true, mode: 0o700 });
  actuators = new TestActuatorPublishers(defaultEndpoints(join(runtimeDir, "demo")), capturingLogger().logger);
  await actuators.start();

  runStartMs = Date.now();
  agent = startCage(["demo", "--no-top", "--prometheus-port", String(agentPort), "--influx", influx.url], { ...process.env, OFFLOADCAGE_RUNTIME_DIR: runtimeDir });
  // The agent's start (bpftrace compiling) takes seconds on a busy machine: the crash is timed
  // from the first points it wrote, so influxd goes away while the agent is writing.
  let writingSince = 0;
  for (;;) {
    if (agent.child.exitCode !== null) throw new Error(`cage demo exited early:\n${agent.output().slice(-3000)}`);
    if (Date.now() - runStartMs > AGENT_START_LIMIT_MS) throw new Error(`the agent wrote no history within ${AGENT_START_LIMIT_MS} ms:\n${agent.output().slice(-3000)}`);
    const now = Date.now();
    if (writingSince === 0 && (await historyWritten()) > 0) writingSince = now;
    if (writingSince > 0 && influxKilledAt === 0 && now - writingSince >= WRITE_BEFORE_KILL_MS) {
      await influx.kill();
      influxKilledAt = Date.now();
    } else if (influxKilledAt > 0 && influxBackAt === 0 && now - influxKilledAt >= INFLUX_DOWN_MS) {
      await influx.restart();
      influxBackAt = Date.now();
    } else if (influxBackAt > 0 && now - influxBackAt >= RUN_AFTER_RESTART_MS) {
      break;
    }
    await sleep(200);
  }
});

after(async () => {
  await actuators?.close();
  await stopAgent();
  await prometheus?.stop();
  await influx?.stop();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Grafana's template variables, substituted as Grafana would for this run.

const regexGroup = (values: string[]): string => `(${values.map((c) => c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")).join("|")})`;

/** $cage = every cage (the "All" value, as a regex group), $host = this machine (the demo's default agent.host); times cover the run. */
function substituteInfluxQL(q: string, cages: string[]): string {
  return q
    .replace(/\/\^\$host\$\//g, `/^${regexGroup([hostname()])}$/`)
    .replace(/\$timeFilter/g, `time >= ${runStartMs - 5000}ms AND time <= ${Date.now()}ms`)
    .replace(/\$__interval/g, "1s")
    .replace(/\/\^\$cage\$\//g, `/^${regexGroup(cages)}$/`);
}

function substitutePromQL(q: string): string {
  // $__rate_interval: Grafana's max(4 × scrape interval, $__interval + scrape interval) = 4 s here.
  // $host = every instance (the "All" value, as Grafana sends it for a regex matcher), $cage = the demo's.
  return q.replace(/\$host/g, ".*").replace(/\$cage/g, "demo").replace(/\$__rate_interval/g, "4s").replace(/\$__interval/g, "1s").replace(/\$__range/g, `${Math.ceil((Date.now() - runStartMs) / 1000)}s`);
}

async function influxSeries(q: string): Promise<InfluxSeries[]> {
  const res = await influx!.query(q, "offloadcage");
  return res.results?.flatMap((r) => r.series ?? []) ?? [];
}

/** Series with at least one non-null value. */
function nonEmptyInflux(series: InfluxSeries[]): InfluxSeries[] {
  return series.filter((s) => s.values.some((row) => row.slice(1).some((v) => v !== null)));
}

async function promRange(expr: string): Promise<PromRangeSeries[]> {
  return prometheus!.range(expr, runStartMs / 1000, Date.now() / 1000, 1);
}

const describe = (q: ShippedQuery, text: string): string => `${q.where}\n  ${text}`;

// ---------------------------------------------------------------------------------------------

void test("the agent wrote every aggregate to InfluxDB across an influxd crash and restart", async () => {
  assert.ok(influxKilledAt > 0 && influxBackAt > 0, "influxd was killed and restarted during the run");
  // A copy: the test actuators keep receiving aggregates while we wait for the writer.
  const tally = [...(actuators!.tally.times.get("demo") ?? [])];
  assert.ok(tally.length > 50, `aggregates seen by the test actuators: ${tally.length}`);
  assert.equal(actuators!.lostAggregates, 0, "the test actuators lost no aggregate (sequence numbers)");
  // Give the writer time to drain what it buffered, then count the window the actuators saw.
  const first = tally[0]!;
  const last = tally.at(-1)!;
  const window = `time >= ${Math.round(first * 1000)}u AND time <= ${Math.round(last * 1000)}u`;
  let inInflux = 0;
  const deadline = Date.now() + 30_000; // the writer's backoff reaches 10 s (agent.influx.retryMaxMs)
  while (Date.now() < deadline) {
    const s = await influxSeries(`SELECT count("cpu_cores") FROM "raw"."cage" WHERE "host" = '${hostname()}' AND "cage" = 'demo' AND ${window}`);
    inInflux = (s[0]?.values[0]?.[1] as number | undefined) ?? 0;
    if (inInflux >= tally.length) break;
    await sleep(250);
  }
  const scrape = parsePrometheusText((await httpGet(`http://127.0.0.1:${agentPort}/metrics`)).body);
  const report = {
    aggregatesSeen: tally.length,
    cagePointsInInflux: inInflux,
    influxDownMs: influxBackAt - influxKilledAt,
    pointsWritten: scrape.get("cage_history_points_written_total"),
    droppedBufferFull: scrape.get('cage_history_points_dropped_total{reason="buffer_full"}'),
    droppedRejected: scrape.get('cage_history_points_dropped_total{reason="rejected"}'),
    writeFailures: scrape.get("cage_history_write_failures_total"),
    statesPublished: actuators!.statesPublished,
    decisionsPublished: actuators!.decisionsPublished,
  };
  console.log(`e2e history: ${JSON.stringify(report)}`);

  if (inInflux !== tally.length) {
    // Say where the gaps are, relative to the crash, before failing.
    const rows = (await influxSeries(`SELECT "cpu_cores" FROM "raw"."cage" WHERE "cage" = 'demo' AND ${window}`))[0]?.values ?? [];
    const inDb = new Set(rows.map((r) => r[0] as number));
    const missing = tally.filter((t) => !inDb.has(Math.floor(t))).map((t) => Math.round(t - influxKilledAt));
    assert.fail(`${inInflux} of ${tally.length} aggregates in InfluxDB; missing (ms after the kill, influxd back at ${influxBackAt - influxKilledAt}): ${missing.join(", ")}\n${agent!.output().split("\n").filter((l) => /influx/.test(l)).join("\n")}`);
  }
  assert.equal(report.droppedBufferFull, 0);
  assert.equal(report.droppedRejected, 0);
  assert.ok((report.writeFailures ?? 0) > 0, "writes failed while influxd was down (and were retried)");
});

void test("every dashboard query, variable and annotation returns the expected non-empty series", async () => {
  const cages = ["demo"];
  // Per query, series (tag values or column names) that must be among the results.
  const expected: Record<string, string[]> = {
    'offloadcage-overview.json: panel "CPU of cage $cage: VM + IDS against the cap" query A': ["role=vm", "role=ids"],
    'offloadcage-overview.json: panel "CPU of cage $cage: VM + IDS against the cap" query D': ["actuator=cpu"],
    'offloadcage-overview.json: panel "Actuator modes" query A': ["actuator=cpu", "actuator=balloon"],
    'offloadcage-memory.json: panel "Memory of cage $cage: IDS against what moved out of the VM" query A': ["IDS RSS", "IDS page cache"],
    'offloadcage-memory.json: panel "VM of cage $cage: balloon target and actual" query A': ["balloon target", "balloon actual"],
    'offloadcage-agent-health.json: panel "Agent CPU" query A': ["process=supervisor", "process=pipeline", "process=collector-cpu", "process=collector-memory"],
    'offloadcage-agent-health.json: panel "Agent memory" query A': ["process=supervisor", "process=pipeline", "process=collector-cpu", "process=collector-memory"],
    'offloadcage-agent-health.json: panel "Collector messages and restarts" query A': ["topic=raw.cpu", "topic=raw.mem"],
    'offloadcage-cage-prometheus.json: panel "CPU of cage $cage: VM + IDS against the cap" query A': ["cage=demo", "role=vm", "role=ids"],
    'offloadcage-cage-prometheus.json: panel "CPU of cage $cage: VM + IDS against the cap" query C': ["actuator=cpu"],
    'offloadcage-cage-prometheus.json: panel "Memory of cage $cage: RSS and the IDS\'s page cache" query A': ["role=vm", "role=ids"],
    'offloadcage-cage-prometheus.json: panel "Balloon of cage $cage: target and actual" query A': ["actuator=balloon"],
    'offloadcage-cage-prometheus.json: panel "Actuator modes" query A': ["actuator=cpu", "actuator=balloon"],
  };
  const checked: string[] = [];
  const problems: string[] = [];
  for (const f of dashboardFiles()) {
    for (const q of dashboardQueries(f)) {
      if (q.language === "influxql") {
        const text = substituteInfluxQL(q.text, cages);
        const series = nonEmptyInflux(await influxSeries(text));
        if (series.length === 0) problems.push(`empty: ${describe(q, text)}`);
        const names = new Set(series.flatMap((s) => [...Object.entries(s.tags ?? {}).map(([k, v]) => `${k}=${v}`), ...s.columns]));
        if (q.where.includes("variable $cage")) for (const c of cages) if (!series.some((s) => s.values.some((v) => v.includes(c)))) problems.push(`${q.where}: no value ${c}`);
        for (const want of expected[q.where] ?? []) if (!names.has(want)) problems.push(`${q.where}: no series ${want} in ${[...names].join(", ")}`);
      } else {
        // A variable's label_values(EXPR, LABEL) is Grafana's: EXPR must have series with LABEL.
        const labelValues = /^label_values\((.+),\s*(\w+)\)$/.exec(q.text);
        const text = substitutePromQL(labelValues?.[1] ?? q.text);
        const series = await promRange(text);
        if (labelValues !== null && !series.some((s) => s.metric[labelValues[2]!] !== undefined)) problems.push(`${q.where}: no label ${labelValues[2]} in ${text}`);
        if (series.length === 0 || series.every((s) => s.values.length === 0)) problems.push(`empty: ${describe(q, text)}`);
        const names = new Set(series.flatMap((s) => Object.entries(s.metric).map(([k, v]) => `${k}=${v}`)));
        for (const want of expected[q.where] ?? []) if (!names.has(want)) problems.push(`${q.where}: no series ${want} in ${[...names].join(", ")}`);
      }
      checked.push(q.where);
    }
  }
  // The demo cage has a memory section, so the page cache collector runs (agent.pageCache) and
  // the IDS's file hashing leaves page cache the memory dashboard shows.
  const cache = await influxSeries(`SELECT max("pagecache_bytes") FROM "raw"."cage_role" WHERE "cage" = 'demo' AND "role" = 'ids'`);
  const maxCache = (cache[0]?.values[0]?.[1] as number | undefined) ?? 0;
  console.log(`dashboard queries checked: ${checked.length}; IDS page cache up to ${maxCache} bytes`);
  // The agent's own footprint at the end of the run, as the agent-health dashboard shows it.
  const footprint: Record<string, string> = {};
  for (const s of await prometheus!.instant('sum by (process) (cage_agent_memory_rss_bytes)')) footprint[`${s.metric.process} rss MiB`] = (Number(s.value[1]) / 2 ** 20).toFixed(1);
  for (const s of await prometheus!.instant('sum by (process) (rate(cage_agent_cpu_seconds_total[20s])) * 100')) footprint[`${s.metric.process} cpu %`] = Number(s.value[1]).toFixed(1);
  console.log(`agent footprint: ${JSON.stringify(footprint)}`);
  if (maxCache <= 0) problems.push("the IDS page cache stayed 0 over the run");
  assert.deepEqual(problems, [], `${problems.join("\n")}\nagent output:\n${agent?.output().slice(-2000)}`);
  for (const where of Object.keys(expected)) assert.ok(checked.includes(where), `expected-series entry ${where} names a query that exists`);
  assert.ok(checked.length >= 25, `queries checked: ${checked.length}`);
});

void test("every alert query runs against the real data: signals non-empty, alerts as expected for this run", async () => {
  const rules = prometheusRules();
  const records = rules.filter((r) => r.record !== undefined);
  const alerts = rules.filter((r) => r.alert !== undefined);
  assert.equal(alerts.length, 5);

  // Prometheus loaded and evaluated every rule without error.
  const loaded = (await prometheus!.rules()).flatMap((g) => g.rules);
  assert.equal(loaded.length, rules.length);
  for (const r of loaded) assert.equal(r.health, "ok", `rule ${r.name}: ${r.health} ${r.lastError ?? ""}`);

  // Every signal (recording rule expression) returns series for the demo cage or each collector.
  for (const r of records) {
    const series = await promRange(r.expr);
    assert.ok(series.length > 0 && series.some((s) => s.values.length > 0), `signal ${r.record} is empty: ${r.expr}`);
    if (r.expr.includes("cage_")) assert.ok(series.some((s) => s.metric.cage === "demo" || s.metric.topic !== undefined), `${r.record}: ${JSON.stringify(series.map((s) => s.metric))}`);
  }

  // The Grafana alert rules query exactly those signals, each against a threshold.
  const bySignal = new Map(records.map((r) => [r.record as string, r.expr]));
  const grafana = grafanaAlertRules();
  assert.equal(grafana.length, alerts.length, "the same alerts in Grafana and Prometheus");
  for (const g of grafana) {
    const a = g.data.find((d) => d.refId === "A");
    const signal = g.annotations?.signal ?? "";
    assert.equal(a?.model.expr, bySignal.get(signal), `${g.title}: query A is the ${signal} expression`);
    assert.ok(g.data.some((d) => d.refId === g.condition), `${g.title}: condition ${g.condition} exists`);
    const series = await prometheus!.instant(a?.model.expr as string);
    assert.ok(series.length > 0, `${g.title}: query A is empty now`);
  }

  // The alert expressions themselves, now that the agent has run for a while. Each is
  // "SIGNAL OP THRESHOLD" (CageDataStale adds "or up == 0"): the shipped comparison and its
  // inverse together must return exactly the signal's series, so the comparison really runs over
  // the real series. Which side a series falls on is this run's state: the test balloon actuator
  // reports itself stuck, the collectors never stop, data is fresh; whether the demo cage is over
  // its caps depends on how much CPU this busy machine gives it, so those two must only agree
  // with their signal. (promtool tests show each alert firing and not firing.)
  const INVERSE: Record<string, string> = { ">": "<=", "<": ">=", "==": "!=" };
  const nowS = Date.now() / 1000;
  const seriesKeys = (v: { metric: Record<string, string> }[]): string[] => v.map((x) => x.metric.cage ?? x.metric.topic ?? "").sort();
  const state: Record<string, string[]> = {};
  for (const r of alerts) {
    const m = /^(\S+) (>|<|==) (\S+)( or .*)?$/.exec(r.expr);
    assert.ok(m, `${r.alert}: expression ${JSON.stringify(r.expr)} is not "SIGNAL OP THRESHOLD [or ...]"`);
    const [, signal, op, threshold] = m as unknown as [string, string, string, string];
    const all = seriesKeys(await prometheus!.instant(signal, nowS));
    const firing = seriesKeys(await prometheus!.instant(`${signal} ${op} ${threshold}`, nowS));
    const notFiring = seriesKeys(await prometheus!.instant(`${signal} ${INVERSE[op]} ${threshold}`, nowS));
    assert.ok(all.length > 0, `${r.alert}: signal ${signal} is empty`);
    assert.deepEqual([...firing, ...notFiring].sort(), all, `${r.alert}: the comparison splits the signal's series`);
    assert.deepEqual(seriesKeys(await prometheus!.instant(r.expr, nowS)).filter((k) => k !== ""), firing, `${r.alert}: the shipped expression`);
    state[r.alert as string] = firing;
  }
  console.log(`alerting series at the end of the run: ${JSON.stringify(state)}`);
  assert.deepEqual(state.BalloonStuck, ["demo"], "the test balloon actuator reports the demo cage stuck");
  assert.deepEqual(state.CollectorDown, [], "both collectors deliver");
  assert.deepEqual(state.CageDataStale, [], "data is fresh");

  // Stop the agent: CageDataStale's expression must turn non-empty (nothing to scrape).
  const stale = alerts.find((r) => r.alert === "CageDataStale")!;
  await stopAgent();
  const deadline = Date.now() + 10_000;
  let staleSeries: unknown[] = [];
  while (Date.now() < deadline && staleSeries.length === 0) {
    await sleep(500);
    staleSeries = await prometheus!.instant(stale.expr);
  }
  assert.ok(staleSeries.length > 0, "CageDataStale's expression is non-empty once the agent is gone");
  assert.deepEqual(await pidsMatching("demoWorkload.js"), [], "demo workloads stopped");
});
