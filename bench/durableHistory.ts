/**
 * Durable history, for real: a real influxd (own port and data directory), the real pipeline
 * process, and aggregates flowing all along (a fake CPU collector feeds it CPU windows of one cage
 * made of two real sleep processes). InfluxDB is killed (SIGKILL) for the outage; during it the
 * pipeline is SIGKILLed, stays down a while (the windows sent meanwhile are lost, and must be
 * counted), and is started again; then influxd comes back. Afterwards, the points in InfluxDB must
 * equal the points produced minus the points counted as dropped.
 *
 *   node dist/bench/durableHistory.js [--outage-seconds N] [--kill-at-seconds N] [--down-seconds N] [--rate N] [--json]
 *
 * Points produced: every aggregate the pipeline published (a subscriber counts them; the feed
 * pauses while a pipeline starts until that subscriber is connected, so it sees every one) makes
 * three points (cage, and cage_role for vm and ids). Points dropped: the restarted pipeline's
 * cage_history_points_dropped_total (the killed one's counters die with it; within the spool's
 * bound both are 0). The short version runs in npm test (test/pipeline/durableHistory.e2e.test.ts);
 * the default here is the issue's: influxd down 10 minutes, the pipeline killed in the middle.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import * as zmq from "zeromq";
import { freePort, InfluxServer, stopChild } from "../lab/common/realServers.js";
import { parsePrometheusText, sumOfMetric } from "../lab/common/prometheusText.js";
import { decodeCageAggregates } from "../protocol/cageAggregate.js";
import { defaultEndpoints } from "../protocol/endpoints.js";
import { MessagePublisher, parseFrames } from "../protocol/messageBus.js";
import { encodeCpuBatch } from "../protocol/rawBatches.js";
import { Encoding, Topic } from "../protocol/wireFormat.js";
import { parseCommandLine } from "../runtime/commandLine.js";
import { benchCommand, runBenchMain } from "./benchMain.js";

const DATABASE = "durable";
const CAGE = "durable";
/** Points per aggregate: one `cage`, one `cage_role` per role (vm, ids). */
const POINTS_PER_AGGREGATE = 3;
const MS = 1_000_000n;

export interface DurableHistoryOptions {
  /** How long influxd stays down. */
  outageMs: number;
  /** When, into the outage, the pipeline is SIGKILLed. */
  killAtMs: number;
  /** How long the pipeline stays down before it is started again. */
  downMs: number;
  /** CPU windows (so aggregates) per second. */
  rate: number;
  /** Before the outage and after it, aggregates flow with influxd up this long. */
  warmMs: number;
  /** agent.influx.bufferPoints of the pipeline. */
  bufferPoints: number;
  /** Progress lines go here (null: quiet). */
  progress: ((line: string) => void) | null;
}

export interface DurableHistoryFigures {
  windowsSent: number;
  /** Windows sent while no pipeline ran: lost, and to be counted as lost by the restarted one. */
  windowsSentWhileDown: number;
  aggregatesProduced: number;
  pointsProduced: number;
  pointsInInflux: number;
  /** The restarted pipeline's cage_history_points_dropped_total, every reason. */
  pointsDropped: number;
  /** cage_history_replayed_points_total of the restarted pipeline: what the killed one left in the spool. */
  pointsReplayed: number;
  tornRecords: number;
  /** cage_pipeline_lost_messages_total{topic="raw.cpu"} of the restarted pipeline. */
  lostMessagesCounted: number;
  /** The spool's size on disk just before influxd came back. */
  spoolBytesBeforeRecovery: number;
  influxDownMs: number;
  pipelineDownMs: number;
  /** From influxd answering again to the last point in InfluxDB. */
  drainMs: number;
  /** pointsInInflux === pointsProduced - pointsDropped. */
  balanced: boolean;
}

/** SELECT count(field) … of the bench's cage as a number (0 when there is no series yet). */
async function countPoints(influx: InfluxServer, field: string, measurement: string): Promise<number> {
  const json = await influx.query(`SELECT count("${field}") FROM "raw"."${measurement}" WHERE cage = '${CAGE}'`, DATABASE);
  const v = json.results?.[0]?.series?.[0]?.values?.[0]?.[1];
  return typeof v === "number" ? v : 0;
}

