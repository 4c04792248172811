import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { pino } from "pino";
import type { AgentConfig, CageSpec } from "../../../config/cageConfig.js";
import { parseConfigText } from "../../../config/loadConfig.js";
import { IDS_MOVING_SAMPLE_MS, idsSampleCages, MemoryCollector, sameMembers, type Publisher } from "../../../collectors/memory/memoryCollector.js";
import { parseMemoryCollectorArgs } from "../../../collectors/memory/memoryCollectorArgs.js";
import { HelpRequested, UsageError } from "../../../runtime/usageError.js";
import { decodeCollectorStatus } from "../../../protocol/cageAggregate.js";
import { decodeMemoryBatch } from "../../../protocol/rawBatches.js";
import { Encoding, Topic, type EncodingId } from "../../../protocol/wireFormat.js";

class FakePublisher implements Publisher {
  readonly sent: { topic: string; encoding: EncodingId; payload: Buffer }[] = [];
  publish(topic: string, encoding: EncodingId, payload: Buffer): Promise<void> {
    this.sent.push({ topic, encoding, payload });
    return Promise.resolve();
  }
}

const selfCage: CageSpec = {
  name: "self",
  vm: { kind: "process", match: [{ pid: process.pid, descendants: false }] },
  ids: [],
  cpu: { cap: 100, idsCap: null, weight: null },
  memory: null,
};

void test("one resolve + sample publishes a MemoryBatch with the tracked PID, and a status", () => {
  const publisher = new FakePublisher();
  const c = new MemoryCollector({ cages: [selfCage], publisher, log: pino({ level: "silent" }), sampleMs: 1000, resolveMs: 1000 });
  c.start();
  c.stop();
  const [status, batch] = publisher.sent;
  assert.equal(status?.topic, Topic.status);
  assert.equal(status?.encoding, Encoding.json);
  const s = decodeCollectorStatus(status.payload);
  assert.equal(s.collector, "memory");
  assert.equal(s.state, "started");
  assert.equal(s.counters.trackedPids, 1);
  assert.equal(batch?.topic, Topic.rawMemory);
  assert.equal(batch?.encoding, Encoding.memoryBatch);
  assert.deepEqual(decodeMemoryBatch(batch.payload).processes.map((p) => p.pid), [process.pid]);
});

void test("a failing resolve is counted and logged; sampling goes on with the previous membership", () => {
  const publisher = new FakePublisher();
  const c = new MemoryCollector({ cages: [selfCage], publisher, log: pino({ level: "silent" }), sampleMs: 1000, resolveMs: 1000 });
  c.resolve();
  const broken = new MemoryCollector({ cages: [selfCage], publisher, log: pino({ level: "silent" }), sampleMs: 1000, resolveMs: 1000, procRoot: "/nonexistent-proc" });
  broken.resolve();
  assert.equal(broken.counters.resolveErrors, 1);
  assert.equal(c.counters.resolveErrors, 0);
  c.sample();
  assert.equal(c.counters.processesSampled, 1);
});

void test("the IDS-only sample carries just the IDS PIDs; the full sample carries every tracked PID", async () => {
  const { spawn } = await import("node:child_process");
  const child = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    const cage: CageSpec = { ...selfCage, ids: [{ pid: child.pid, descendants: false }] };
    const publisher = new FakePublisher();
    const c = new MemoryCollector({ cages: [cage], publisher, log: pino({ level: "silent" }), sampleMs: 1000, idsSampleMs: 50, resolveMs: 1000 });
    c.resolve();
    c.sampleIds();
    c.sample();
    const batches = publisher.sent.filter((m) => m.topic === Topic.rawMemory).map((m) => decodeMemoryBatch(m.payload).processes.map((p) => p.pid));
    assert.deepEqual(batches, [[child.pid], [process.pid, child.pid as number].sort((a, b) => a - b)]);
    assert.equal(c.counters.idsSamples, 1);
    assert.equal(c.counters.samples, 1);
  } finally {
    child.kill();
  }
});

