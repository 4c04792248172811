import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import * as zmq from "zeromq";
import { MessagePublisher, MessageSubscriber, type ReceivedMessage } from "../../protocol/messageBus.js";
import { encodeHeader, Encoding, PROTOCOL_VERSION, type ProtocolError } from "../../protocol/wireFormat.js";

const tempDir = mkdtempSync(join(tmpdir(), "oc-bus-"));
after(() => rmSync(tempDir, { recursive: true, force: true }));

async function freeTcpPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

let endpointCounter = 0;
const transports: Record<string, () => Promise<string>> = {
  ipc: () => Promise.resolve(`ipc://${join(tempDir, `bus-${++endpointCounter}.sock`)}`),
  tcp: async () => `tcp://127.0.0.1:${await freeTcpPort()}`,
  inproc: () => Promise.resolve(`inproc://message-bus-test-${++endpointCounter}`),
};

async function next(it: AsyncGenerator<ReceivedMessage>, timeoutMs = 30_000): Promise<ReceivedMessage> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no message within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const r = await Promise.race([it.next(), timeout]);
    if (r.done === true) throw new Error("the message stream ended");
    return r.value;
  } finally {
    clearTimeout(timer);
  }
}

/** Next message that is not a warm-up ping. */
async function nextData(it: AsyncGenerator<ReceivedMessage>): Promise<ReceivedMessage> {
  for (;;) {
    const m = await next(it);
    if (m.topic !== "test.warmup") return m;
  }
}

/**
 * PUB drops everything until the subscription has reached it (ZeroMQ's "slow joiner"), so
 * ping on a separate topic until one arrives before sending what the test counts.
 */
async function warmUp(ping: () => Promise<void>, it: AsyncGenerator<ReceivedMessage>): Promise<void> {
  let done = false;
  const pump = (async () => {
    while (!done) {
      await ping();
      await delay(20);
    }
  })();
  try {
    for (;;) if ((await next(it)).topic === "test.warmup") return;
  } finally {
    done = true;
    await pump;
  }
}

function rawHeader(publisherId: number, sequence: bigint): Buffer {
  return encodeHeader({ version: PROTOCOL_VERSION, encoding: Encoding.json, publisherId, sequence, sentAtUs: 0n });
}

for (const [transport, makeEndpoint] of Object.entries(transports)) {
  void test(`MessagePublisher → MessageSubscriber over ${transport}://: every message, in order, nothing lost`, async () => {
    const endpoint = await makeEndpoint();
    const publisher = new MessagePublisher();
    const subscriber = new MessageSubscriber();
    const invalid: ProtocolError[] = [];
    try {
      await publisher.bind(endpoint);
      subscriber.connect(endpoint);
      subscriber.subscribe("test.");
      const it = subscriber.messages((err) => invalid.push(err));
      await warmUp(() => publisher.publish("test.warmup", Encoding.json, Buffer.from("{}")), it);

      const N = 200;
      for (let i = 0; i < N; i++) void publisher.publish("test.data", Encoding.json, Buffer.from(JSON.stringify({ i })));
      for (let i = 0; i < N; i++) {
        const m = await nextData(it);
        assert.equal(m.topic, "test.data");
        assert.equal(m.header.publisherId, publisher.publisherId);
        assert.equal(m.header.sequence, BigInt(i));
        assert.equal(m.header.encoding, Encoding.json);
        assert.equal(m.lostBefore, 0);
        assert.deepEqual(JSON.parse(m.payload.toString()), { i });
      }
      assert.equal(subscriber.sequences.lostTotal, 0);
      assert.deepEqual(invalid, []);
      assert.equal(publisher.failed, 0);
    } finally {
      subscriber.close();
      await publisher.close();
    }
  });

  void test(`over ${transport}://: sequence gaps are counted as lost, a restarted publisher is not, garbage is reported and skipped`, async () => {
    const endpoint = await makeEndpoint();
    // A raw zeromq PUB lets the test write the sequence numbers and garbage frames itself.
    const raw = new zmq.Publisher({ linger: 0 });
    const subscriber = new MessageSubscriber();
    const invalid: { err: ProtocolError; frames: Buffer[] }[] = [];
    try {
      await raw.bind(endpoint);
      subscriber.connect(endpoint);
      subscriber.subscribe("test.");
      const it = subscriber.messages((err, frames) => invalid.push({ err, frames }));
      await warmUp(() => raw.send(["test.warmup", rawHeader(99, 0n), "{}"]), it);

      const send = (publisherId: number, seq: number): Promise<void> => raw.send(["test.data", rawHeader(publisherId, BigInt(seq)), JSON.stringify({ seq })]);
      await send(1, 0);
      await send(1, 1);
      await raw.send(["test.data", "not a header", "{}"]); // garbage: wrong header length
      await raw.send(["test.data", rawHeader(1, 2n)]); // garbage: two frames
      await send(1, 4); // 2 and 3 lost
      await send(1, 5);
      await send(1, 9); // 6, 7, 8 lost
      await send(2, 0); // the publisher restarted: a new id, sequence from 0
      await send(2, 1);

      const got: [number, number, number][] = [];
      for (let i = 0; i < 7; i++) {
        const m = await nextData(it);
        got.push([m.header.publisherId, Number(m.header.sequence), m.lostBefore]);
      }
      assert.deepEqual(got, [
        [1, 0, 0],
        [1, 1, 0],
        [1, 4, 2],
        [1, 5, 0],
        [1, 9, 3],
        [2, 0, 0],
        [2, 1, 0],
      ]);
      assert.equal(subscriber.sequences.lostTotal, 5);
      assert.equal(subscriber.invalid, 2);
      assert.deepEqual(
        invalid.map((x) => [x.err.where, x.frames.length]),
        [
          ["frame 1 (header)", 3],
          ["message", 2],
        ],
      );
    } finally {
      subscriber.close();
      raw.close();
    }
  });
}