/** The pipeline process, its log kept for errors and its readiness. */
class PipelineProcess {
  private output = "";
  readonly child: ChildProcess;

  constructor(configPath: string, runtimeDir: string) {
    const main = fileURLToPath(new URL("../pipeline/main.js", import.meta.url));
    this.child = spawn(process.execPath, [main, "--config", configPath, "--runtime-dir", runtimeDir], { stdio: ["ignore", "pipe", "pipe"] });
    const keep = (b: Buffer): void => {
      this.output = (this.output + b.toString("utf8")).slice(-200_000);
    };
    this.child.stdout?.on("data", keep);
    this.child.stderr?.on("data", keep);
  }

  get log(): string {
    return this.output;
  }

  async ready(timeoutMs = 20_000): Promise<void> {
    const t0 = Date.now();
    while (!this.output.includes('"msg":"pipeline started"')) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`the pipeline exited during start-up; log:\n${this.output.slice(-4000)}`);
      if (Date.now() - t0 > timeoutMs) throw new Error(`the pipeline did not start within ${timeoutMs} ms; log:\n${this.output.slice(-4000)}`);
      await sleep(20);
    }
  }
}

/** The pipeline's Prometheus series as name{labels} → value. */
async function scrape(port: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return parsePrometheusText(await res.text());
}