void test("the IDS-only sample reads status only for an IDS whose memory moved since the last one", async () => {
  // The child reports ready, and on each line it reads allocates and touches 16 MiB more.
  const script = `
    const rl = require("node:readline").createInterface({ input: process.stdin });
    const keep = [];
    console.log("ready");
    rl.on("line", () => { keep.push(Buffer.alloc(16 * 1024 * 1024, 1)); console.log("done"); });
  `;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["pipe", "pipe", "inherit"] });
  try {
    const lines = createInterface({ input: child.stdout });
    const next = async (): Promise<string> => ((await once(lines, "line")) as [string])[0];
    assert.equal(await next(), "ready");
    const cage: CageSpec = { ...selfCage, ids: [{ pid: child.pid, descendants: false }] };
    const publisher = new FakePublisher();
    const c = new MemoryCollector({ cages: [cage], publisher, log: pino({ level: "silent" }), sampleMs: 60_000, idsSampleMs: 50, resolveMs: 60_000 });
    const idsBatches = (): number[][] => publisher.sent.filter((m) => m.topic === Topic.rawMemory).map((m) => decodeMemoryBatch(m.payload).processes.map((p) => p.pid));
    try {
      c.resolve();
      assert.equal(c.sampleIds(), false, "a first read is no move");
      assert.deepEqual(idsBatches(), [[child.pid]], "first sight: sampled");
      // An idle child's resident pages stay put (a stray page fault would show as one more batch).
      let quiet = false;
      for (let i = 0; i < 20 && !quiet; i++) {
        const before = idsBatches().length;
        await new Promise((r) => setTimeout(r, 20));
        c.sampleIds();
        quiet = idsBatches().length === before;
      }
      assert.ok(quiet, "an IDS whose memory did not move is not sampled again");
      const before = idsBatches().length;
      child.stdin.write("go\n");
      assert.equal(await next(), "done");
      assert.equal(c.sampleIds(), true, "memory moved: the next IDS sample comes sooner");
      assert.deepEqual(idsBatches().slice(before), [[child.pid]], "memory moved: sampled at the next IDS sample");
      const last = decodeMemoryBatch(publisher.sent.at(-1)!.payload).processes[0]!;
      assert.ok(last.vmRssBytes >= 16 * 1024 * 1024, `VmRSS ${last.vmRssBytes}`);
      assert.ok(c.counters.idsSamples >= 3);
    } finally {
      c.stop();
    }
  } finally {
    child.kill();
  }
});

void test("the IDS-only sample reads only the IDS of idsSampleCages", async () => {
  const { spawn } = await import("node:child_process");
  const fast = spawn("sleep", ["30"], { stdio: "ignore" });
  const slow = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    const cages: CageSpec[] = [
      { ...selfCage, name: "fast", ids: [{ pid: fast.pid, descendants: false }] },
      { ...selfCage, name: "slow", vm: { kind: "process", match: [{ pid: slow.pid, descendants: false }] }, ids: [{ pid: slow.pid, descendants: false }] },
    ];
    const publisher = new FakePublisher();
    const c = new MemoryCollector({ cages, publisher, log: pino({ level: "silent" }), sampleMs: 1000, idsSampleMs: 50, idsSampleCages: ["fast"], resolveMs: 1000 });
    c.resolve();
    c.sampleIds();
    c.sample();
    const batches = publisher.sent.filter((m) => m.topic === Topic.rawMemory).map((m) => decodeMemoryBatch(m.payload).processes.map((p) => p.pid));
    assert.deepEqual(batches[0], [fast.pid], "the IDS-only sample: the fast cage's IDS alone");
    assert.ok(batches[1]?.includes(slow.pid as number), "the full sample still reads the other cage's IDS");
  } finally {
    fast.kill();
    slow.kill();
  }
});

void test("idsSampleCages: the balloon's cages (a memory section); none without a balloon; every cage with an external actuator", () => {
  const config = (actuators: string): AgentConfig =>
    parseConfigText(
      [
        "agent:",
        actuators,
        "cages:",
        "  - name: ballooned",
        "    vm: { kind: process, match: [{ cmdline: vm-a }] }",
        "    ids: [{ cmdline: ids-a, user: root }]",
        "    cpu: { cap: 50 }",
        "    memory: { base: 1GiB, floor: 512MiB }",
        "  - name: measured",
        "    vm: { kind: process, match: [{ cmdline: vm-b }] }",
        "    ids: [{ cmdline: ids-b, user: root }]",
        "    cpu: { cap: 50 }",
        "",
      ].join("\n"),
      "test.yaml",
    );
  assert.deepEqual(idsSampleCages(config("  actuators: { cpu: { dryRun: true } }")), []);
  assert.deepEqual(idsSampleCages(config("  actuators: { balloon: { dryRun: true } }")), ["ballooned"]);
  assert.deepEqual(idsSampleCages(config("  actuators: { external: [{ name: mine, command: /bin/true }] }")), ["ballooned", "measured"]);
});

void test("the IDS-only sampler runs on its own timer and stops with the collector", async () => {
  const { spawn } = await import("node:child_process");
  const child = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    const cage: CageSpec = { ...selfCage, ids: [{ pid: child.pid, descendants: false }] };
    const publisher = new FakePublisher();
    const c = new MemoryCollector({ cages: [cage], publisher, log: pino({ level: "silent" }), sampleMs: 10_000, idsSampleMs: 20, resolveMs: 10_000 });
    c.start();
    await new Promise((r) => setTimeout(r, 300));
    c.stop();
    const after = c.counters.idsSamples;
    assert.ok(after >= 3, `expected several IDS samples in 300 ms, got ${after}`);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(c.counters.idsSamples, after, "no IDS sample after stop()");
  } finally {
    child.kill();
  }
});