void test("closing the subscriber ends its message stream", async () => {
  const subscriber = new MessageSubscriber();
  subscriber.connect(`inproc://message-bus-test-close`);
  subscriber.subscribe("test.");
  const it = subscriber.messages(() => {});
  const pending = it.next();
  await delay(10);
  subscriber.close();
  const r = await pending;
  assert.equal(r.done, true);
});

void test("receiveEach hands over the same checked messages as messages(), and returns on close", async () => {
  const endpoint = "inproc://message-bus-test-receive-each";
  const raw = new zmq.Publisher({ linger: 0 });
  const subscriber = new MessageSubscriber();
  const got: [string, number, number][] = [];
  const invalid: string[] = [];
  try {
    await raw.bind(endpoint);
    subscriber.connect(endpoint);
    subscriber.subscribe("test.");
    const done = subscriber.receiveEach(
      (m) => {
        got.push([m.topic, Number(m.header.sequence), m.lostBefore]);
        if (m.topic === "test.end") subscriber.close();
      },
      (err) => invalid.push(err.where),
    );
    // Slow joiner: send warm-up messages until the first arrives.
    while (got.length === 0) {
      await raw.send(["test.warmup", rawHeader(7, 0n), "{}"]);
      await delay(20);
    }
    await raw.send(["test.data", rawHeader(1, 0n), "{}"]);
    await raw.send(["test.data", rawHeader(1, 3n), "{}"]); // 1 and 2 lost
    await raw.send(["test.data", Buffer.alloc(5), "{}"]); // same topic, bad header
    await raw.send(["test.other", rawHeader(1, 0n), "{}"]);
    await raw.send(["test.end", rawHeader(1, 0n), "{}"]);
    await done;
    assert.deepEqual(
      got.filter(([topic]) => topic !== "test.warmup"),
      [
        ["test.data", 0, 0],
        ["test.data", 3, 2],
        ["test.other", 0, 0],
        ["test.end", 0, 0],
      ],
    );
    assert.deepEqual(invalid, ["frame 1 (header)"]);
  } finally {
    subscriber.close();
    raw.close();
  }
});

void test("publishing after close is counted as failed, not thrown", async () => {
  const publisher = new MessagePublisher();
  await publisher.bind(`inproc://message-bus-test-failed`);
  await publisher.close();
  await publisher.publish("test.data", Encoding.json, Buffer.from("{}"));
  assert.equal(publisher.failed, 1);
});

void test("a publisher that tracks subscriptions wants a topic only while a subscriber's prefix matches it", async () => {
  const endpoint = `ipc://${join(tempDir, `bus-${++endpointCounter}.sock`)}`;
  const pub = new MessagePublisher({ trackSubscriptions: true });
  const untracked = new MessagePublisher();
  const perCage = new MessageSubscriber();
  const everything = new MessageSubscriber();
  try {
    await pub.bind(endpoint);
    assert.equal(untracked.wants("agg.cage"), true, "without tracking every topic is wanted");
    assert.equal(pub.wants("agg.cage"), false, "no subscriber yet");
    perCage.connect(endpoint);
    perCage.subscribe("agg.window", "agg.cage");
    await waitUntil(() => pub.wants("agg.cage"));
    assert.equal(pub.wants("agg.window"), true);
    assert.equal(pub.wants("agg"), false, "a longer prefix does not match a shorter topic");
    perCage.close();
    await waitUntil(() => !pub.wants("agg.cage"));
    everything.connect(endpoint);
    everything.subscribe("");
    await waitUntil(() => pub.wants("act.state") && pub.wants("agg.cage"));
    // A subscriber that wants it receives what is published while wanted.
    const stream = everything.messages(() => undefined);
    await pub.publish("agg.cage", Encoding.json, Buffer.from("{}"));
    assert.equal((await next(stream)).topic, "agg.cage");
  } finally {
    perCage.close();
    everything.close();
    await pub.close();
    await untracked.close();
  }
});

async function waitUntil(ok: () => boolean, timeoutMs = 30_000): Promise<void> {
  const start = Date.now();
  while (!ok()) {
    if (Date.now() - start > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
    await delay(10);
  }
}
