/**
 * The pipeline service in-process, end to end over real ZeroMQ ipc:// sockets, a real /proc
 * resolution of real processes, and a real Prometheus endpoint. The CPU and memory batches come
 * from a fake collector (the real collectors are tested on their own).
 */
import { spawn, spawnSync } from "node:child_process";
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import * as zmq from "zeromq";
import { DEFAULT_INFLUX } from "../../config/loadConfig.js";
import { ACTUATOR_VALUES, ALL_METRICS, Metric, prometheusName } from "../../pipeline/metricNames.js";
import type { ActuatorDecision, ActuatorState } from "../../protocol/actuatorMessages.js";
import { PipelineService } from "../../pipeline/pipelineService.js";
import { procMembershipResolver } from "../../pipeline/procMembership.js";
import { encodeJson, decodeCageAggregate, decodeCageAggregates, decodeCageIdsMemoryUpdate, type CageAggregate, type CageIdsMemory, type CollectorStatus } from "../../protocol/cageAggregate.js";
import { decodeCageMembers, type CageMembersMessage } from "../../protocol/cageMembers.js";
import type { Endpoints } from "../../protocol/endpoints.js";
import { MessagePublisher, MessageSubscriber } from "../../protocol/messageBus.js";
import { encodeCpuBatch, encodeMemoryBatch, encodePageCacheBatch } from "../../protocol/rawBatches.js";
import { Encoding, encodeHeader, PROTOCOL_VERSION, Topic } from "../../protocol/wireFormat.js";
import {
  agentConfig,
  cageByPid,
  capturingLogger,
  httpGet,
  metricNamesIn,
  PATIENT_MS,
  startSleeper,
  stopProcess,
  TEST_STATE_DIR,
  waitFor,
  waitForResending,
} from "./pipelineHarness.js";
import { parsePrometheusText } from "../../lab/common/prometheusText.js";

const tempDir = mkdtempSync(join(tmpdir(), "oc-pipeline-"));
after(() => rmSync(tempDir, { recursive: true, force: true }));
after(() => rmSync(TEST_STATE_DIR, { recursive: true, force: true }));

let run = 0;
function endpoints(): Endpoints {
  const dir = join(tempDir, `run${++run}`);
  return {
    collectors: { cpu: `ipc://${dir}-cpu.sock`, memory: `ipc://${dir}-memory.sock`, pagecache: `ipc://${dir}-pagecache.sock` },
    aggregates: `ipc://${dir}-aggregates.sock`,
    actuators: { balloon: `ipc://${dir}-actuator-balloon.sock` },
  };
}

const MS = 1_000_000n;
const UNKNOWN_PID = 0x3fff_fff0; // above pid_max: never a real process

/**
 * What the fake collector reports for one 100 ms window: 50 ms VM, 20 ms IDS, 30 ms elsewhere,
 * and with qemuPid 10 ms of that process (a QEMU cage's VM whose one thread is no vCPU or vhost).
 */
function cpuWindow(vmPid: number, idsPid: number, qemuPid?: number): Buffer {
  const end = process.hrtime.bigint();
  const qemu = qemuPid === undefined ? [] : [{ pid: qemuPid, cpuNs: 10_000_000 }];
  return encodeCpuBatch({
    windowStartNs: end - 100n * MS,
    windowEndNs: end,
    processes: [
      { pid: vmPid, cpuNs: 50_000_000 },
      { pid: idsPid, cpuNs: 20_000_000 },
      { pid: UNKNOWN_PID, cpuNs: 30_000_000 },
      ...qemu,
    ],
    threads: [
      { pid: vmPid, tid: vmPid, cpuNs: 50_000_000 },
      { pid: idsPid, tid: idsPid, cpuNs: 20_000_000 },
      ...qemu.map((q) => ({ pid: q.pid, tid: q.pid, cpuNs: q.cpuNs })),
    ],
  });
}

const VM_RSS = 300 << 20;
const IDS_RSS = 120 << 20;

function memorySample(vmPid: number, idsPid: number): Buffer {
  const mem = (pid: number, rss: number) => ({ pid, vmRssBytes: rss, rssAnonBytes: rss, rssFileBytes: 0, rssShmemBytes: 0, vmHwmBytes: rss });
  return encodeMemoryBatch({ sampledAtNs: process.hrtime.bigint(), processes: [mem(vmPid, VM_RSS), mem(idsPid, IDS_RSS)] });
}

