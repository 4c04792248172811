/**
 * `cage lab fleet`: N simulated hosts on this machine into one real Prometheus and one real
 * influxd (docs/lab-fleet.md says what a host is here and why).
 *
 * Each host is the agent's per-host process set — a pipeline and a memory collector, with its
 * own agent.host, runtime and state directories, cage file and /metrics port — and M cages of one
 * cheap real process each. The eBPF CPU collector runs once: it sees this one kernel, which is
 * every host's, and each host's runtime directory links its cpu.sock to it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { ensurePrivateDir } from "../../protocol/endpoints.js";
import { MessageSubscriber } from "../../protocol/messageBus.js";
import { CpuBatchView } from "../../protocol/rawBatches.js";
import { Topic } from "../../protocol/wireFormat.js";
import { processCpuSeconds } from "../../host/proc/processTable.js";
import { parsePrometheusText, sumOfMetric } from "../common/prometheusText.js";
import { parseProcStatus } from "../../host/proc/procStatus.js";
import { freePort, InfluxServer, PrometheusServer, stopChild } from "../common/realServers.js";
import { checkHostIdentity, checkOneAlert, checkPointCounts, checkSeriesOnce, fleetCageNames, fleetHostNames, windowsWithin, type PointCount, type SeriesCount } from "./fleetChecks.js";
import type { FleetOptions } from "./fleetOptions.js";

/** The issue's bound on InfluxDB points against the expected count. */
export const POINT_TOLERANCE = 0.001;
/** Each cage's CPU cap, percent of one core: far above a sleeper, far below a busy loop. */
const CAGE_CAP_PCT = 10;
const SCRAPE_SECONDS = 2;
/** How long every host's matchers wait between /proc scans (40 scans of ~1,000 processes). */
const RESOLVE_MS = 10_000;
const MEMORY_SAMPLE_MS = 2_000;
const DATABASE = "offloadcage";

const distDir = fileURLToPath(new URL("../../", import.meta.url));
const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
export const FLEET_RULES_SOURCE = join(repoRoot, "grafana/prometheus/offloadcage-rules.yml");

export interface FleetHostResult {
  host: string;
  metricsPort: number;
  /** CPU of its pipeline and memory collector over the measured span, cores. */
  agentCores: number;
  pipelineRssBytes: number;
  memoryCollectorRssBytes: number;
  lostMessages: number;
  pointsDropped: number;
  pointsWritten: number;
  /** Write requests that failed (the outage) and were retried. */
  writeFailures: number;
}

export interface FleetResult {
  hosts: number;
  cagesPerHost: number;
  cages: number;
  windowMs: number;
  alertForSeconds: number;
  measuredSeconds: number;
  overrun: { host: string; cage: string; injectedAfterSeconds: number; firedAfterSeconds: number | null };
  /** When influxd was killed and for how long, seconds into the span; null: no outage. */
  influxOutage: { afterSeconds: number; seconds: number } | null;
  series: { metric: string; rows: number; problems: string[] }[];
  points: { expectedPerCage: number; expectedTotal: number; total: number; deviation: number; offSeries: number; problems: string[] };
  alerts: { fired: Record<string, string>[]; problems: string[] };
  perHost: FleetHostResult[];
  /** All agent processes together (shared CPU collector included), cores over the measured span. */
  agentCoresTotal: number;
  cpuCollectorCores: number;
  problems: string[];
  /** The lab's directory (logs, cage files) when kept: a run with problems keeps it. */
  keptDir: string | null;
}

interface FleetHost {
  name: string;
  dir: string;
  port: number;
  sleepers: ChildProcess[];
  pipeline: ChildProcess | null;
  memoryCollector: ChildProcess | null;
}

/** The rules file with every `for:` set to `forSeconds`, so the lab is short; expressions stay as they are. */
export function shortenRuleDurations(rules: string, forSeconds: number): string {
  const out = rules.replace(/^(\s+for:\s*)\S+\s*$/gm, `$1${forSeconds}s`);
  if (!/^\s+for:/m.test(rules)) throw new Error("alert rules: no `for:` found to shorten");
  return out;
}

