/**
 * Pipeline ingest benchmark: raw CPU events per second the pipeline decodes and aggregates,
 * beside a bare ZeroMQ PUSH/PULL moving the same bytes, in the same run, as a ratio.
 *
 *   node dist/bench/pipelineIngest.js [--seconds N] [--processes N] [--threads N] [--cages N,N,...] [--rounds N] [--json]
 *
 * Both legs use the same sender (a child process, as a real collector is) and the same frames:
 * one CpuBatch of realistic size (default 200 processes + 400 threads = 600 events, 8.8 KB) over
 * ipc://. The bare leg only receives. The pipeline leg receives through MessageSubscriber.receiveEach
 * (frame, header and sequence checks), reads the batch in place with CpuBatchView and charges every
 * record to cages with CageAggregator.chargeCpuView, as pipelineService does; it runs once per cage
 * count (default 10, 100 and 1,000 cages) to show the per-message cost does not grow with cages.
 * Two in-memory figures per cage count show how much of the gap is our code rather than the
 * transport: decode + charge alone, and the same plus building every cage's aggregate object,
 * which the service does once per window to publish them (that part is one object per cage).
 *
 * Each round runs the bare leg, then the pipeline leg at each cage count; every figure is the
 * median over rounds, and each ratio the median of the per-round ratios, so load that comes and
 * goes on a shared machine hits both sides alike.
 *
 * PUSH blocks at its high-water mark, so the bare leg runs as fast as the slower side. PUB never
 * blocks (it drops), so the pipeline leg's sender is paced by credits (the receiver reports the last
 * sequence it handled over the child's IPC channel): it never runs more than CREDIT_WINDOW messages
 * ahead, and the pipeline leg measures the fastest rate the pipeline keeps up with without loss.
 * Messages lost anyway are counted from sequence gaps and reported.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as zmq from "zeromq";
import type { CageSpec } from "../config/cageConfig.js";
import { CageAggregator, type CagePids } from "../pipeline/cageAggregator.js";
import { MessagePublisher, MessageSubscriber } from "../protocol/messageBus.js";
import { CpuBatchView, encodeCpuBatch, type CpuBatch } from "../protocol/rawBatches.js";
import { encodeHeader, Encoding, PROTOCOL_VERSION, Topic } from "../protocol/wireFormat.js";
import { runBenchMain } from "./benchMain.js";

const USAGE = "usage: pipelineIngest [--seconds N] [--processes N] [--threads N] [--cages N,N,...] [--rounds N] [--json]";
const WARMUP_MS = 300;
/** Messages the PUB sender may be ahead of the pipeline; well under both high-water marks. */
const CREDIT_WINDOW = 2000;
const DEFAULT_CAGES = [10, 100, 1000];
const VM_PIDS_PER_CAGE = 5;
const IDS_PIDS_PER_CAGE = 2;

interface BenchOptions {
  seconds: number;
  processes: number;
  threads: number;
  /** Cage counts the pipeline leg runs with, one run each. */
  cages: number[];
  rounds: number;
  json: boolean;
}

export interface LegResult {
  messages: number;
  /** CPU seconds per second this (receiving) process used, ZeroMQ I/O thread included; 1 = one core. */
  receiverCpu: number | null;
  seconds: number;
  messagesPerSecond: number;
  eventsPerSecond: number;
  megabytesPerSecond: number;
}

export interface CageCountResult {
  cages: number;
  pipeline: LegResult & { lostMessages: number };
  /** decode + charge on an in-memory buffer, no socket. */
  decodeChargeOnly: LegResult;
  /** decode + charge + every cage's aggregate object built, no socket. */
  decodeChargeBuildOnly: LegResult;
  /** Median over rounds of pipeline events/s ÷ the same round's bare events/s. */
  ratio: number;
}

export interface PipelineIngestResult {
  rounds: number;
  frameBytes: number;
  eventsPerMessage: number;
  processesPerMessage: number;
  threadsPerMessage: number;
  transport: "ipc";
  loadBefore: number[];
  loadAfter: number[];
  bare: LegResult;
  byCages: CageCountResult[];
  /** The lowest pipeline / bare ratio over the cage counts. */
  ratio: number;
  /** Pipeline events/s at the most cages ÷ at the fewest (1 = flat). */
  mostOverFewestCages: number;
}

/**
 * Rounds by default: on a 2-core host a burst of other load can slow one leg of a round, and a
 * median of three still moved with it (0.76 once where seven-round medians gave 0.88–0.92).
 */
const DEFAULT_ROUNDS = 7;

