// `cage collector xentrace` as a process, over ZeroMQ, with a FAKE xentrace replaying a real Xen 4.17
// trace and a FAKE xl printing real `xl info` / `xl list` output (no hypervisor on the test machine).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import { MessageSubscriber, type ReceivedMessage } from "../../../protocol/messageBus.js";
import { decodeCollectorStatus } from "../../../protocol/cageAggregate.js";
import { Topic } from "../../../protocol/wireFormat.js";
import { decodeXenDomainCpu, type XenDomainCpu } from "../../../protocol/xenDomainCpu.js";
import { pidsIn, writeFakeXentrace, writeFakeXl } from "./fakeXen.js";
import { CAGE_JS, runCage } from "../../cli/cliHarness.js";
import { processExists } from "../../../host/proc/processTable.js";

const dir = mkdtempSync(join(tmpdir(), "oc-xenproc-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const MAIN_JS = fileURLToPath(new URL("../../../collectors/xentrace/main.js", import.meta.url));

void test("cage collector xentrace: bad arguments exit 2 with an exact message", async () => {
  const cases: [string[], string][] = [
    [[], "cage collector xentrace: --endpoint EP is required"],
    [["--endpoint", "ipc://relative"], 'cage collector xentrace: --endpoint must be ipc:///absolute/path or tcp://HOST:PORT, got "ipc://relative"'],
    [["--endpoint", "ipc:///tmp/x.sock", "--window-ms", "10"], 'cage collector xentrace: --window-ms must be an integer from 50 to 3600000, got "10"'],
    [["--endpoint", "ipc:///tmp/x.sock", "--cpu-hz", "2596"], "cage collector xentrace: --cpu-hz: 2596 is 2596 Hz, outside 1 MHz..100 GHz (did you mean 2596M?)"],
    [["--endpoint", "ipc:///tmp/x.sock", "--frobnicate"], 'cage collector xentrace: unknown option "--frobnicate"'],
    [["--endpoint", "ipc:///tmp/x.sock", "--xentrace"], "cage collector xentrace: --xentrace needs a value"],
    [["--endpoint", "ipc:///tmp/x.sock", "extra"], 'cage collector xentrace: unexpected argument "extra"'],
  ];
  for (const [args, message] of cases) {
    const r = await runCage(["collector", "xentrace", ...args], process.env, 20_000);
    assert.equal(r.code, 2, args.join(" "));
    assert.equal(r.stderr.split("\n")[0], message);
    assert.match(r.stderr, /usage: cage collector xentrace --endpoint/);
  }
  const other = await runCage(["collector", "nope"], process.env, 20_000);
  assert.equal(other.code, 2);
  assert.match(other.stderr, /^cage collector: unknown subcommand "nope"; expected cpu, memory, pagecache or xentrace\n/);
});

void test("collectors/xentrace/main.js run directly is the same entry", async () => {
  const child = spawn(process.execPath, [MAIN_JS, "--endpoint"], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  assert.equal(code, 2);
  assert.match(err, /^cage collector xentrace: --endpoint needs a value\n/);
});

async function next(it: AsyncGenerator<ReceivedMessage>, timeoutMs: number): Promise<ReceivedMessage | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
  try {
    const r = await Promise.race([it.next(), timeout]);
    return r === undefined || r.done === true ? undefined : r.value;
  } finally {
    clearTimeout(timer);
  }
}

void test("cage collector xentrace publishes raw.xen over ZeroMQ; SIGTERM stops it and the fake xentrace", async () => {
  const pidFile = join(dir, "pids");
  const xentrace = writeFakeXentrace(dir, "fake-xentrace", { fixture: "trace-sched-2dom.bin", chunkBytes: 1024, delayMs: 40, pidFile });
  const xl = writeFakeXl(dir);
  const endpoint = `ipc://${join(dir, "xen.sock")}`;
  const subscriber = new MessageSubscriber();
  subscriber.connect(endpoint);
  subscriber.subscribe(Topic.rawXen, Topic.status);
  const messages = subscriber.messages((err) => assert.fail(err.message));

  const child = spawn(process.execPath, [CAGE_JS, "collector", "xentrace", "--endpoint", endpoint, "--window-ms", "100", "--xentrace", xentrace, "--xl", xl], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr.on("data", (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  try {
    const windows: XenDomainCpu[] = [];
    const deadline = Date.now() + 30_000;
    while (windows.filter((w) => w.domains.length > 0).length < 3) {
      assert.ok(Date.now() < deadline, `no raw.xen windows within 30 s; log:\n${log.slice(-3000)}`);
      const m = await next(messages, 1000);
      if (m?.topic === Topic.rawXen) windows.push(decodeXenDomainCpu(m.payload));
    }
    const w = windows.find((x) => x.domains.some((d) => d.domain === 1));
    assert.ok(w !== undefined, "domu1 appears");
    assert.equal(w.cpuHz, 2596149000, "TSC rate from the fake xl info");
    assert.equal(w.domains.find((d) => d.domain === 1)?.name, "domu1");
    assert.equal(w.domains.find((d) => d.domain === 0)?.name, "Domain-0");

    const [xentracePid] = pidsIn(pidFile);
    assert.ok(xentracePid !== undefined && processExists(xentracePid), "the fake xentrace is running");
    child.kill("SIGTERM");
    // The final window and the "stopped" status are sent before the socket closes.
    let sawFinal = false;
    let stopped = false;
    while (!stopped) {
      const m = await next(messages, 30_000);
      if (m === undefined) break;
      if (m.topic === Topic.rawXen && decodeXenDomainCpu(m.payload).final) sawFinal = true;
      if (m.topic === Topic.status && decodeCollectorStatus(m.payload).state === "stopped") stopped = true;
    }
    // 0: stop() finished within the process's stop deadline (past it, the runtime exits 1).
    assert.equal(await exited, 0);
    assert.ok(sawFinal, "final window published on shutdown");
    assert.ok(stopped, "stopped status published");
    for (const pid of pidsIn(pidFile)) assert.equal(processExists(pid), false, `fake xentrace ${pid} left behind`);
    assert.match(log, /"msg":"xentrace collector started"/);
    assert.match(log, /"name":"collector-xentrace"/);
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
    subscriber.close();
    await delay(10);
  }
});