/** Notes a child that could not be started (its `error` event) in `failures`, which the lab checks. */
function watched(child: ChildProcess, what: string, failures: string[]): ChildProcess {
  // Without a listener a failed spawn (EAGAIN, ENOMEM) would throw from the event loop and skip the clean-up.
  child.once("error", (err) => failures.push(`${what}: ${err.message}`));
  return child;
}

function spawnLogged(args: string[], logPath: string, failures: string[]): ChildProcess {
  const fd = openSync(logPath, "a");
  try {
    return watched(spawn(process.execPath, args, { stdio: ["ignore", fd, fd] }), args[0] ?? "node", failures);
  } finally {
    closeSync(fd);
  }
}

function cageFile(host: string, dir: string, port: number, influxUrl: string, cages: readonly string[], pids: readonly number[], windowMs: number): string {
  return `${JSON.stringify(
    {
      agent: {
        host,
        runtimeDir: join(dir, "run"),
        stateDir: join(dir, "state"),
        cpuIntervalMs: windowMs,
        memorySampleMs: MEMORY_SAMPLE_MS,
        idsMemorySampleMs: false,
        resolveMs: RESOLVE_MS,
        prometheus: { host: "127.0.0.1", port },
        logLevel: "warn",
        influx: { url: influxUrl, database: DATABASE, flushMs: 1000 },
      },
      cages: cages.map((name, i) => ({ name, vm: { kind: "process", match: [{ pid: pids[i], descendants: false }] }, cpu: { cap: CAGE_CAP_PCT } })),
    },
    null,
    2,
  )}\n`;
}

async function waitFor<T>(what: string, timeoutMs: number, signal: AbortSignal, probe: () => Promise<T | null>): Promise<T> {
  const t0 = Date.now();
  let lastErr = "";
  while (Date.now() - t0 < timeoutMs) {
    if (signal.aborted) throw new Error(`${what}: aborted`);
    try {
      const v = await probe();
      if (v !== null) return v;
    } catch (err) {
      lastErr = (err as Error).message;
    }
    await sleep(500);
  }
  throw new Error(`${what}: not within ${timeoutMs / 1000} s${lastErr !== "" ? ` (last error: ${lastErr})` : ""}`);
}

function rssOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    return parseProcStatus(pid, readFileSync(`/proc/${pid}/status`, "utf8")).vmRssBytes;
  } catch {
    return 0;
  }
}