function parseOptions(argv: readonly string[]): BenchOptions & { role: string | null; endpoint: string | null } {
  const o = { seconds: 3, processes: 200, threads: 400, cages: DEFAULT_CAGES, rounds: DEFAULT_ROUNDS, json: false, role: null as string | null, endpoint: null as string | null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`pipelineIngest: ${a} needs a value\n${USAGE}`);
      return v;
    };
    const positive = (name: string, v: string, integer: boolean): number => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new Error(`pipelineIngest: ${name} must be a positive ${integer ? "integer" : "number"}, got ${JSON.stringify(v)}`);
      return n;
    };
    if (a === "--json") o.json = true;
    else if (a === "--seconds") o.seconds = positive(a, value(), false);
    else if (a === "--processes") o.processes = positive(a, value(), true);
    else if (a === "--threads") o.threads = positive(a, value(), true);
    else if (a === "--rounds") o.rounds = positive(a, value(), true);
    else if (a === "--cages") o.cages = value().split(",").map((v) => positive(a, v, true));
    else if (a === "--role") o.role = value();
    else if (a === "--endpoint") o.endpoint = value();
    else throw new Error(`pipelineIngest: unknown argument ${JSON.stringify(a)}\n${USAGE}`);
  }
  return o;
}

/** A deterministic batch: PIDs 1000.., two threads per process (as many as asked), plausible times. */
export function benchBatch(processes: number, threads: number): CpuBatch {
  const end = 1_000_000_000_000n;
  const batch: CpuBatch = { windowStartNs: end - 100_000_000n, windowEndNs: end, processes: [], threads: [] };
  for (let i = 0; i < processes; i++) batch.processes.push({ pid: 1000 + i, cpuNs: 10_000 + ((i * 7919) % 5_000_000) });
  for (let i = 0; i < threads; i++) {
    const pid = 1000 + (i % processes);
    batch.threads.push({ pid, tid: pid + 100_000 + i, cpuNs: 5_000 + ((i * 104_729) % 2_500_000) });
  }
  return batch;
}

/** `count` cages over the batch's first PIDs: some records hit a VM, some an IDS, the rest no cage. */
function benchCages(count: number): { cages: CageSpec[]; membership: Map<string, CagePids> } {
  const cages: CageSpec[] = [];
  const membership = new Map<string, CagePids>();
  let pid = 1000;
  for (let c = 0; c < count; c++) {
    const name = `cage${c}`;
    cages.push({ name, vm: { kind: "process", match: [] }, ids: [], cpu: { cap: 100, idsCap: 30, weight: null }, memory: null });
    const vm = Array.from({ length: VM_PIDS_PER_CAGE }, () => pid++);
    const ids = Array.from({ length: IDS_PIDS_PER_CAGE }, () => pid++);
    // Start times are only carried through to the aggregates; any distinct values do.
    membership.set(name, { vm, ids, startTimes: new Map([...vm, ...ids].map((p) => [p, p * 10])) });
  }
  return { cages, membership };
}

function newAggregator(count: number): CageAggregator {
  const { cages, membership } = benchCages(count);
  const aggregator = new CageAggregator(cages);
  aggregator.setMembership(membership);
  return aggregator;
}

function leg(messages: number, seconds: number, eventsPerMessage: number, frameBytes: number, cpuSeconds: number | null): LegResult {
  return {
    messages,
    receiverCpu: cpuSeconds === null ? null : cpuSeconds / seconds,
    seconds,
    messagesPerSecond: messages / seconds,
    eventsPerSecond: (messages * eventsPerMessage) / seconds,
    megabytesPerSecond: (messages * frameBytes) / seconds / 1e6,
  };
}

// ---- sender (child process) ----

async function runSender(role: string, endpoint: string, processes: number, threads: number): Promise<void> {
  const payload = encodeCpuBatch(benchBatch(processes, threads));
  let running = true;
  process.once("SIGTERM", () => {
    running = false;
  });
  if (role === "push") {
    const push = new zmq.Push({ sendHighWaterMark: 1000, linger: 0 });
    push.connect(endpoint);
    const header = encodeHeader({ version: PROTOCOL_VERSION, encoding: Encoding.cpuBatch, publisherId: 1, sequence: 0n, sentAtUs: 0n });
    const topic = Buffer.from(Topic.rawCpu);
    while (running) await push.send([topic, header, payload]);
    push.close();
  } else if (role === "pub") {
    // PUB has no backpressure: credit-based pacing (the receiver reports the last sequence it
    // handled) keeps the sender at most CREDIT_WINDOW ahead, so neither drops nor a spinning
    // sender distort what we measure. Without an ack for a while (slow joiner), it sends anyway.
    const publisher = new MessagePublisher();
    await publisher.bind(endpoint);
    let acked = -1;
    let wake: (() => void) | null = null;
    process.on("message", (m: { seq?: number }) => {
      if (typeof m.seq === "number" && m.seq > acked) acked = m.seq;
      wake?.();
    });
    let sent = 0;
    while (running) {
      if (sent - 1 - acked >= CREDIT_WINDOW) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 100);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = null;
        if (sent - 1 - acked >= CREDIT_WINDOW) acked = sent - 1 - CREDIT_WINDOW / 2; // no ack: assume lost, go on
        continue;
      }
      await publisher.publish(Topic.rawCpu, Encoding.cpuBatch, payload);
      sent++;
    }
    process.removeAllListeners("message");
    process.channel?.unref();
    await publisher.close();
  } else {
    throw new Error(`pipelineIngest: unknown role ${JSON.stringify(role)}`);
  }
}

