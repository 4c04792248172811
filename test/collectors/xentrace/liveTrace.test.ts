// The live collector loop (LiveXentrace) against a FAKE xentrace that replays real Xen 4.17 traces,
// and a FAKE xl that prints real `xl info` / `xl list` output. No hypervisor is involved.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { pino } from "pino";
import { LiveXentrace, type LiveTraceOptions } from "../../../collectors/xentrace/liveTrace.js";
import { runXentraceSummarize } from "../../../collectors/xentrace/summarizeCommand.js";
import { decodeCollectorStatus, type CollectorStatus } from "../../../protocol/cageAggregate.js";
import { Encoding, Topic, type EncodingId } from "../../../protocol/wireFormat.js";
import { decodeXenDomainCpu, type XenDomainCpu } from "../../../protocol/xenDomainCpu.js";
import { fixturePath } from "./fixtures.js";
import { pidsIn, writeFakeXentrace, writeFakeXl } from "./fakeXen.js";
import { processExists } from "../../../host/proc/processTable.js";

const dir = mkdtempSync(join(tmpdir(), "oc-xenlive-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const XL_INFO_HZ = 2596149000; // cpu_mhz : 2596.149 in the transcript

class CapturingPublisher {
  readonly windows: XenDomainCpu[] = [];
  readonly statuses: CollectorStatus[] = [];
  publish(topic: string, encoding: EncodingId, payload: Buffer): Promise<void> {
    assert.equal(encoding, Encoding.json);
    if (topic === Topic.rawXen) this.windows.push(decodeXenDomainCpu(payload));
    else if (topic === Topic.status) this.statuses.push(decodeCollectorStatus(payload));
    else assert.fail(`unexpected topic ${topic}`);
    return Promise.resolve();
  }
}

const silent = pino({ level: "silent" });

const started: LiveXentrace[] = [];
after(async () => {
  for (const c of started) await c.stop(); // a failed test must not leave a collector looping
});

function collector(publisher: CapturingPublisher, o: Partial<LiveTraceOptions>): LiveXentrace {
  const c = new LiveXentrace({
    publisher,
    log: silent,
    windowMs: 50,
    statusMs: 100,
    backoff: { initialMs: 100, maxMs: 400, healthyAfterMs: 60_000 },
    ...o,
  });
  started.push(c);
  return c;
}

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

async function summarizeJson(fixture: string, cpuHz: number): Promise<{ domains: { domain: number; runSeconds: number }[]; traceSeconds: number }> {
  let text = "";
  const out = new Writable({
    write(chunk: Buffer, _e, done) {
      text += chunk.toString();
      done();
    },
  });
  assert.equal(await runXentraceSummarize([fixturePath(fixture), "--cpu-hz", String(cpuHz), "--json"], out), 0);
  return JSON.parse(text) as { domains: { domain: number; runSeconds: number }[]; traceSeconds: number };
}

function sumByDomain(windows: XenDomainCpu[]): Map<number, number> {
  const sums = new Map<number, number>();
  for (const w of windows) {
    for (const d of w.domains) {
      assert.equal(d.runNs, d.vcpus.reduce((s, v) => s + v.runNs, 0));
      sums.set(d.domain, (sums.get(d.domain) ?? 0) + d.runNs);
    }
  }
  return sums;
}

for (const fixture of ["trace-sched-2dom.bin", "trace-all-2dom.bin"]) {
  void test(`${fixture} through a fake xentrace: raw.xen windows sum to runXentraceSummarize within 0.5%`, async () => {
    const pidFile = join(dir, `${fixture}.pids`);
    const xentrace = writeFakeXentrace(dir, `fake-xentrace-${fixture}`, { fixture, chunkBytes: 2048, delayMs: 8, pidFile });
    const xl = writeFakeXl(dir);
    const pub = new CapturingPublisher();
    const c = collector(pub, { xentracePath: xentrace, xlPath: xl }); // no cpuHz: read from the fake `xl info`
    c.start();
    const size = statSync(fixturePath(fixture)).size;
    await until("the whole trace to be read", () => c.counters.bytes >= size);
    await until("a window after the last bytes", () => pub.windows.length >= 3);
    const pid = c.xentracePid;
    assert.ok(pid !== undefined && processExists(pid), "fake xentrace runs until stopped");
    await c.stop();
    assert.equal(processExists(pid), false, "stop() leaves no xentrace behind");
    assert.deepEqual(pidsIn(pidFile), [pid]);

    const windows = pub.windows;
    assert.ok(windows.length >= 4, `several windows, got ${windows.length}`);
    assert.equal(windows.filter((w) => w.final).length, 1);
    assert.equal(windows.at(-1)?.final, true, "the last window is the final one");
    for (const w of windows) {
      assert.equal(w.cpuHz, XL_INFO_HZ);
      assert.equal(w.session, 1);
      assert.equal(w.corrupt, 0);
      for (const d of w.domains) for (const v of d.vcpus) assert.ok(v.runNs >= 0);
    }
    const named = new Map(windows.flatMap((w) => w.domains.map((d) => [d.domain, d.name] as const)));
    assert.equal(named.get(0), "Domain-0");
    assert.equal(named.get(1), "domu1");

    const expected = await summarizeJson(fixture, XL_INFO_HZ);
    const sums = sumByDomain(windows);
    for (const d of expected.domains) {
      const got = (sums.get(d.domain) ?? 0) / 1e9;
      assert.ok(Math.abs(got - d.runSeconds) <= 0.005 * d.runSeconds, `domain ${d.domain}: windows sum ${got} s, summarize ${d.runSeconds} s`);
    }
    const span = windows.reduce((s, w) => s + w.windowSeconds, 0);
    assert.ok(Math.abs(span - expected.traceSeconds) <= 0.005 * expected.traceSeconds, `window spans ${span} s vs trace ${expected.traceSeconds} s`);

    const last = pub.statuses.at(-1);
    assert.equal(last?.state, "stopped");
    assert.equal(last?.counters.restarts, 0);
    assert.equal(last?.counters.corrupt, 0);
    assert.ok((last?.counters.records ?? 0) > 1000);
    assert.equal(last?.counters.windows, windows.length);
    assert.equal(last?.counters.internalErrors, 0);
  });
}

void test("a fake xentrace that dies is restarted with backoff; windows resume in the new session", async () => {
  const pidFile = join(dir, "die.pids");
  const size = statSync(fixturePath("trace-sched-2dom.bin")).size;
  const xentrace = writeFakeXentrace(dir, "fake-xentrace-dies", { fixture: "trace-sched-2dom.bin", mode: "die", dieAfterBytes: size >> 1, chunkBytes: 4096, delayMs: 5, pidFile });
  const pub = new CapturingPublisher();
  const c = collector(pub, { xentracePath: xentrace, cpuHz: 2596e6, domainNames: false });
  c.start();
  await until("two restarts", () => c.counters.restarts >= 2);
  await until("a window from session 3", () => pub.windows.some((w) => w.session >= 3));
  await c.stop();
  const restarting = pub.statuses.filter((s) => s.state === "restarting");
  assert.ok(restarting.length >= 2);
  assert.match(restarting[0]?.message ?? "", /^xentrace exited with code 1 after \d+ ms .*restarting in 100 ms$/);
  assert.ok(restarting.some((r) => r.message?.includes("(last stderr: change evtmask to 0x2f000)")), "the last stderr line is quoted");
  assert.match(restarting[1]?.message ?? "", /restarting in 200 ms/, "the delay doubles");
  for (const session of [1, 2]) {
    const ws = pub.windows.filter((w) => w.session === session);
    assert.ok(ws.length >= 1 && ws.at(-1)?.final === true, `session ${session} ends with a final window`);
    assert.ok(ws.some((w) => w.domains.length > 0));
  }
  const pids = pidsIn(pidFile);
  assert.ok(pids.length >= 3);
  for (const pid of pids) assert.equal(processExists(pid), false);
  assert.equal(pub.statuses.at(-1)?.counters.internalErrors, 0);
});

void test("a fake xentrace that writes garbage: corrupt counts, windows go on, no crash", async () => {
  const pidFile = join(dir, "garbage.pids");
  const xentrace = writeFakeXentrace(dir, "fake-xentrace-garbage", { fixture: "trace-sched-2dom.bin", mode: "garbage", chunkBytes: 3000, delayMs: 5, pidFile });
  const pub = new CapturingPublisher();
  const c = collector(pub, { xentracePath: xentrace, cpuHz: 2596e6, domainNames: false });
  c.start();
  const size = statSync(fixturePath("trace-sched-2dom.bin")).size;
  await until("the whole trace to be read", () => c.counters.bytes > size);
  await c.stop();
  const last = pub.statuses.at(-1);
  assert.ok((last?.counters.corrupt ?? 0) > 0, "corruption counted");
  assert.equal(last?.counters.restarts, 0, "garbage does not kill the collector");
  assert.equal(last?.counters.internalErrors, 0);
  assert.ok(pub.windows.reduce((s, w) => s + w.corrupt, 0) > 0, "windows report corruption");
  assert.ok((sumByDomain(pub.windows).get(1) ?? 0) > 0, "domu1 still has run time");
});

void test("xentrace missing and xl info failing: reported on status, retried, never thrown", async () => {
  const pub = new CapturingPublisher();
  const c = collector(pub, { xentracePath: join(dir, "no-such-xentrace"), cpuHz: 2596e6, domainNames: false });
  c.start();
  await until("two restarts", () => c.counters.restarts >= 2);
  await c.stop();
  assert.match(pub.statuses.find((s) => s.state === "restarting")?.message ?? "", /xentrace failed \(spawn .*no-such-xentrace ENOENT\)/);

  const xlDir = mkdtempSync(join(dir, "xlfail-"));
  const pub2 = new CapturingPublisher();
  const c2 = collector(pub2, { xentracePath: join(dir, "no-such-xentrace"), xlPath: writeFakeXl(xlDir, { infoFails: true, listFails: true }) });
  c2.start();
  await until("an error status", () => pub2.statuses.some((s) => s.state === "error"));
  await c2.stop();
  assert.match(pub2.statuses.find((s) => s.state === "error")?.message ?? "", /cannot get the TSC rate \(pass --cpu-hz\): .*xl info/);
  assert.ok((pub2.statuses.at(-1)?.counters.xlErrors ?? 0) >= 2, "xl info and xl list failures counted");
});