void test("fake collector batches in → right CageAggregates out, on the Prometheus endpoint, through garbage and membership changes", async () => {
  const vm = startSleeper();
  const ids = startSleeper();
  const qemu = startSleeper();
  const ep = endpoints();
  // A qemu-kind cage too: only it has CPU by kind.
  const qemuCage = { ...cageByPid("q", qemu.pid, 0x3fff_fff1), vm: { kind: "qemu" as const, match: [{ pid: qemu.pid, descendants: false }], qmpSocket: join(tempDir, "qmp.sock") } };
  const config = agentConfig([qemuCage, cageByPid("e2e", vm.pid, ids.pid)]);
  const { logger, records } = capturingLogger();
  const fakeCpuCollector = new MessagePublisher();
  const fakeMemoryCollector = new MessagePublisher();
  // No actuator is merged yet: a test publisher sends act.state / act.decision as one would.
  const fakeBalloonActuator = new MessagePublisher();
  const garbageSender = new zmq.Publisher({ linger: 0 });
  const consumer = new MessageSubscriber();
  const service = new PipelineService({
    config,
    endpoints: ep,
    resolveMembership: procMembershipResolver(config.cages, logger),
    logger,
    identity: { host: "node-17.dc1", instanceId: "6c1e5b9e-0000-5000-8000-000000000001", serviceName: "offloadcage", serviceVersion: "9.9.9", hostWarning: null },
    prometheus: { host: "127.0.0.1", port: 0 },
    otlp: null,
    // History on, InfluxDB unreachable (nothing listens on port 1): the pipeline must not care.
    influx: { ...DEFAULT_INFLUX, url: "http://127.0.0.1:1", retryMinMs: 50, retryMaxMs: 200, timeoutMs: 500 },
  });
  const received: CageAggregate[] = [];
  const receivedOneByOne: CageAggregate[] = [];
  let consuming: Promise<void> | undefined;
  try {
    await fakeCpuCollector.bind(ep.collectors.cpu!);
    await fakeMemoryCollector.bind(ep.collectors.memory!);
    await garbageSender.bind(ep.collectors.pagecache!);
    await fakeBalloonActuator.bind(ep.actuators!.balloon!);
    await service.start();
    const port = service.prometheusAddress?.port;
    assert.ok(port !== undefined && port > 0, "a free port was picked");

    consumer.connect(ep.aggregates);
    // Both: every cage's window in one agg.window message, and agg.cage per cage since someone asks for it.
    consumer.subscribe(Topic.cageAggregates, Topic.cageAggregate);
    consuming = (async () => {
      // Only e2e's: the figures below are its; the QEMU cage's are read from the aggregator.
      for await (const m of consumer.messages(() => {})) {
        if (m.topic === Topic.cageAggregates) {
          const decoded = decodeCageAggregates(m.payload);
          assert.deepEqual(decoded.rejected, []);
          assert.deepEqual(decoded.aggregates.map((a) => a.cage), config.cages.map((c) => c.name), "one aggregate per cage, in the file's order");
          const aggregate = decoded.aggregates.find((a) => a.cage === "e2e");
          if (aggregate !== undefined) received.push(aggregate);
        } else if (m.topic === Topic.cageAggregate) {
          const aggregate = decodeCageAggregate(m.payload);
          if (aggregate.cage === "e2e") receivedOneByOne.push(aggregate);
        }
      }
    })();

    // The first resolution ran during start(): the real sleep processes are the cage.
    assert.deepEqual(service.aggregator.pids("e2e", "vm"), [vm.pid]);
    assert.deepEqual(service.aggregator.pids("e2e", "ids"), [ids.pid]);

    // Keep sending until the subscriptions have propagated both ways (ZeroMQ slow joiner). The
    // pipeline sees the agg.cage subscription later than ZeroMQ passes agg.window, so wait for a
    // window that came on both.
    const complete = (a: CageAggregate): boolean => a.ids.rssBytes === IDS_RSS && a.vm.rssBytes === VM_RSS;
    const onBoth = (): CageAggregate | undefined => received.find((a) => complete(a) && receivedOneByOne.some((one) => one.timeMs === a.timeMs));
    await waitFor("a complete aggregate on agg.window and agg.cage", () => {
      if (onBoth() !== undefined) return true;
      void fakeMemoryCollector.publish(Topic.rawMemory, Encoding.memoryBatch, memorySample(vm.pid, ids.pid));
      void fakeCpuCollector.publish(Topic.rawCpu, Encoding.cpuBatch, cpuWindow(vm.pid, ids.pid, qemu.pid));
      return false;
    });
    const a = onBoth()!;
    assert.equal(a.cage, "e2e");
    assert.equal(a.v, 1);
    assert.equal(a.windowSeconds, 0.1);
    assert.equal(a.vm.cpuPct, 50);
    assert.equal(a.ids.cpuPct, 20);
    assert.equal(a.totalPct, 70);
    assert.deepEqual(a.vm.pids, [vm.pid]);
    assert.deepEqual(a.ids.pids, [ids.pid]);
    assert.equal(a.capPct, 150);
    assert.equal(a.idsCapPct, 40);
    assert.equal(a.weight, 2);
    assert.deepEqual(a.memory, { baseBytes: 2 * 2 ** 30, floorBytes: 512 << 20 });
    assert.ok(Math.abs(a.timeMs - Date.now()) < 5000, `timeMs ${a.timeMs} is wall-clock time`);
    assert.deepEqual(receivedOneByOne.find((one) => one.timeMs === a.timeMs), a);

    const status: CollectorStatus = { v: 1, collector: "cpu", state: "running", counters: { restarts: 2, lostEvents: 7, unknownLines: 1, badEntries: 2, callbackErrors: 3, publishFailed: 1, skippedWindows: 5, mapFull: 6, untrackedBytes: 4096, windows: 99 }, timeMs: Date.now() };
    await fakeCpuCollector.publish(Topic.status, Encoding.json, encodeJson(status));
    await waitFor("the status message", () => service.collectorRestarts.get("cpu") === 2);

    const values = { vmCpuCapPct: 1, vmCpuWeight: 2, idsCapPct: 3, idsStoppedPids: 4, vmTargetBytes: 5, vmActualBytes: 6, movedBytes: 7, hostTargetBytes: 8, balloonStuck: 1, backendErrors: 3, invalidAggregates: 4 };
    const actState: ActuatorState = { v: 1, actuator: "balloon", cage: "e2e", timeMs: Date.now(), mode: "failsafe", backend: "qmp", values };
    const decision: ActuatorDecision = { v: 1, actuator: "balloon", cage: "e2e", timeMs: Date.now(), setting: "vm.memory.target", from: 9, to: 5, reason: "ids grew", dryRun: false };
    await waitFor("the actuator state", () => {
      void fakeBalloonActuator.publish(Topic.actuatorState, Encoding.json, encodeJson(actState));
      return service.actuators.current(Date.now()).length === 1;
    });
    await fakeBalloonActuator.publish(Topic.actuatorDecision, Encoding.json, encodeJson(decision));
    await waitFor("the decision", () => service.actuators.decisionCounts().length === 1);
    await waitFor("a failed history write", () => (service.history?.stats.failedWrites ?? 0) > 0);

    // Scrape the real endpoint.
    const res = await httpGet(`http://127.0.0.1:${port}/metrics`);
    assert.equal(res.status, 200);
    const series = parsePrometheusText(res.body);
    assert.equal(series.get('cage_cpu_cap_cores{cage="e2e"}'), 1.5);
    assert.equal(series.get('cage_ids_cpu_cap_cores{cage="e2e"}'), 0.4);
    assert.equal(series.get('cage_memory_rss_bytes{cage="e2e",role="vm"}'), VM_RSS);
    assert.equal(series.get('cage_memory_rss_bytes{cage="e2e",role="ids"}'), IDS_RSS);
    assert.equal(series.get('cage_memory_base_bytes{cage="e2e"}'), 2 * 2 ** 30);
    assert.equal(series.get('cage_memory_floor_bytes{cage="e2e"}'), 512 << 20);
    assert.equal(series.get('cage_processes{cage="e2e",role="vm"}'), 1);
    const batches = service.aggregator.stats.cpuBatches;
    assertClose(series.get('cage_cpu_seconds_total{cage="e2e",role="vm"}'), 0.05 * batches);
    assertClose(series.get('cage_cpu_seconds_total{cage="e2e",role="ids"}'), 0.02 * batches);
    assert.ok(![...series.keys()].some((k) => k.includes('role="total"')), "no total role: the cage's total is a sum");
    // The QEMU cage's one thread is no vCPU or vhost: all its time is emulator, and only it has kinds.
    assertClose(series.get('cage_vm_cpu_seconds_total{cage="q",kind="emulator"}'), 0.01 * batches);
    assert.equal(series.get('cage_vm_cpu_seconds_total{cage="q",kind="vcpu"}'), 0);
    assert.equal(series.get('cage_vm_cpu_seconds_total{cage="q",kind="vhost"}'), 0);
    assert.ok(![...series.keys()].some((k) => k.startsWith('cage_vm_cpu_seconds_total{cage="e2e"')), "a process VM has no kinds");
    const qemuAggregate = service.aggregator.latestAggregates().find((x) => x.cage === "q");
    assert.deepEqual(qemuAggregate?.vm.cpuPctByKind, { vcpu: 0, emulator: 10, vhost: 0 });
    assert.equal(series.get('cage_pipeline_messages_total{topic="raw.cpu"}'), batches);
    assert.equal(series.get('cage_pipeline_lost_messages_total{topic="raw.cpu"}'), 0);
    assert.equal(series.get("cage_pipeline_unknown_pids_total"), batches);
    assert.equal(series.get("cage_pipeline_invalid_frames_total"), 0);
    assert.equal(series.get('cage_collector_restarts_total{collector="cpu"}'), 2);
    // One counter per meaning; keys of one meaning summed, keys of none (windows) not exported.
    assert.equal(series.get('cage_collector_lost_events_total{collector="cpu"}'), 7);
    assert.equal(series.get('cage_collector_invalid_input_total{collector="cpu"}'), 3);
    assert.equal(series.get('cage_collector_errors_total{collector="cpu"}'), 4);
    assert.equal(series.get('cage_collector_skipped_windows_total{collector="cpu"}'), 5);
    assert.equal(series.get('cage_collector_map_full_total{collector="cpu"}'), 6);
    assert.equal(series.get('cage_collector_untracked_pagecache_bytes_total{collector="cpu"}'), 4096);
    const lag = series.get("cage_pipeline_lag_seconds");
    assert.ok(lag !== undefined && lag >= 0 && lag < 5, `lag ${lag}`);
    const act = '{cage="e2e",actuator="balloon"}';
    for (const [key, { metric, divideBy }] of Object.entries(ACTUATOR_VALUES)) {
      assert.equal(series.get(`${prometheusName(metric)}${act}`), values[key as keyof typeof values] / divideBy, `${key} → ${prometheusName(metric)}`);
    }
    assert.equal(series.get(`cage_vm_cpu_cap_applied_cores${act}`), 0.01, "percent on the wire, cores in the metric");
    assert.equal(series.get('cage_actuator_mode{cage="e2e",actuator="balloon",mode="failsafe"}'), 1);
    assert.equal(series.get('cage_actuator_mode{cage="e2e",actuator="balloon",mode="active"}'), 0);
    assert.equal(series.get('cage_actuator_decisions_total{cage="e2e",actuator="balloon",setting="vm.memory.target",outcome="applied"}'), 1);
    const age = series.get('cage_aggregate_age_seconds{cage="e2e"}');
    assert.ok(age !== undefined && age >= 0 && age < 5, `aggregate age ${age}`);
    assert.equal(series.get("cage_history_connected"), 0);
    assert.equal(series.get('cage_history_points_dropped_total{reason="buffer_full"}'), 0);
    assert.ok((series.get("cage_history_buffered_points") ?? 0) > 0, "aggregates wait for InfluxDB");
    assert.ok((series.get("cage_history_spool_bytes") ?? 0) > 0, "in the spool, on disk");
    assert.equal(series.get("cage_history_spool_torn_records_total"), 0);
    assert.ok((series.get("cage_history_write_failures_total") ?? 0) > 0);
    assert.ok((series.get('cage_agent_memory_rss_bytes{process="pipeline"}') ?? 0) > 0, "the pipeline's own memory");
    assert.ok(series.has('cage_agent_cpu_seconds_total{process="pipeline"}'), "the pipeline's own CPU");
    // The host is the scrape target's business (instance, target labels), not a label on every
    // series; target_info carries the resource for joins.
    assert.ok(![...series.keys()].some((k) => k.startsWith("cage_") && /[{,]host(_name)?="/.test(k)), "no host label on the series");
    const targetInfo = [...series.keys()].find((k) => k.startsWith("target_info{"));
    assert.ok(targetInfo, "target_info is exposed");
    for (const label of ['host_name="node-17.dc1"', 'service_name="offloadcage"', 'service_instance_id="6c1e5b9e-0000-5000-8000-000000000001"', 'service_version="9.9.9"']) {
      assert.ok(targetInfo.includes(label), `target_info has ${label}: ${targetInfo}`);
    }
    // Every metric in metricNames.ts is rendered, under exactly the name docs/metrics.md gives.
    const rendered = metricNamesIn(series);
    for (const def of ALL_METRICS) assert.ok(rendered.has(prometheusName(def)), `${def.name} renders as ${prometheusName(def)}`);
    const ours = [...rendered].filter((n) => n.startsWith("cage_"));
    assert.deepEqual(ours.sort(), ALL_METRICS.map(prometheusName).sort(), "no cage_ metric outside metricNames.ts");
    assert.match(res.body, /# TYPE cage_cpu_seconds_total counter/);
    assert.doesNotMatch(res.body, /^# UNIT \S+ %$/m, "no percent-valued series");
    assert.doesNotMatch(res.body, /^cage_\S*(pct|percent|utilization)/m, "no percent-valued series");
    // Prometheus's own linter finds nothing in the real exposition.
    const lint = spawnSync("promtool", ["check", "metrics"], { input: res.body, encoding: "utf8" });
    assert.equal(lint.error, undefined, `promtool could not run: ${String(lint.error)}`);
    assert.equal(`${lint.stdout}${lint.stderr}`, "", "promtool check metrics reports nothing");
    assert.equal(lint.status, 0);

    // Garbage from a raw socket: counted, warned about with frame and reason, and the stream goes on.
    await waitFor("a garbage frame to be rejected", () => {
      if (service.stats.invalidFrames === 0) void garbageSender.send(["raw.pagecache", "this is not a header", "x"]);
      return service.stats.invalidFrames > 0;
    });
    // The retries above may have sent several garbage frames; warnings are limited to 5 a second
    // per kind, so start the next two in a fresh second to see each one named.
    await delay(1100);
    // A valid header with a payload that breaks its encoding, and a topic with the wrong encoding.
    await fakeCpuCollector.publish(Topic.rawCpu, Encoding.cpuBatch, Buffer.alloc(30));
    await fakeCpuCollector.publish(Topic.rawCpu, Encoding.json, Buffer.from("{}"));
    await waitFor("all three bad messages to be rejected", () => service.stats.invalidFrames >= 3);
    const countBefore = received.length;
    await waitFor("aggregates after the garbage", () => {
      void fakeCpuCollector.publish(Topic.rawCpu, Encoding.cpuBatch, cpuWindow(vm.pid, ids.pid, qemu.pid));
      return received.length > countBefore + 2;
    });
    const warned = records.filter((r) => r.level === 40 && typeof r.where === "string");
    assert.ok(warned.some((r) => r.where === "frame 1 (header)" && /must be 24 bytes, got 20/.test(String(r.reason))), "header garbage named");
    assert.ok(warned.some((r) => r.where === "frame 2 (cpu batch) byte 16"), "bad cpu payload named");
    assert.ok(warned.some((r) => r.where === "frame 1 (header) byte 3" && /needs encoding 1, got 3/.test(String(r.reason))), "wrong encoding named");
    const after = parsePrometheusText((await httpGet(`http://127.0.0.1:${port}/metrics`)).body);
    assert.equal(after.get("cage_pipeline_invalid_frames_total"), service.stats.invalidFrames);
    assert.equal(received.at(-1)?.totalPct, 70, "figures are still right after the garbage");

    // A forged sequence (one bit flipped high in the header) is an anomaly, not 2^47 lost messages.
    const lostBefore = service.stats.lostMessages;
    const anomaliesBefore = service.stats.sequenceAnomalies;
    const forged = (sequence: bigint): Buffer[] => [
      Buffer.from(Topic.rawPageCache),
      encodeHeader({ version: PROTOCOL_VERSION, encoding: Encoding.pageCacheBatch, publisherId: 0x0bad_5eed, sequence, sentAtUs: 0n }),
      encodePageCacheBatch({ sampledAtNs: 1n, untrackedInserts: 0, processes: [] }),
    ];
    await garbageSender.send(forged(0n));
    await garbageSender.send(forged(1n << 47n));
    await garbageSender.send(forged(1n));
    await waitFor("the forged jump counted as an anomaly", () => service.stats.sequenceAnomalies > anomaliesBefore);
    await delay(100);
    assert.equal(service.stats.sequenceAnomalies - anomaliesBefore, 1);
    assert.equal(service.stats.lostMessages, lostBefore, "nothing counted lost: the next genuine sequence follows the real one");
    const scraped = parsePrometheusText((await httpGet(`http://127.0.0.1:${port}/metrics`)).body);
    assert.equal(scraped.get('cage_pipeline_sequence_anomalies_total{topic="raw.pagecache"}'), 1);

    // raw.cpu is taken only from the cpu collector's socket: the memory socket's copy never arrives.
    const cpuBatchesBefore = service.aggregator.stats.cpuBatches;
    const messagesBefore = service.stats.messages;
    for (let i = 0; i < 20; i++) void fakeMemoryCollector.publish(Topic.rawCpu, Encoding.cpuBatch, cpuWindow(vm.pid, ids.pid, qemu.pid));
    await fakeMemoryCollector.publish(Topic.rawMemory, Encoding.memoryBatch, memorySample(vm.pid, ids.pid));
    await waitFor("the memory socket's own message", () => service.stats.messages > messagesBefore);
    await delay(200);
    assert.equal(service.aggregator.stats.cpuBatches, cpuBatchesBefore, "no raw.cpu from the memory collector's socket");

    // The IDS exits: the next resolution drops it and says so.
    await stopProcess(ids);
    await waitFor("the IDS to leave the cage", () => service.aggregator.pids("e2e", "ids").length === 0);
    assert.ok(records.some((r) => r.msg === "cage membership changed" && r.role === "ids" && (r.removed as number[]).includes(ids.pid)));

    // Shutdown closes the metrics port.
    await service.stop();
    await assert.rejects(httpGet(`http://127.0.0.1:${port}/metrics`), /ECONNREFUSED/);
    assert.ok(records.some((r) => r.msg === "pipeline stopped"));
  } finally {
    await service.stop();
    consumer.close();
    await consuming;
    await fakeCpuCollector.close();
    await fakeMemoryCollector.close();
    await fakeBalloonActuator.close();
    garbageSender.close();
    await stopProcess(vm);
    await stopProcess(ids);
    await stopProcess(qemu);
  }
});

void test("a failing membership resolution is logged and counted, the previous membership stays, the service goes on", async () => {
  const { logger, records } = capturingLogger();
  let calls = 0;
  const service = new PipelineService({
    config: agentConfig([cageByPid("flaky", 1001, 1002)], 20),
    endpoints: endpoints(),
    resolveMembership: () => {
      calls++;
      if (calls === 1) return new Map([["flaky", { vm: [1001], ids: [1002], startTimes: new Map([[1001, 5], [1002, 6]]) }]]);
      throw new Error("simulated /proc failure");
    },
    logger,
    prometheus: { host: "127.0.0.1", port: 0 },
    otlp: null,
  });
  try {
    await service.start();
    await waitFor("three failed resolutions", () => service.stats.resolveErrors >= 3);
    assert.deepEqual(service.aggregator.pids("flaky", "vm"), [1001]);
    assert.ok(records.some((r) => r.level === 50 && /resolution failed/.test(r.msg)));
    const series = parsePrometheusText((await httpGet(`http://127.0.0.1:${service.prometheusAddress!.port}/metrics`)).body);
    assert.ok((series.get(prometheusName(Metric.pipelineResolveErrors)) ?? 0) >= 3);
  } finally {
    await service.stop();
  }
});

void test("IDS-VM helper reports are read with each resolution: bad ones logged and exported by reason, a failed read charges no CR3", async () => {
  const { logger, records } = capturingLogger();
  let reads = 0;
  const spec = { ...cageByPid("xids", 3001, 3002), idsVms: [{ kind: "xen" as const, domain: "ids-vm" }], idsCr3: [{ domain: "ids-vm", from: "helper" as const }] };
  const service = new PipelineService({
    config: agentConfig([spec], 20),
    endpoints: endpoints(),
    resolveMembership: () => new Map(),
    readIdsHelpers: () => {
      reads++;
      if (reads >= 4) return Promise.reject(new Error("simulated xenstore-ls failure"));
      return Promise.resolve({
        domains: [
          { domain: 3, name: "ids-vm", entries: [{ key: "412", value: "0x4c7c000 1234" }, { key: "aide", value: "0x4c7c000 1" }], overflow: 0 },
          { domain: 4, name: "web", entries: [{ key: "1", value: "0x699c000 5" }], overflow: 0 },
        ],
      });
    },
    logger,
    prometheus: { host: "127.0.0.1", port: 0 },
    otlp: null,
  });
  try {
    await service.start();
    assert.deepEqual(service.aggregator.reportedCr3s("xids").map((c) => c.cr3), ["0x4c7c000"]);
    await waitFor("a failed read", () => reads >= 5);
    assert.deepEqual(service.aggregator.reportedCr3s("xids"), []);
    assert.ok(records.some((r) => r.level === 40 && /IDS-VM helper entry ignored \(forged\)/.test(r.msg)));
    assert.ok(records.some((r) => r.level === 40 && /xenstore entries failed/.test(r.msg)));
    const series = parsePrometheusText((await httpGet(`http://127.0.0.1:${service.prometheusAddress!.port}/metrics`)).body);
    const name = prometheusName(Metric.pipelineIdsHelperRejected);
    // Three reads of the same entries: each bad one counted once.
    assert.equal(series.get(`${name}{reason="forged"}`), 1);
    assert.equal(series.get(`${name}{reason="malformed"}`), 1);
    assert.equal(series.get(`${name}{reason="unseen"}`), 0);
  } finally {
    await service.stop();
  }
});

void test("a Prometheus port already in use fails start() with a clear message and leaves nothing running", async () => {
  const first = new PipelineService({
    config: agentConfig([cageByPid("one", 1, 2)]),
    endpoints: endpoints(),
    resolveMembership: () => new Map(),
    logger: capturingLogger().logger,
    prometheus: { host: "127.0.0.1", port: 0 },
    otlp: null,
  });
  await first.start();
  const port = first.prometheusAddress!.port;
  await first.stop();
  // Hold the port with a plain server, then ask the pipeline for it.
  const { createServer } = await import("node:net");
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(port, "127.0.0.1", resolve));
  const second = new PipelineService({
    config: agentConfig([cageByPid("two", 1, 2)]),
    endpoints: endpoints(),
    resolveMembership: () => new Map(),
    logger: capturingLogger().logger,
    prometheus: { host: "127.0.0.1", port },
    otlp: null,
  });
  try {
    await assert.rejects(second.start(), new RegExp(`prometheus endpoint 127.0.0.1:${port}: .*EADDRINUSE`));
  } finally {
    await new Promise<void>((resolve) => holder.close(() => resolve()));
  }
  // Everything was released: a third service starts fine in the same process.
  const third = new PipelineService({
    config: agentConfig([cageByPid("three", 1, 2)]),
    endpoints: endpoints(),
    resolveMembership: () => new Map(),
    logger: capturingLogger().logger,
    prometheus: { host: "127.0.0.1", port: 0 },
    otlp: null,
  });
  await third.start();
  await delay(10);
  await third.stop();
});

void test("options are validated at construction with exact messages", () => {
  const base = {
    endpoints: endpoints(),
    resolveMembership: () => new Map(),
    logger: capturingLogger().logger,
    prometheus: null,
    otlp: null,
  };
  assert.throws(() => new PipelineService({ ...base, config: agentConfig([]) }), { message: "pipeline: config has no cages" });
  assert.throws(() => new PipelineService({ ...base, config: agentConfig([cageByPid("x", 1, 2)], 0) }), { message: "pipeline: agent.resolveMs must be > 0, got 0" });
  assert.throws(() => new PipelineService({ ...base, config: agentConfig([cageByPid("x", 1, 2)]), prometheus: { host: "127.0.0.1", port: 70000 } }), {
    message: "prometheus port: must be an integer 0..65535, got 70000",
  });
  assert.throws(() => new PipelineService({ ...base, config: agentConfig([cageByPid("x", 1, 2)]), otlp: { endpoint: "ftp://x", intervalMs: 1000 } }), {
    message: 'otlp endpoint "ftp://x": must be http:// or https://',
  });
});

function assertClose(actual: number | undefined, expected: number): void {
  assert.ok(actual !== undefined && Math.abs(actual - expected) < 1e-9, `expected ${expected}, got ${actual}`);
}

void test("an IDS started after the last resolution is charged from the first CPU window that names it", async () => {
  const vm = startSleeper();
  // Matched by its arguments; started only after the service's first (and, with resolveMs 60 s, only) resolution.
  const idsArgs = ["60.0625"];
  const cage = { ...cageByPid("late", vm.pid, 0), ids: [{ cmdline: "^sleep 60\\.0625$", descendants: false }] };
  const config = agentConfig([cage], 60_000);
  const ep = endpoints();
  const { logger, records } = capturingLogger();
  const fakeCpuCollector = new MessagePublisher();
  const aggregates: CageAggregate[] = [];
  const service = new PipelineService({
    config,
    endpoints: { ...ep, collectors: { cpu: ep.collectors.cpu! }, actuators: {} },
    resolveMembership: procMembershipResolver(config.cages, logger),
    logger,
    prometheus: null,
    otlp: null,
    influx: null,
    onAggregate: (a) => aggregates.push(a),
  });
  let ids: ReturnType<typeof spawn> | null = null;
  try {
    await fakeCpuCollector.bind(ep.collectors.cpu!);
    await service.start();
    assert.deepEqual(service.aggregator.pids("late", "ids"), []);
    ids = spawn("sleep", idsArgs, { stdio: "ignore" });
    const idsPid = ids.pid!;
    await waitFor("sleep to have exec'd", () => {
      try {
        return readFileSync(`/proc/${idsPid}/cmdline`, "utf8") === `sleep\0${idsArgs[0]}\0`;
      } catch {
        return false;
      }
    });
    // Each window names the new PID; the first aggregate that arrives must already charge it.
    await waitFor("an aggregate", () => {
      if (aggregates.length === 0) void fakeCpuCollector.publish(Topic.rawCpu, Encoding.cpuBatch, cpuWindow(vm.pid, idsPid));
      return aggregates.length > 0;
    });
    const first = aggregates[0]!;
    assert.deepEqual(first.ids.pids, [idsPid]);
    assert.equal(first.ids.cpuPct, 20);
    assert.equal(service.stats.resolutions, 1, "no periodic resolution ran");
    assert.equal(service.stats.newPidResolutions, 1);
    assert.ok(records.some((r) => r.msg === "cage membership changed (a new process)" && (r.added as number[]).includes(idsPid)));
  } finally {
    if (ids !== null) await stopProcess(ids);
    await stopProcess(vm);
    await service.stop();
    await fakeCpuCollector.close();
  }
});

void test("agg.members: after each resolution, while subscribed, every cage's charged PIDs with start times; a conflicting PID once", async () => {
  const ep = endpoints();
  const { logger } = capturingLogger();
  const fakeCpuCollector = new MessagePublisher();
  const consumer = new MessageSubscriber();
  let calls = 0;
  // PID 1003 claimed by both cages: the aggregator charges it to the first, and agg.members says so.
  const service = new PipelineService({
    config: agentConfig([cageByPid("a", 1001, 1002), cageByPid("b", 1003, 1004)], 20),
    endpoints: ep,
    resolveMembership: () => {
      calls++;
      return new Map([
        ["a", { vm: [1001], ids: calls > 1 ? [1002, 1003] : [1002], startTimes: new Map([[1001, 5], [1002, 6], [1003, 7]]) }],
        ["b", { vm: [1003], ids: [], startTimes: new Map([[1003, 7]]) }],
      ]);
    },
    logger,
    prometheus: null,
    otlp: null,
  });
  try {
    await fakeCpuCollector.bind(ep.collectors.cpu!);
    await service.start();
    consumer.connect(ep.aggregates);
    consumer.subscribe(Topic.cageMembers);
    const timer = setTimeout(() => consumer.close(), PATIENT_MS);
    let last: CageMembersMessage | undefined;
    for await (const m of consumer.messages((e) => assert.fail(e.message))) {
      assert.equal(m.topic, Topic.cageMembers);
      assert.equal(m.header.encoding, Encoding.json);
      last = decodeCageMembers(m.payload);
      // Published after every resolution, changed or not: wait for one after the IDS claimed 1003.
      if (last.cages[0]?.ids.pids.length === 2) break;
    }
    clearTimeout(timer);
    assert.ok(last !== undefined, `no agg.members within ${PATIENT_MS} ms`);
    assert.deepEqual(last.cages, [
      { cage: "a", vm: { pids: [1001], startTimes: [5] }, ids: { pids: [1002, 1003], startTimes: [6, 7] } },
      { cage: "b", vm: { pids: [], startTimes: [] }, ids: { pids: [], startTimes: [] } },
    ]);
  } finally {
    consumer.close();
    await service.stop();
    await fakeCpuCollector.close();
  }
});

void test("the real memory collector with --members samples what the pipeline resolved: the cage's RSS reaches its aggregate", async () => {
  const vm = startSleeper();
  const ids = startSleeper();
  const ep = endpoints();
  const config = agentConfig([cageByPid("m", vm.pid, ids.pid)], 100);
  const configFile = join(tempDir, `members-${run}.yaml`);
  // The collector's own matchers find no process: only agg.members can name the cage's PIDs.
  writeFileSync(configFile, `agent: { logLevel: warn }\ncages:\n  - name: m\n    vm: { kind: process, match: [{ cmdline: "^no-such-process-oc-test$" }] }\n    cpu: { cap: 50 }\n`);
  const { logger } = capturingLogger();
  const fakeCpuCollector = new MessagePublisher();
  const aggregates: CageAggregate[] = [];
  const service = new PipelineService({
    config,
    endpoints: { ...ep, collectors: { cpu: ep.collectors.cpu!, memory: ep.collectors.memory! }, actuators: {} },
    resolveMembership: procMembershipResolver(config.cages, logger),
    logger,
    prometheus: null,
    otlp: null,
    influx: null,
    onAggregate: (a) => aggregates.push(a),
  });
  const collectorMain = fileURLToPath(new URL("../../collectors/memory/main.js", import.meta.url));
  let stderr = "";
  const collector = spawn(process.execPath, [collectorMain, "--config", configFile, "--endpoint", ep.collectors.memory!, "--members", ep.aggregates, "--sample-ms", "100"], { stdio: ["ignore", "ignore", "pipe"] });
  collector.stderr?.on("data", (b: Buffer) => (stderr += b.toString()));
  try {
    await fakeCpuCollector.bind(ep.collectors.cpu!);
    await service.start();
    await waitForResending(
      "an aggregate with both processes' RSS",
      () => void fakeCpuCollector.publish(Topic.rawCpu, Encoding.cpuBatch, cpuWindow(vm.pid, ids.pid)),
      () => {
        const last = aggregates.at(-1);
        return last !== undefined && last.vm.rssBytes > 0 && last.ids.rssBytes > 0;
      },
      15_000,
    ).catch((err: unknown) => assert.fail(`${(err as Error).message}; collector stderr:\n${stderr}`));
    const last = aggregates.at(-1)!;
    assert.deepEqual([last.vm.pids, last.ids.pids], [[vm.pid], [ids.pid]]);
  } finally {
    await stopProcess(collector);
    await stopProcess(vm);
    await stopProcess(ids);
    await service.stop();
    await fakeCpuCollector.close();
  }
});

void test("agg.memory: each memory sample that moves a cage's IDS memory is published at once, only that cage, only while subscribed", async () => {
  const vm = startSleeper();
  const ids = startSleeper();
  const other = startSleeper();
  const config = agentConfig([cageByPid("mem", vm.pid, ids.pid), cageByPid("still", other.pid, 0x3fff_fff2)], 60_000);
  const ep = endpoints();
  const { logger } = capturingLogger();
  const fakeMemoryCollector = new MessagePublisher();
  const service = new PipelineService({
    config,
    endpoints: { ...ep, collectors: { memory: ep.collectors.memory! }, actuators: {} },
    resolveMembership: procMembershipResolver(config.cages, logger),
    logger,
    prometheus: null,
    otlp: null,
    influx: null,
  });
  const consumer = new MessageSubscriber();
  const updates: CageIdsMemory[][] = [];
  let consuming: Promise<void> | undefined;
  const sample = (idsRss: number) => {
    const mem = (pid: number, rss: number) => ({ pid, vmRssBytes: rss, rssAnonBytes: rss, rssFileBytes: 0, rssShmemBytes: 0, vmHwmBytes: rss });
    return encodeMemoryBatch({ sampledAtNs: process.hrtime.bigint(), processes: [mem(vm.pid, VM_RSS), mem(ids.pid, idsRss), mem(other.pid, VM_RSS)] });
  };
  try {
    await fakeMemoryCollector.bind(ep.collectors.memory!);
    await service.start();
    // Nobody subscribed yet: nothing is built (the first message after subscribing names every cage).
    await waitForResending(
      "the first sample ingested",
      () => void fakeMemoryCollector.publish(Topic.rawMemory, Encoding.memoryBatch, sample(IDS_RSS)),
      () => service.aggregator.rssBytes("mem", "ids") === IDS_RSS,
    );
    consumer.connect(ep.aggregates);
    consumer.subscribe(Topic.cageIdsMemory);
    consuming = (async () => {
      for await (const m of consumer.messages(() => {})) {
        if (m.topic !== Topic.cageIdsMemory) continue;
        const decoded = decodeCageIdsMemoryUpdate(m.payload);
        assert.deepEqual(decoded.rejected, []);
        updates.push(decoded.cages);
      }
    })();
    await waitFor("the subscription and a first agg.memory", () => {
      if (updates.length === 0) void fakeMemoryCollector.publish(Topic.rawMemory, Encoding.memoryBatch, sample(IDS_RSS));
      return updates.length > 0;
    });
    assert.deepEqual(updates[0], [
      { cage: "mem", ids: { rssBytes: IDS_RSS, pageCacheBytes: 0 } },
      { cage: "still", ids: { rssBytes: 0, pageCacheBytes: 0 } },
    ]);
    // The same figures again: no message. Then the IDS grows: one message, its cage alone.
    void fakeMemoryCollector.publish(Topic.rawMemory, Encoding.memoryBatch, sample(IDS_RSS));
    void fakeMemoryCollector.publish(Topic.rawMemory, Encoding.memoryBatch, sample(IDS_RSS + (64 << 20)));
    await waitFor("the IDS's growth on agg.memory", () => updates.length >= 2);
    await delay(200);
    assert.deepEqual(updates.slice(1), [[{ cage: "mem", ids: { rssBytes: IDS_RSS + (64 << 20), pageCacheBytes: 0 } }]]);
  } finally {
    consumer.close();
    await consuming;
    await service.stop();
    await fakeMemoryCollector.close();
    await stopProcess(vm);
    await stopProcess(ids);
    await stopProcess(other);
  }
});