function startSender(role: "push" | "pub", endpoint: string, o: BenchOptions): ChildProcess {
  const self = fileURLToPath(import.meta.url);
  return spawn(process.execPath, [self, "--role", role, "--endpoint", endpoint, "--processes", String(o.processes), "--threads", String(o.threads)], {
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
}

async function stopSender(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 2000);
  await exited;
  clearTimeout(timer);
}

// ---- receivers (this process) ----

function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(start);
  return (u.user + u.system) / 1e6;
}

async function bareLeg(endpoint: string, o: BenchOptions): Promise<{ messages: number; cpuSeconds: number }> {
  const pull = new zmq.Pull({ receiveHighWaterMark: 1000, receiveTimeout: 5000, linger: 0 });
  await pull.bind(endpoint);
  const sender = startSender("push", endpoint, o);
  try {
    await pull.receive();
    const warmEnd = performance.now() + WARMUP_MS;
    while (performance.now() < warmEnd) await pull.receive();
    let n = 0;
    const cpu = process.cpuUsage();
    const end = performance.now() + o.seconds * 1000;
    while (performance.now() < end) {
      await pull.receive();
      n++;
    }
    return { messages: n, cpuSeconds: cpuSecondsSince(cpu) };
  } finally {
    await stopSender(sender);
    pull.close();
  }
}

async function pipelineLeg(endpoint: string, o: BenchOptions, cageCount: number): Promise<{ messages: number; lost: number; cpuSeconds: number }> {
  const sender = startSender("pub", endpoint, o);
  const subscriber = new MessageSubscriber();
  const aggregator = newAggregator(cageCount);
  // The pipeline connects to the collector's bound PUB; retry until the child has bound.
  subscriber.connect(endpoint);
  subscriber.subscribe(Topic.rawCpu);
  const failStart = setTimeout(() => subscriber.close(), 10_000);
  let messages = 0;
  let lostAtStart = 0;
  let cpu = process.cpuUsage();
  const run: { phase: "warmup" | "measure" | "done" } = { phase: "warmup" };
  let phaseEnd = Number.POSITIVE_INFINITY;
  try {
    await subscriber.receiveEach(
      (msg) => {
        if (run.phase === "done") return;
        if (phaseEnd === Number.POSITIVE_INFINITY) {
          clearTimeout(failStart);
          phaseEnd = performance.now() + WARMUP_MS;
        }
        aggregator.chargeCpuView(new CpuBatchView(msg.payload), 0);
        if ((msg.header.sequence & 127n) === 0n) sender.send({ seq: Number(msg.header.sequence) });
        if (run.phase === "measure") messages++;
        if (performance.now() >= phaseEnd) {
          if (run.phase === "measure") {
            run.phase = "done";
            subscriber.close();
            return;
          }
          run.phase = "measure";
          lostAtStart = subscriber.sequences.lostTotal;
          cpu = process.cpuUsage();
          phaseEnd = performance.now() + o.seconds * 1000;
        }
      },
      (err) => {
        throw err;
      },
    );
    if (run.phase !== "done") throw new Error("pipelineIngest: no messages reached the pipeline leg");
    return { messages, lost: subscriber.sequences.lostTotal - lostAtStart, cpuSeconds: cpuSecondsSince(cpu) };
  } finally {
    clearTimeout(failStart);
    subscriber.close();
    await stopSender(sender);
  }
}

function decodeChargeOnly(payload: Buffer, seconds: number, cageCount: number, build: boolean): number {
  const aggregator = newAggregator(cageCount);
  let n = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) {
      aggregator.chargeCpuView(new CpuBatchView(payload), 0);
      if (build) aggregator.windowAggregates();
    }
    n += 100;
  }
  return n;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The round whose events/s is the median (upper median for an even count), so its figures belong together. */
function medianLeg<T extends LegResult>(legs: T[]): T {
  const sorted = [...legs].sort((x, y) => x.eventsPerSecond - y.eventsPerSecond);
  return sorted[sorted.length >> 1]!;
}

