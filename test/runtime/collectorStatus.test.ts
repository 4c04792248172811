import { test } from "node:test";
import assert from "node:assert/strict";
import { pino } from "pino";
import { CollectorStatusPublisher } from "../../runtime/collectorStatus.js";
import { decodeCollectorStatus, type CollectorStatus } from "../../protocol/cageAggregate.js";
import { Topic } from "../../protocol/wireFormat.js";

function recorder(): { sent: CollectorStatus[]; sink: { publish(topic: string, encoding: number, payload: Buffer): Promise<void> } } {
  const sent: CollectorStatus[] = [];
  return {
    sent,
    sink: {
      publish(topic, _encoding, payload) {
        assert.equal(topic, Topic.status);
        sent.push(decodeCollectorStatus(payload));
        return Promise.resolve();
      },
    },
  };
}

test("state changes are published once each, with the reason and fresh counters", () => {
  const { sent, sink } = recorder();
  let restarts = 0;
  const status = new CollectorStatusPublisher({ collector: "cpu", publisher: sink, log: pino({ level: "silent" }), counters: () => ({ restarts }) });
  status.publish();
  status.set("running");
  status.set("running");
  restarts = 1;
  status.set("restarting", "bpftrace exited (code 1)");
  assert.deepEqual(
    sent.map((s) => [s.collector, s.state, s.message, s.counters.restarts]),
    [
      ["cpu", "started", undefined, 0],
      ["cpu", "running", undefined, 0],
      ["cpu", "restarting", "bpftrace exited (code 1)", 1],
    ],
  );
});

test("a publisher that throws does not reach the collector", () => {
  const status = new CollectorStatusPublisher({
    collector: "memory",
    publisher: { publish: () => { throw new Error("socket closed"); } },
    log: pino({ level: "silent" }),
    counters: () => ({}),
  });
  assert.doesNotThrow(() => status.set("stopped"));
  assert.throws(() => status.startPeriodic(0), /everyMs must be a positive integer, got 0/);
});