export async function runDurableHistory(o: DurableHistoryOptions): Promise<DurableHistoryFigures> {
  if (!(o.killAtMs >= 0 && o.killAtMs + o.downMs < o.outageMs)) throw new Error(`durable history: need 0 <= killAt and killAt + down < outage, got ${o.killAtMs}, ${o.downMs}, ${o.outageMs}`);
  if (!(o.rate > 0 && o.rate <= 200)) throw new Error(`durable history: rate must be in (0, 200] windows a second, got ${o.rate}`);
  const say = o.progress ?? ((): void => undefined);
  const work = mkdtempSync(join(tmpdir(), "oc-durable-"));
  const runtimeDir = join(work, "run");
  mkdirSync(runtimeDir, { mode: 0o700 });
  const endpoints = defaultEndpoints(runtimeDir);
  const cleanup: (() => Promise<void> | void)[] = [() => rmSync(work, { recursive: true, force: true })];
  try {
    const influx = await InfluxServer.start(join(work, "influxd"), { readyTimeoutMs: 30_000 });
    cleanup.push(() => influx.stop());
    const vm = spawn("sleep", ["86400"], { stdio: "ignore" });
    const ids = spawn("sleep", ["86400"], { stdio: "ignore" });
    cleanup.push(() => stopChild(vm, "SIGKILL"), () => stopChild(ids, "SIGKILL"));
    const promPort = await freePort();
    const configPath = join(work, "cages.json");
    writeFileSync(
      configPath,
      JSON.stringify({
        agent: {
          runtimeDir,
          stateDir: join(work, "state"),
          prometheus: { host: "127.0.0.1", port: promPort },
          logLevel: "info",
          pageCache: false,
          influx: { url: influx.url, database: DATABASE, flushMs: 200, retryMinMs: 100, retryMaxMs: 2000, timeoutMs: 2000, bufferPoints: o.bufferPoints },
        },
        cages: [{ name: CAGE, vm: { kind: "process", match: [{ pid: vm.pid, descendants: false }] }, ids: [{ pid: ids.pid, uid: 0, descendants: false }], cpu: { cap: 100 } }],
      }),
    );

    // The aggregates' subscriber: every aggregate the pipeline publishes, by time.
    const produced = new Set<number>();
    const consumer = new zmq.Subscriber({ linger: 0, reconnectInterval: 10 });
    let consumerConnects = 0;
    consumer.events.on("connect", () => consumerConnects++);
    consumer.connect(endpoints.aggregates);
    consumer.subscribe(Topic.cageAggregates);
    const consuming = (async () => {
      for await (const frames of consumer) {
        const msg = parseFrames(frames);
        if (msg.topic !== Topic.cageAggregates) continue;
        for (const a of decodeCageAggregates(msg.payload).aggregates) produced.add(a.timeMs);
      }
    })().catch(() => undefined);
    cleanup.push(async () => {
      consumer.close();
      await consuming;
    });

    // The fake CPU collector: one window per tick, 50 ms VM and 20 ms IDS.
    const feed = new MessagePublisher();
    await feed.bind(endpoints.collectors.cpu!);
    cleanup.push(() => feed.close());
    let paused = true;
    let pipelineDown = false;
    let windowsSent = 0;
    let windowsSentWhileDown = 0;
    const windowNs = BigInt(Math.round(1e9 / o.rate));
    const ticker = setInterval(() => {
      if (paused) return;
      const end = process.hrtime.bigint();
      const batch = encodeCpuBatch({
        windowStartNs: end - windowNs,
        windowEndNs: end,
        processes: [
          { pid: vm.pid!, cpuNs: 50 * Number(MS) },
          { pid: ids.pid!, cpuNs: 20 * Number(MS) },
        ],
        threads: [],
      });
      void feed.publish(Topic.rawCpu, Encoding.cpuBatch, batch);
      windowsSent++;
      if (pipelineDown) windowsSentWhileDown++;
    }, 1000 / o.rate);
    cleanup.push(() => clearInterval(ticker));

    /** Starts a pipeline; the feed resumes once it runs and the aggregates' subscriber is connected to it. */
    const startPipeline = async (): Promise<PipelineProcess> => {
      paused = true;
      const connectsBefore = consumerConnects;
      const p = new PipelineProcess(configPath, runtimeDir);
      cleanup.push(() => stopChild(p.child));
      await p.ready();
      const t0 = Date.now();
      while (consumerConnects === connectsBefore) {
        if (Date.now() - t0 > 10_000) throw new Error("the aggregates' subscriber did not connect to the pipeline within 10 s");
        await sleep(10);
      }
      await sleep(300); // the subscriptions travel both ways (ZeroMQ slow joiner)
      paused = false;
      return p;
    };

    let pipeline = await startPipeline();
    say(`pipeline up (pid ${pipeline.child.pid}), influxd at ${influx.url}; aggregates flowing at ${o.rate}/s`);
    await sleep(o.warmMs);

    await influx.kill();
    const influxDownAt = Date.now();
    say(`influxd killed; down for ${o.outageMs / 1000} s`);
    await sleep(o.killAtMs);
    const killed = new Promise((r) => pipeline.child.once("exit", r));
    pipelineDown = true; // windows sent from here on reach no pipeline
    pipeline.child.kill("SIGKILL");
    await killed;
    const pipelineDownAt = Date.now();
    say(`pipeline SIGKILLed ${Math.round((pipelineDownAt - influxDownAt) / 1000)} s into the outage; down for ${o.downMs / 1000} s`);
    await sleep(o.downMs);
    pipelineDown = false;
    pipeline = await startPipeline();
    const pipelineDownMs = Date.now() - pipelineDownAt;
    say(`pipeline restarted (pid ${pipeline.child.pid}) after ${pipelineDownMs} ms`);

    await sleep(Math.max(0, influxDownAt + o.outageMs - Date.now()));
    const spoolBytesBeforeRecovery = sumOfMetric(await scrape(promPort), "cage_history_spool_bytes");
    await influx.restart();
    const influxBackAt = Date.now();
    const influxDownMs = influxBackAt - influxDownAt;
    say(`influxd back after ${influxDownMs} ms; spool held ${spoolBytesBeforeRecovery} bytes`);
    await sleep(o.warmMs);
    paused = true;
    clearInterval(ticker);
    await sleep(500); // the last windows reach the pipeline

    // Drained: the spool is empty and InfluxDB holds what the subscriber saw (or stops changing).
    const expectedCage = produced.size;
    let inflxCage = 0;
    let lastChange = Date.now();
    const drainDeadline = Date.now() + 120_000 + o.outageMs;
    let drainMs = 0;
    for (;;) {
      const [cage, buffered] = [await countPoints(influx, "cpu_cores", "cage"), sumOfMetric(await scrape(promPort), "cage_history_buffered_points")];
      if (cage !== inflxCage) {
        inflxCage = cage;
        lastChange = Date.now();
        drainMs = lastChange - influxBackAt;
      }
      if ((cage >= expectedCage && buffered === 0) || Date.now() - lastChange > 15_000 || Date.now() > drainDeadline) break;
      await sleep(250);
    }
    const series = await scrape(promPort);
    const roles = await countPoints(influx, "cpu_cores", "cage_role");
    const pointsProduced = produced.size * POINTS_PER_AGGREGATE;
    const pointsInInflux = inflxCage + roles;
    const pointsDropped = sumOfMetric(series, "cage_history_points_dropped_total");
    const figures: DurableHistoryFigures = {
      windowsSent,
      windowsSentWhileDown,
      aggregatesProduced: produced.size,
      pointsProduced,
      pointsInInflux,
      pointsDropped,
      pointsReplayed: sumOfMetric(series, "cage_history_replayed_points_total"),
      tornRecords: sumOfMetric(series, "cage_history_spool_torn_records_total"),
      lostMessagesCounted: series.get('cage_pipeline_lost_messages_total{topic="raw.cpu"}') ?? 0,
      spoolBytesBeforeRecovery,
      influxDownMs,
      pipelineDownMs,
      drainMs,
      balanced: pointsInInflux === pointsProduced - pointsDropped,
    };
    if (!figures.balanced) say(`unbalanced; the pipeline's log ends:\n${pipeline.log.slice(-3000)}`);
    return figures;
  } finally {
    for (const step of cleanup.reverse()) {
      try {
        await step();
      } catch {
        // best effort: the rest must still be released
      }
    }
  }
}