export async function runPipelineIngest(o: BenchOptions): Promise<PipelineIngestResult> {
  const payload = encodeCpuBatch(benchBatch(o.processes, o.threads));
  const frameBytes = Topic.rawCpu.length + 24 + payload.length;
  const events = o.processes + o.threads;
  const dir = mkdtempSync(join(tmpdir(), "oc-ingest-"));
  const loadBefore = loadavg();
  const onlySeconds = Math.min(o.seconds, 1);
  try {
    const bareRounds: LegResult[] = [];
    const pipelineRounds = o.cages.map(() => [] as (LegResult & { lostMessages: number })[]);
    const ratioRounds = o.cages.map(() => [] as number[]);
    for (let round = 0; round < o.rounds; round++) {
      const bareRun = await bareLeg(`ipc://${join(dir, `bare-${round}.sock`)}`, o);
      const bare = leg(bareRun.messages, o.seconds, events, frameBytes, bareRun.cpuSeconds);
      bareRounds.push(bare);
      for (const [k, cages] of o.cages.entries()) {
        const pipe = await pipelineLeg(`ipc://${join(dir, `pipeline-${round}-${cages}.sock`)}`, o, cages);
        const pipeline = leg(pipe.messages, o.seconds, events, frameBytes, pipe.cpuSeconds);
        pipelineRounds[k]!.push({ ...pipeline, lostMessages: pipe.lost });
        ratioRounds[k]!.push(pipeline.eventsPerSecond / bare.eventsPerSecond);
      }
    }
    const byCages: CageCountResult[] = o.cages.map((cages, k) => ({
      cages,
      pipeline: medianLeg(pipelineRounds[k]!),
      decodeChargeOnly: leg(decodeChargeOnly(payload, onlySeconds, cages, false), onlySeconds, events, frameBytes, null),
      decodeChargeBuildOnly: leg(decodeChargeOnly(payload, onlySeconds, cages, true), onlySeconds, events, frameBytes, null),
      ratio: median(ratioRounds[k]!),
    }));
    const fewest = byCages.reduce((x, y) => (y.cages < x.cages ? y : x));
    const most = byCages.reduce((x, y) => (y.cages > x.cages ? y : x));
    return {
      rounds: o.rounds,
      frameBytes,
      eventsPerMessage: events,
      processesPerMessage: o.processes,
      threadsPerMessage: o.threads,
      transport: "ipc",
      loadBefore,
      loadAfter: loadavg(),
      bare: medianLeg(bareRounds),
      byCages,
      ratio: Math.min(...byCages.map((c) => c.ratio)),
      mostOverFewestCages: most.pipeline.eventsPerSecond / fewest.pipeline.eventsPerSecond,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(r: PipelineIngestResult): string {
  const f = (n: number): string => Math.round(n).toLocaleString("en-US");
  const line = (name: string, l: LegResult): string =>
    `  ${name.padEnd(34)} ${f(l.messagesPerSecond).padStart(9)} msg/s  ${f(l.eventsPerSecond).padStart(12)} events/s  ${l.megabytesPerSecond.toFixed(0).padStart(5)} MB/s${l.receiverCpu === null ? "" : `  receiver CPU ${l.receiverCpu.toFixed(2)}`}`;
  const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(" ");
  return [
    `pipeline ingest: CpuBatch of ${r.processesPerMessage} processes + ${r.threadsPerMessage} threads = ${r.eventsPerMessage} events, ${r.frameBytes} bytes/message, over ${r.transport}://; medians of ${r.rounds} rounds`,
    `  load average before ${load(r.loadBefore)}, after ${load(r.loadAfter)}`,
    line("bare zeromq PUSH/PULL", r.bare),
    ...r.byCages.flatMap((c) => [
      line(`pipeline, ${c.cages} cages (SUB+decode+charge)`, c.pipeline),
      `  ${"".padEnd(34)} lost (sequence gaps): ${f(c.pipeline.lostMessages)} messages; ratio pipeline / bare (events/s): ${c.ratio.toFixed(2)}`,
      line(`  decode+charge only (no socket)`, c.decodeChargeOnly),
      line(`  + build ${c.cages} aggregates/msg`, c.decodeChargeBuildOnly),
    ]),
    `  lowest ratio pipeline / bare: ${r.ratio.toFixed(2)}; events/s at the most cages / at the fewest: ${r.mostOverFewestCages.toFixed(2)}`,
  ].join("\n");
}

export async function main(argv: string[]): Promise<void> {
  const o = parseOptions(argv);
  if (o.role !== null) {
    if (o.endpoint === null) throw new Error(`pipelineIngest: --role needs --endpoint\n${USAGE}`);
    await runSender(o.role, o.endpoint, o.processes, o.threads);
    return;
  }
  const result = await runPipelineIngest(o);
  process.stdout.write(o.json ? `${JSON.stringify(result)}\n` : `${report(result)}\n`);
}

runBenchMain(import.meta.url, main);