void test("arguments: validated at the edge with exact messages", () => {
  assert.deepEqual(parseMemoryCollectorArgs(["--config", "c.yaml", "--endpoint", "ipc:///run/x/memory.sock"]), {
    configPath: "c.yaml",
    endpoint: "ipc:///run/x/memory.sock",
    sampleMs: null,
    members: null,
  });
  assert.deepEqual(parseMemoryCollectorArgs(["--config=c.yaml", "--endpoint=tcp://127.0.0.1:5555", "--sample-ms", "250"]), {
    configPath: "c.yaml",
    endpoint: "tcp://127.0.0.1:5555",
    sampleMs: 250,
    members: null,
  });
  assert.equal(parseMemoryCollectorArgs(["--config", "c.yaml", "--endpoint", "ipc:///run/x/memory.sock", "--members", "ipc:///run/x/aggregates.sock"]).members, "ipc:///run/x/aggregates.sock");
  const bad: [string[], string][] = [
    [[], "cage collector memory: --config FILE is required"],
    [["--config", "--endpoint", "ipc:///x"], "cage collector memory: --config needs a value"],
    [["--config", "c.yaml"], "cage collector memory: --endpoint EP is required"],
    [["--config", "c.yaml", "--endpoint", "ipc://relative.sock"], 'cage collector memory: --endpoint must be ipc:///absolute/path or tcp://HOST:PORT, got "ipc://relative.sock"'],
    [["--config", "c.yaml", "--endpoint", "ipc:///x", "--sample-ms", "5"], 'cage collector memory: --sample-ms must be an integer from 10 to 3600000, got "5"'],
    [["--config", "c.yaml", "--endpoint", "ipc:///x", "--sample-ms", "1.5"], 'cage collector memory: --sample-ms must be an integer from 10 to 3600000, got "1.5"'],
    [["--config"], "cage collector memory: --config needs a value"],
    [["--config", "a", "--config", "b"], "cage collector memory: --config given twice"],
    [["--verbose"], 'cage collector memory: unknown option "--verbose"'],
    [["--config", "c.yaml", "--endpoint", "ipc:///x", "extra"], 'cage collector memory: unexpected argument "extra"'],
    [["--config="], "cage collector memory: --config must not be empty"],
  ];
  for (const [argv, message] of bad) assert.throws(() => parseMemoryCollectorArgs(argv), (e: unknown) => e instanceof UsageError && e.message === message, argv.join(" "));
  assert.throws(() => parseMemoryCollectorArgs(["--endpoint", "x", "-h"]), (e: unknown) => e instanceof HelpRequested && e.usage.startsWith("usage: cage collector memory --config FILE --endpoint EP [--sample-ms N]"));
});

void test("membersFrom pipeline: no /proc scan; the pipeline's agg.members is the membership, cages not in the file ignored", () => {
  const publisher = new FakePublisher();
  // A /proc that does not exist: a scan would fail and be counted.
  const c = new MemoryCollector({ cages: [selfCage], publisher, log: pino({ level: "silent" }), sampleMs: 60_000, resolveMs: 60_000, membersFrom: "pipeline", procRoot: "/nonexistent-proc" });
  c.start();
  try {
    assert.equal(c.counters.resolves, 0);
    assert.equal(c.counters.resolveErrors, 0);
    c.takeMembers({
      v: 1,
      timeMs: Date.now(),
      cages: [
        { cage: "self", vm: { pids: [process.pid], startTimes: [42] }, ids: { pids: [], startTimes: [] } },
        { cage: "elsewhere", vm: { pids: [1], startTimes: [0] }, ids: { pids: [], startTimes: [] } },
      ],
    });
    assert.equal(c.counters.resolves, 1);
    assert.equal(c.counters.trackedPids, 1);
    assert.deepEqual(c.tracker.processes(), [{ cage: "self", role: "vm", pid: process.pid, startTime: 42, comm: null }]);
    // An empty membership (every process of the cage gone) is taken too.
    c.takeMembers({ v: 1, timeMs: Date.now(), cages: [{ cage: "self", vm: { pids: [], startTimes: [] }, ids: { pids: [], startTimes: [] } }] });
    assert.equal(c.counters.trackedPids, 0);
  } finally {
    c.stop();
  }
});