const DURABLE_COMMAND = benchCommand("durableHistory", "influxd killed for the outage, the pipeline SIGKILLed during it: points in InfluxDB = produced - dropped.", {
  "outage-seconds": { type: "integer", value: "N", min: 2, max: 86_400, help: "how long influxd stays down (default 600)" },
  "kill-at-seconds": { type: "integer", value: "N", min: 0, max: 86_400, help: "when, into the outage, the pipeline is SIGKILLed (default half the outage)" },
  "down-seconds": { type: "integer", value: "N", min: 0, max: 3_600, help: "how long the pipeline stays down (default 5)" },
  rate: { type: "integer", value: "N", min: 1, max: 200, help: "aggregates a second (default 20)" },
});

export async function main(argv: string[]): Promise<void> {
  const { values } = parseCommandLine(DURABLE_COMMAND, argv);
  const outageMs = (values["outage-seconds"] ?? 600) * 1000;
  const options: DurableHistoryOptions = {
    outageMs,
    killAtMs: values["kill-at-seconds"] !== undefined ? values["kill-at-seconds"] * 1000 : Math.floor(outageMs / 2),
    downMs: (values["down-seconds"] ?? 5) * 1000,
    rate: values.rate ?? 20,
    warmMs: 3000,
    bufferPoints: 200_000,
    progress: values.json ? null : (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
  };
  const f = await runDurableHistory(options);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(f)}\n`);
  } else {
    const rows: [string, string | number | boolean][] = [
      ["influxd down (ms)", f.influxDownMs],
      ["pipeline down (ms)", f.pipelineDownMs],
      ["aggregates produced", f.aggregatesProduced],
      ["points produced", f.pointsProduced],
      ["points dropped (counted)", f.pointsDropped],
      ["points in InfluxDB", f.pointsInInflux],
      ["in InfluxDB = produced - dropped", f.balanced],
      ["points replayed from the spool", f.pointsReplayed],
      ["torn records", f.tornRecords],
      ["spool on disk before influxd came back (bytes)", f.spoolBytesBeforeRecovery],
      ["drain after influxd came back (ms)", f.drainMs],
      ["CPU windows sent", f.windowsSent],
      ["windows sent while the pipeline was down", f.windowsSentWhileDown],
      ["lost raw.cpu messages counted", f.lostMessagesCounted],
    ];
    for (const [k, v] of rows) process.stdout.write(`${k.padEnd(48)} ${String(v)}\n`);
  }
  if (!f.balanced) process.exitCode = 1;
}

runBenchMain(import.meta.url, main);
