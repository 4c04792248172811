import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ActuatorLink } from "../../../actuators/common/actuatorLink.js";
import { decodeActuatorState, type ActuatorState } from "../../../protocol/actuatorMessages.js";
import { encodeCageAggregates, encodeJson, type CageAggregate } from "../../../protocol/cageAggregate.js";
import { MessagePublisher, MessageSubscriber } from "../../../protocol/messageBus.js";
import { Encoding, Topic } from "../../../protocol/wireFormat.js";
import { aggregate, capturingLogger, waitFor } from "../actuatorHarness.js";

void test("malformed aggregates never reach the actuator: counted, warned about at most 5 a second, and published as invalidAggregates", async () => {
  const dir = mkdtempSync(join(tmpdir(), "oc-link-"));
  const { logger, records } = capturingLogger();
  const received: CageAggregate[] = [];
  const aggregates = `ipc://${join(dir, "agg.sock")}`;
  const publish = `ipc://${join(dir, "act.sock")}`;
  const feeder = new MessagePublisher();
  const link = new ActuatorLink({ aggregates, publish, logger, onAggregate: (a) => received.push(a) });
  const watcher = new MessageSubscriber();
  const states: ActuatorState[] = [];
  let watching: Promise<void> | undefined;
  try {
    await feeder.bind(aggregates);
    await link.start();
    // Valid aggregates until the subscription has propagated (ZeroMQ slow joiner).
    await waitFor("a valid aggregate", () => {
      void feeder.publish(Topic.cageAggregates, Encoding.json, encodeCageAggregates([aggregate("web", { idsPids: [42] })]));
      return received.length > 0;
    });
    const invalidBefore = link.invalidFrames;
    const bad = [null, "1", undefined, 1e308, -1e308].map((pids) => {
      const a = JSON.parse(JSON.stringify(aggregate("web"))) as { ids: Record<string, unknown> };
      if (pids === undefined) delete a.ids.pids;
      else a.ids.pids = pids;
      return encodeJson({ v: 1, aggregates: [a] });
    });
    for (let i = 0; i < 40; i++) await feeder.publish(Topic.cageAggregates, Encoding.json, bad[i % bad.length] as Buffer);
    await waitFor("40 rejections", () => link.invalidFrames - invalidBefore >= 40);
    await new Promise((r) => setTimeout(r, 100));
    // Valid ones may still be in flight from the loop above; every aggregate that arrived is one of them.
    assert.ok(received.every((a) => a.ids.pids.length === 1 && a.ids.pids[0] === 42), "not one malformed aggregate reached the actuator");
    const warnings = records.filter((r) => r.msg === "malformed aggregate, skipped");
    // At most 5 a second: the 40 usually arrive within one, but a loaded machine may spread them.
    const times = warnings.map((r) => r.time as number);
    const seconds = 1 + Math.floor((times.at(-1)! - times[0]! + 1) / 1000);
    assert.ok(warnings.length >= 1 && warnings.length <= 5 * seconds, `${warnings.length} warnings for 40 bad messages over ${seconds} s`);
    assert.match(String(warnings[0]?.err), /field ids\.pids/);

    watcher.connect(publish);
    watcher.subscribe(Topic.actuatorState);
    watching = (async () => {
      for await (const m of watcher.messages(() => undefined)) states.push(decodeActuatorState(m.payload));
    })();
    await waitFor("a published state", () => {
      link.publishState({ v: 1, actuator: "cpu", cage: "web", timeMs: Date.now(), mode: "failsafe", backend: "cgroup-v1", values: { vmCpuCapPct: 33 } });
      return states.length > 0;
    });
    assert.equal(states.at(-1)?.values.invalidAggregates, link.invalidFrames);
    assert.equal(states.at(-1)?.values.vmCpuCapPct, 33);
  } finally {
    watcher.close();
    await watching;
    await link.close();
    await feeder.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

void test("one message per window: every cage's aggregate reaches the actuator, a malformed one alone is dropped, a malformed envelope drops the message", async () => {
  const dir = mkdtempSync(join(tmpdir(), "oc-link-"));
  const { logger, records } = capturingLogger();
  const received: CageAggregate[] = [];
  const aggregates = `ipc://${join(dir, "agg.sock")}`;
  const feeder = new MessagePublisher();
  const link = new ActuatorLink({ aggregates, publish: null, logger, onAggregate: (a) => received.push(a) });
  try {
    await feeder.bind(aggregates);
    await link.start();
    await waitFor("a valid window", () => {
      void feeder.publish(Topic.cageAggregates, Encoding.json, encodeCageAggregates([aggregate("warmup", {})]));
      return received.length > 0;
    });
    // Warm-up windows may still be in flight: only the test's cages count from here.
    const ours = (): CageAggregate[] => received.filter((a) => a.cage !== "warmup");
    const invalidBefore = link.invalidFrames;
    const broken = JSON.parse(JSON.stringify(aggregate("db", { idsPids: [7] }))) as { ids: Record<string, unknown> };
    broken.ids.pids = [-1];
    await feeder.publish(Topic.cageAggregates, Encoding.json, encodeJson({ v: 1, aggregates: [aggregate("web", { idsPids: [42] }), broken, aggregate("mail", { idsPids: [43] })] }));
    await waitFor("the window's two good aggregates", () => ours().length >= 2);
    assert.deepEqual(ours().map((a) => a.cage), ["web", "mail"]);
    assert.equal(link.invalidFrames - invalidBefore, 1);
    assert.match(String(records.find((r) => r.msg === "malformed aggregate, skipped")?.err), /aggregates\[1\]\) field ids\.pids/);

    // The per-cage topic is not what an actuator reads, and a bad envelope rejects the whole message.
    await feeder.publish(Topic.cageAggregate, Encoding.json, encodeJson(aggregate("web", {})));
    await feeder.publish(Topic.cageAggregates, Encoding.json, encodeJson({ v: 1, aggregates: { web: aggregate("web", {}) } }));
    await waitFor("the envelope rejected", () => link.invalidFrames - invalidBefore >= 2);
    assert.match(String(records.find((r) => r.msg === "malformed aggregates message, skipped")?.err), /field aggregates: must be an array/);
    assert.equal(ours().length, 2);
  } finally {
    await link.close();
    await feeder.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