export async function runFleet(opts: FleetOptions, signal: AbortSignal, progress: (line: string) => void = () => {}): Promise<FleetResult> {
  const hostNames = fleetHostNames(opts.hosts);
  const cageNames = fleetCageNames(opts.cagesPerHost);
  const labDir = mkdtempSync("/tmp/oc-fleet-");
  const spawnFailures: string[] = [];
  const hosts: FleetHost[] = [];
  let influx: InfluxServer | null = null;
  let prometheus: PrometheusServer | null = null;
  let cpuCollector: ChildProcess | null = null;
  const witness = new MessageSubscriber();
  let witnessing: Promise<void> | null = null;
  const windowTimesMs: number[] = [];
  // Logs and cage files stay for a look unless the run passed.
  let keepDir = true;
  try {
    influx = await InfluxServer.start(join(labDir, "influx"));
    progress(`influxd at ${influx.url}`);

    // One eBPF CPU collector for the machine; the lab's own subscriber counts its windows.
    const sharedRun = join(labDir, "shared");
    ensurePrivateDir(sharedRun);
    const cpuSocket = join(sharedRun, "cpu.sock");
    cpuCollector = spawnLogged([join(distDir, "collectors/cpu/main.js"), "--interval-ms", String(opts.windowMs), "--endpoint", `ipc://${cpuSocket}`], join(labDir, "collector-cpu.log"), spawnFailures);
    witness.connect(`ipc://${cpuSocket}`);
    witness.subscribe(Topic.rawCpu);
    witnessing = witness.receiveEach(
      (msg) => {
        if (msg.topic !== Topic.rawCpu) return;
        const view = new CpuBatchView(msg.payload);
        // The same wall time the pipelines give a window's points (pipeline/pipelineService.ts).
        const nowNs = process.hrtime.bigint();
        windowTimesMs.push(Date.now() - Number(nowNs) / 1e6 + Number(view.windowEndNs) / 1e6);
      },
      () => {},
    );

    for (const name of hostNames) {
      if (signal.aborted) throw new Error("aborted");
      const dir = join(labDir, name);
      mkdirSync(dir, { recursive: true });
      ensurePrivateDir(join(dir, "run"));
      symlinkSync(cpuSocket, join(dir, "run", "cpu.sock"));
      const host: FleetHost = { name, dir, port: await freePort(), sleepers: [], pipeline: null, memoryCollector: null };
      hosts.push(host);
      // A cage's VM: a shell asleep in `read`; a line makes it spin, end of input makes it exit.
      for (let i = 0; i < cageNames.length; i++) {
        const shell = watched(spawn("/bin/sh", ["-c", "read line && while :; do :; done"], { stdio: ["pipe", "ignore", "ignore"] }), `${name}/${cageNames[i] ?? ""}`, spawnFailures);
        // A write to a shell that is gone (EPIPE) must not throw from the event loop either.
        shell.stdin?.on("error", () => {});
        host.sleepers.push(shell);
      }
      const pids = host.sleepers.map((s) => s.pid);
      if (pids.some((p) => p === undefined)) throw new Error(`${name}: a cage process did not start`);
      const configPath = join(dir, "cages.yaml");
      writeFileSync(configPath, cageFile(name, dir, host.port, influx.url, cageNames, pids as number[], opts.windowMs));
      host.memoryCollector = spawnLogged([join(distDir, "collectors/memory/main.js"), "--config", configPath, "--endpoint", `ipc://${join(dir, "run", "memory.sock")}`], join(dir, "collector-memory.log"), spawnFailures);
      host.pipeline = spawnLogged([join(distDir, "pipeline/main.js"), "--config", configPath], join(dir, "pipeline.log"), spawnFailures);
      // Node's start-up is the costly part: a few hosts at a time keep the machine usable.
      if (hosts.length % 4 === 0) await sleep(1500);
    }
    if (spawnFailures.length > 0) throw new Error(`could not start: ${spawnFailures.join("; ")}`);
    for (const host of hosts) {
      await waitFor(`${host.name}: pipeline /metrics on port ${host.port}`, 120_000, signal, async () => {
        if (host.pipeline?.exitCode !== null) throw new Error(`pipeline exited with ${host.pipeline?.exitCode}; see ${join(host.dir, "pipeline.log")}`);
        const res = await fetch(`http://127.0.0.1:${host.port}/metrics`);
        const text = await res.text();
        return res.ok && text.includes("cage_cpu_cap_cores") ? true : null;
      });
    }
    progress(`${hosts.length} hosts up, ${hosts.length * cageNames.length} cages`);

    const rulesPath = join(labDir, "offloadcage-rules.yml");
    writeFileSync(rulesPath, shortenRuleDurations(readFileSync(FLEET_RULES_SOURCE, "utf8"), opts.alertForSeconds));
    prometheus = await PrometheusServer.start(
      join(labDir, "prometheus"),
      hosts.map((h) => ({ target: `127.0.0.1:${h.port}`, labels: { instance: h.name } })),
      [rulesPath],
      SCRAPE_SECONDS,
    );
    const prom = prometheus;
    await waitFor("every host scraped", 60_000, signal, async () => {
      const up = await prom.instant('count(up{job="offloadcage"} == 1)');
      return Number(up[0]?.value[1] ?? 0) === hosts.length ? true : null;
    });
    const runStartS = Date.now() / 1000;
    progress(`prometheus at ${prom.url} scrapes every host`);

    // The measured span starts now; CPU of the agent processes is read at both ends.
    const spanStartMs = Date.now();
    const cpuSecondsAt = (): Map<number, number> => {
      const m = new Map<number, number>();
      for (const c of [cpuCollector, ...hosts.flatMap((h) => [h.pipeline, h.memoryCollector])]) if (c?.pid !== undefined) m.set(c.pid, processCpuSeconds(c.pid) ?? 0);
      return m;
    };
    const cpuSecondsStart = cpuSecondsAt();

    const target = { host: hosts[Math.floor(hosts.length / 2)]!, cageIndex: Math.floor(cageNames.length / 2) };
    const targetCage = cageNames[target.cageIndex]!;
    await sleep(Math.min(5_000, (opts.durationSeconds * 1000) / 4), undefined, { signal });
    const injectedMs = Date.now();
    target.host.sleepers[target.cageIndex]?.stdin?.write("go\n");
    progress(`overrun injected in ${target.host.name}/${targetCage}`);
    // The central store goes down hard; every host keeps its points in its spool and writes them once it is back.
    let influxOutage: FleetResult["influxOutage"] = null;
    if (opts.influxOutageSeconds > 0) {
      const outageStartMs = Date.now();
      await influx.kill();
      progress(`influxd killed for ${opts.influxOutageSeconds} s`);
      await sleep(opts.influxOutageSeconds * 1000, undefined, { signal });
      await influx.restart();
      influxOutage = { afterSeconds: (outageStartMs - spanStartMs) / 1000, seconds: (Date.now() - outageStartMs) / 1000 };
      progress("influxd back");
    }
    let firedMs: number | null = null;
    const alertDeadline = injectedMs + (opts.alertForSeconds + 90) * 1000;
    while (Date.now() < alertDeadline && !signal.aborted) {
      const firing = await prom.instant('ALERTS{alertstate="firing"}').catch(() => []);
      if (firing.some((s) => s.metric.alertname === "CageOverCap")) {
        firedMs = Date.now();
        break;
      }
      await sleep(1000);
    }
    progress(firedMs === null ? "CageOverCap did not fire" : `CageOverCap fired ${((firedMs - injectedMs) / 1000).toFixed(1)} s after the overrun`);
    // The busy loop has done its job; it must not skew the rest of the run.
    target.host.sleepers[target.cageIndex]?.kill("SIGKILL");
    const spanEndWanted = spanStartMs + opts.durationSeconds * 1000;
    if (Date.now() < spanEndWanted) await sleep(spanEndWanted - Date.now(), undefined, { signal });
    const spanEndMs = Date.now();
    const cpuSecondsEnd = cpuSecondsAt();
    const measuredSeconds = (spanEndMs - spanStartMs) / 1000;
    const coresOf = (pid: number | undefined): number => (pid === undefined ? 0 : ((cpuSecondsEnd.get(pid) ?? 0) - (cpuSecondsStart.get(pid) ?? 0)) / measuredSeconds);

    // Points are counted over whole windows well inside the span: half a window off each end.
    const half = opts.windowMs / 2;
    const inSpan = windowTimesMs.filter((t) => t >= spanStartMs + opts.windowMs && t <= spanEndMs - opts.windowMs);
    if (inSpan.length === 0) throw new Error(`no CPU window was published in the measured span; see ${join(labDir, "collector-cpu.log")}`);
    const countFromMs = inSpan[0]! - half;
    const countToMs = inSpan[inSpan.length - 1]! + half;
    const expectedPerCage = windowsWithin(windowTimesMs, countFromMs, countToMs);

    // Series per (host, cage), while every host is still up.
    const series: FleetResult["series"] = [];
    const seriesChecks: [string, string, { name: string; values: readonly string[] } | undefined][] = [
      ["cage_cpu_cap_cores", "count by (instance, cage) (cage_cpu_cap_cores)", undefined],
      ["cage_aggregate_age_seconds", "count by (instance, cage) (cage_aggregate_age_seconds)", undefined],
      ["cage_cpu_seconds_total", "count by (instance, cage, role) (cage_cpu_seconds_total)", { name: "role", values: ["vm", "ids"] }],
      ["cage_processes", "count by (instance, cage, role) (cage_processes)", { name: "role", values: ["vm", "ids"] }],
    ];
    for (const [metric, expr, perCage] of seriesChecks) {
      const rows: SeriesCount[] = (await prom.instant(expr)).map((s) => ({ labels: s.metric, count: Number(s.value[1]) }));
      series.push({ metric, rows: rows.length, problems: checkSeriesOnce(metric, rows, hostNames, cageNames, perCage) });
    }

    const identityProblems = checkHostIdentity((await prom.instant("target_info")).map((s) => s.metric), hostNames);
    series.push({ metric: "target_info", rows: hosts.length, problems: identityProblems });

    // Alerts that fired at any time since Prometheus started.
    const stepS = SCRAPE_SECONDS;
    const firedSeries = await prom.range('ALERTS{alertstate="firing"}', Math.floor(runStartS), Math.ceil(Date.now() / 1000), stepS);
    const fired = firedSeries.map((s) => {
      const { alertname = "", instance = "", cage = "" } = s.metric;
      return { alertname, instance, cage };
    });
    const alertProblems = checkOneAlert(fired, { alertname: "CageOverCap", instance: target.host.name, cage: targetCage });

    // Each host's own counters, from its exposition.
    const perHost: FleetHostResult[] = [];
    for (const h of hosts) {
      const series = parsePrometheusText(await (await fetch(`http://127.0.0.1:${h.port}/metrics`)).text());
      perHost.push({
        host: h.name,
        metricsPort: h.port,
        agentCores: coresOf(h.pipeline?.pid) + coresOf(h.memoryCollector?.pid),
        pipelineRssBytes: rssOf(h.pipeline?.pid),
        memoryCollectorRssBytes: rssOf(h.memoryCollector?.pid),
        lostMessages: sumOfMetric(series, "cage_pipeline_lost_messages_total"),
        pointsDropped: sumOfMetric(series, "cage_history_points_dropped_total"),
        pointsWritten: sumOfMetric(series, "cage_history_points_written_total"),
        writeFailures: sumOfMetric(series, "cage_history_write_failures_total"),
      });
    }

    // InfluxDB: wait until the hosts' buffers have reached it (counts stop growing), then count.
    const db = influx;
    const countQuery = `SELECT count(cpu_cores) FROM cage WHERE time >= ${Math.floor(countFromMs)}ms AND time <= ${Math.ceil(countToMs)}ms GROUP BY host, cage`;
    let rows: PointCount[] = [];
    let previous = -1;
    for (let i = 0; i < 30 && !signal.aborted; i++) {
      const res = await db.query(countQuery, DATABASE);
      rows = (res.results?.[0]?.series ?? []).map((s) => ({ host: s.tags?.host ?? "", cage: s.tags?.cage ?? "", count: Number(s.values[0]?.[1] ?? 0) }));
      const total = rows.reduce((a, r) => a + r.count, 0);
      if (total === previous && total > 0) break;
      previous = total;
      await sleep(2000);
    }
    const points = checkPointCounts(rows, hostNames, cageNames, expectedPerCage, POINT_TOLERANCE);

    const cpuCollectorCores = coresOf(cpuCollector.pid);
    const result: FleetResult = {
      hosts: hosts.length,
      cagesPerHost: cageNames.length,
      cages: hosts.length * cageNames.length,
      windowMs: opts.windowMs,
      alertForSeconds: opts.alertForSeconds,
      measuredSeconds,
      overrun: {
        host: target.host.name,
        cage: targetCage,
        injectedAfterSeconds: (injectedMs - spanStartMs) / 1000,
        firedAfterSeconds: firedMs === null ? null : (firedMs - injectedMs) / 1000,
      },
      influxOutage,
      series,
      points,
      alerts: { fired, problems: alertProblems },
      perHost,
      agentCoresTotal: cpuCollectorCores + perHost.reduce((a, h) => a + h.agentCores, 0),
      cpuCollectorCores,
      problems: [],
      keptDir: null,
    };
    result.problems = [...series.flatMap((s) => s.problems), ...points.problems, ...alertProblems];
    keepDir = result.problems.length > 0;
    if (keepDir) result.keptDir = labDir;
    return result;
  } finally {
    witness.close();
    await witnessing?.catch(() => {});
    for (const h of hosts) for (const s of h.sleepers) s.kill("SIGKILL");
    const agents = hosts.flatMap((h) => [h.pipeline, h.memoryCollector]).filter((c): c is ChildProcess => c !== null);
    await Promise.all(agents.map((c) => stopChild(c)));
    if (cpuCollector !== null) await stopChild(cpuCollector);
    await prometheus?.stop();
    await influx?.stop();
    if (keepDir) progress(`logs and cage files kept in ${labDir}`);
    else rmSync(labDir, { recursive: true, force: true });
  }
}
