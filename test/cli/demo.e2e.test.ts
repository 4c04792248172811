/**
 * The embedded demo (`npm start` runs `cage demo`): the demo cage's metrics must
 * reach the Prometheus endpoint, and stopping it must leave nothing running. How long they took
 * is printed, not asserted (a loaded host starts bpftrace slowly); 60 s is only a hang guard.
 */
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { startCage } from "./cliHarness.js";
import { DescendantSet, procReader } from "../../host/proc/processTree.js";


async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function describe(pid: number): string {
  try {
    return `${pid} ${readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ")}`;
  } catch {
    return `${pid} (gone)`;
  }
}

test("demo serves cage metrics and stops cleanly", async () => {
  const dir = mkdtempSync(join(tmpdir(), "offloadcage-demo-"));
  const port = await freePort();
  const { child, output } = startCage(["demo", "--prometheus-port", String(port)], { ...process.env, OFFLOADCAGE_RUNTIME_DIR: dir });
  const t0 = Date.now();
  let body = "";
  let started: number[];
  try {
    while (Date.now() - t0 < 60_000) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        body = await res.text();
        if (/cage_cpu_seconds_total[^\n]*cage="demo"[^\n]*role="ids"[^\n]* (?!0\n)[\d.e+-]+\n/.test(body)) break;
      } catch {
        // not listening yet
      }
      await sleep(250);
    }
    const took = Date.now() - t0;
    assert.match(body, /cage_cpu_seconds_total[^\n]*cage="demo"/, `no demo metrics after ${took} ms; agent output:\n${output().slice(-3000)}`);
    process.stdout.write(`# demo metrics on the endpoint after ${took} ms\n`);
    // The IDS and VM workloads are both being measured.
    const ids = /cage_cpu_seconds_total[^\n]*cage="demo"[^\n]*role="ids"[^\n]* ([\d.e+-]+)/.exec(body);
    assert.ok(ids && Number(ids[1]) > 0, `no IDS cpu time in:\n${body.slice(0, 3000)}`);
    // Prometheus's linter finds nothing in the demo's exposition, and no series is a percentage.
    const lint = spawnSync("promtool", ["check", "metrics"], { input: body, encoding: "utf8" });
    assert.equal(lint.error, undefined, `promtool could not run: ${String(lint.error)}`);
    assert.equal(`${lint.stdout}${lint.stderr}`, "", "promtool check metrics reports nothing on the demo's exposition");
    assert.equal(lint.status, 0);
    assert.doesNotMatch(body, /^# UNIT \S+ %$/m);
    assert.match(output(), /OffloadCage demo/, "cage top is shown");
  } finally {
    // Only this agent's own processes: other agents may run on the machine at the same time.
    const tree = new DescendantSet([child.pid as number], procReader);
    tree.discover();
    started = tree.pids.filter((pid) => pid !== child.pid);
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    rmSync(dir, { recursive: true, force: true });
  }
  // Children get SIGTERM from the supervisor; bpftrace takes a moment to detach its probes.
  const alive = (): number[] => started.filter((pid) => procReader.parentOf(pid) !== null);
  for (let i = 0; i < 300 && alive().length > 0; i++) await sleep(100);
  assert.ok(started.length >= 5, `the agent's children (workloads, collectors, pipeline) were seen: ${started.join(",")}`);
  assert.deepEqual(alive().map(describe), [], "every process the demo started has exited within 30 s of cage demo");
});
