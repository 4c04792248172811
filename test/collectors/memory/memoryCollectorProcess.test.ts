import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import { decodeCollectorStatus } from "../../../protocol/cageAggregate.js";
import { encodeCageMembers } from "../../../protocol/cageMembers.js";
import { MessagePublisher, MessageSubscriber } from "../../../protocol/messageBus.js";
import { decodeMemoryBatch, type MemoryBatch } from "../../../protocol/rawBatches.js";
import { Encoding, Topic } from "../../../protocol/wireFormat.js";

const collectorMain = fileURLToPath(new URL("../../../collectors/memory/main.js", import.meta.url));

async function kill(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGKILL");
  await once(child, "exit");
}

void test("the memory collector process publishes MemoryBatches of the tracked PID and stops cleanly on SIGTERM", async () => {
  const dir = mkdtempSync(join(tmpdir(), "collector-memory-"));
  const endpoint = `ipc://${join(dir, "memory.sock")}`;
  let target: ChildProcess | undefined;
  let collector: ChildProcess | undefined;
  const subscriber = new MessageSubscriber();
  try {
    target = spawn("/bin/sleep", ["60"], { stdio: "ignore" });
    await once(target, "spawn");
    const targetPid = target.pid as number;
    const config = join(dir, "cages.yaml");
    writeFileSync(
      config,
      `agent: { resolveMs: 100, logLevel: warn }\ncages:\n  - name: t\n    vm: { kind: xen, domain: 1 }\n    ids: [{ pid: ${targetPid}, uid: 0 }]\n    cpu: { cap: 50 }\n`,
    );
    let stderr = "";
    collector = spawn(process.execPath, [collectorMain, "--config", config, "--endpoint", endpoint, "--sample-ms", "100"], { stdio: ["ignore", "ignore", "pipe"] });
    collector.stderr?.on("data", (b: Buffer) => (stderr += b.toString()));

    subscriber.connect(endpoint); // ZeroMQ reconnects until the collector has bound
    subscriber.subscribe(Topic.rawMemory);
    const timer = setTimeout(() => subscriber.close(), 30_000);
    let batch: MemoryBatch | undefined;
    for await (const msg of subscriber.messages((e) => assert.fail(e.message))) {
      assert.equal(msg.header.encoding, Encoding.memoryBatch);
      const b = decodeMemoryBatch(msg.payload);
      if (b.processes.some((p) => p.pid === targetPid)) {
        batch = b;
        break;
      }
    }
    clearTimeout(timer);
    assert.ok(batch, `no MemoryBatch with PID ${targetPid} within 30 s; collector stderr:\n${stderr}`);
    const sample = batch.processes.find((p) => p.pid === targetPid);
    assert.ok(sample && sample.vmRssBytes > 0 && sample.vmRssBytes === sample.rssAnonBytes + sample.rssFileBytes + sample.rssShmemBytes);
    assert.ok(batch.sampledAtNs <= process.hrtime.bigint(), "sampledAtNs is CLOCK_MONOTONIC, like ours");

    collector.kill("SIGTERM");
    const [code, signal] = (await once(collector, "exit")) as [number | null, NodeJS.Signals | null];
    assert.equal(signal, null);
    // 0: stop() finished within the process's stop deadline (past it, the runtime exits 1).
    assert.equal(code, 0, stderr);
  } finally {
    subscriber.close();
    await kill(collector);
    await kill(target);
    rmSync(dir, { recursive: true, force: true });
  }
});