void test("membersFrom pipeline: a malformed agg.members is counted, logged once per reason, and keeps the membership", () => {
  const publisher = new FakePublisher();
  const warnings: string[] = [];
  const log = pino({ level: "warn" }, { write: (line: string) => warnings.push((JSON.parse(line) as { err: string }).err) });
  const c = new MemoryCollector({ cages: [selfCage], publisher, log, sampleMs: 60_000, resolveMs: 60_000, membersFrom: "pipeline" });
  c.takeMembers({ v: 1, timeMs: 0, cages: [{ cage: "self", vm: { pids: [process.pid], startTimes: [7] }, ids: { pids: [], startTimes: [] } }] });
  c.rejectMembers("frame 2 (cage members) field v: unsupported members version 2");
  c.rejectMembers("frame 2 (cage members) field v: unsupported members version 2");
  c.rejectMembers("frame 2 (cage members) field cages: must be an array");
  assert.equal(c.counters.invalidMembers, 3);
  assert.deepEqual(warnings, ["frame 2 (cage members) field v: unsupported members version 2", "frame 2 (cage members) field cages: must be an array"]);
  c.sample();
  assert.deepEqual(decodeMemoryBatch(publisher.sent.at(-1)!.payload).processes.map((p) => p.pid), [process.pid]);
  c.stop();
});

void test("membersFrom pipeline: an unchanged agg.members is counted and skipped; a reused PID or a moved process is taken", () => {
  const publisher = new FakePublisher();
  const c = new MemoryCollector({ cages: [selfCage], publisher, log: pino({ level: "silent" }), sampleMs: 60_000, resolveMs: 60_000, membersFrom: "pipeline" });
  const none = { pids: [], startTimes: [] };
  const entry = (vm: number[], vmStarts: number[], ids: number[] = [], idsStarts: number[] = []) => [{ cage: "self", vm: { pids: vm, startTimes: vmStarts }, ids: { pids: ids, startTimes: idsStarts } }];
  c.takeMembers({ v: 1, timeMs: 1, cages: entry([process.pid], [5]) });
  c.takeMembers({ v: 1, timeMs: 2, cages: entry([process.pid], [5]) });
  assert.equal(c.counters.resolves, 2);
  assert.deepEqual(c.tracker.processes().map((p) => [p.role, p.pid, p.startTime]), [["vm", process.pid, 5]]);
  c.takeMembers({ v: 1, timeMs: 3, cages: entry([process.pid], [6]) });
  assert.deepEqual(c.tracker.processes().map((p) => [p.role, p.pid, p.startTime]), [["vm", process.pid, 6]]);
  c.takeMembers({ v: 1, timeMs: 4, cages: entry([], [], [process.pid], [6]) });
  assert.deepEqual(c.tracker.processes().map((p) => [p.role, p.pid, p.startTime]), [["ids", process.pid, 6]]);
  assert.equal(c.counters.resolves, 4);

  const a = entry([1, 2], [10, 20]);
  assert.ok(sameMembers(a, entry([1, 2], [10, 20])));
  assert.ok(!sameMembers(a, entry([1, 2], [10, 21])));
  assert.ok(!sameMembers(a, entry([1], [10])));
  assert.ok(!sameMembers(a, entry([], [], [1, 2], [10, 20])));
  assert.ok(!sameMembers(a, [{ ...a[0]!, cage: "other" }]));
  assert.ok(!sameMembers(a, [...a, { cage: "b", vm: none, ids: none }]));
});

void test("while an IDS's memory moves, its samples come every IDS_MOVING_SAMPLE_MS instead of idsSampleMs; stop() ends them", async () => {
  // The child grows by 1 MiB every 5 ms for about a second once told to.
  const script = `
    const keep = [];
    console.log("ready");
    process.stdin.once("data", () => { const t = setInterval(() => { keep.push(Buffer.alloc(1 << 20, 1)); if (keep.length >= 200) { clearInterval(t); console.log("done"); } }, 5); });
  `;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["pipe", "pipe", "inherit"] });
  try {
    const lines = createInterface({ input: child.stdout });
    assert.equal(((await once(lines, "line")) as [string])[0], "ready");
    const cage: CageSpec = { ...selfCage, ids: [{ pid: child.pid, descendants: false }] };
    // idsSampleMs far longer than the growth: without the faster pace it would be read once or twice.
    const c = new MemoryCollector({ cages: [cage], publisher: new FakePublisher(), log: pino({ level: "silent" }), sampleMs: 60_000, idsSampleMs: 300, resolveMs: 60_000 });
    c.start();
    try {
      await new Promise((r) => setTimeout(r, 350)); // two steady reads: first sight, then no move
      const steady = c.counters.idsSamples;
      child.stdin.write("go\n");
      await once(lines, "line");
      const moving = c.counters.idsSamples - steady;
      assert.ok(moving >= 10, `only ${moving} IDS samples while it grew for about a second (idsSampleMs 300, IDS_MOVING_SAMPLE_MS ${IDS_MOVING_SAMPLE_MS})`);
    } finally {
      c.stop();
    }
    const after = c.counters.idsSamples;
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(c.counters.idsSamples, after, "a sample after stop()");
  } finally {
    child.kill();
  }
});