void test("with --members it samples the PIDs the pipeline's agg.members names, not what its own matchers would find", async () => {
  const dir = mkdtempSync(join(tmpdir(), "collector-memory-"));
  const endpoint = `ipc://${join(dir, "memory.sock")}`;
  const aggregates = `ipc://${join(dir, "aggregates.sock")}`;
  let target: ChildProcess | undefined;
  let collector: ChildProcess | undefined;
  // This test stands in for the pipeline: a real PUB socket sending what the pipeline sends.
  const pipeline = new MessagePublisher();
  const subscriber = new MessageSubscriber();
  let sending = true;
  try {
    target = spawn("/bin/sleep", ["60"], { stdio: "ignore" });
    await once(target, "spawn");
    const targetPid = target.pid as number;
    await pipeline.bind(aggregates);
    const config = join(dir, "cages.yaml");
    // The matcher finds no process: only the pipeline's message can name the target.
    writeFileSync(config, `agent: { resolveMs: 100, logLevel: warn }\ncages:\n  - name: t\n    vm: { kind: process, match: [{ cmdline: "^no-such-process-oc-test$" }] }\n    cpu: { cap: 50 }\n`);
    let stderr = "";
    collector = spawn(process.execPath, [collectorMain, "--config", config, "--endpoint", endpoint, "--sample-ms", "100", "--members", aggregates], { stdio: ["ignore", "ignore", "pipe"] });
    collector.stderr?.on("data", (b: Buffer) => (stderr += b.toString()));
    const sendLoop = (async () => {
      while (sending) {
        // A malformed message first each time: counted and skipped, the good one still taken.
        await pipeline.publish(Topic.cageMembers, Encoding.json, Buffer.from(JSON.stringify({ v: 1, timeMs: 0, cages: "no" })));
        await pipeline.publish(Topic.cageMembers, Encoding.json, encodeCageMembers({ v: 1, timeMs: Date.now(), cages: [{ cage: "t", vm: { pids: [targetPid], startTimes: [1] }, ids: { pids: [], startTimes: [] } }] }));
        await delay(100);
      }
    })();
    subscriber.connect(endpoint);
    subscriber.subscribe(Topic.rawMemory, Topic.status);
    const timer = setTimeout(() => subscriber.close(), 30_000);
    let sampled = false;
    let invalidMembers = 0;
    for await (const msg of subscriber.messages((e) => assert.fail(e.message))) {
      if (msg.topic === Topic.rawMemory && decodeMemoryBatch(msg.payload).processes.some((p) => p.pid === targetPid)) sampled = true;
      if (msg.topic === Topic.status) invalidMembers = decodeCollectorStatus(msg.payload).counters.invalidMembers ?? 0;
      if (sampled && invalidMembers > 0) break;
    }
    clearTimeout(timer);
    sending = false;
    await sendLoop;
    assert.ok(sampled, `no MemoryBatch with PID ${targetPid} within 30 s; collector stderr:\n${stderr}`);
    assert.ok(invalidMembers > 0, `the malformed agg.members messages were not counted; collector stderr:\n${stderr}`);
    assert.match(stderr, /malformed membership message from the pipeline/);
    collector.kill("SIGTERM");
    const [code] = (await once(collector, "exit")) as [number | null];
    assert.equal(code, 0, stderr);
  } finally {
    sending = false;
    subscriber.close();
    await pipeline.close();
    await kill(collector);
    await kill(target);
    rmSync(dir, { recursive: true, force: true });
  }
});

void test("bad arguments or a bad config: exit 2 with the messages", () => {
  const dir = mkdtempSync(join(tmpdir(), "collector-memory-"));
  try {
    const noEndpoint = spawnSync(process.execPath, [collectorMain, "--config", "x.yaml"], { encoding: "utf8" });
    assert.equal(noEndpoint.status, 2);
    assert.match(noEndpoint.stderr, /^cage collector memory: --endpoint EP is required\nusage: cage collector memory /);

    const config = join(dir, "bad.yaml");
    writeFileSync(config, "cages:\n  - name: t\n    vm: { kind: xen, domain: 1 }\n    cpu: { cap: 0 }\n  - name: t\n    vm: { kind: xen, domain: 2 }\n    cpu: { cap: 10 }\n");
    const bad = spawnSync(process.execPath, [collectorMain, "--config", config, "--endpoint", `ipc://${join(dir, "m.sock")}`], { encoding: "utf8" });
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr, `${config}:4: cages[0].cpu.cap: must be > 0\n${config}:5: cages[1].name: duplicate cage name "t" (also cages[0].name)\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
