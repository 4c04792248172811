// agent.actuators.external for real: `cage run` starts the example third-party actuator
// (examples/external-actuator/cap_advisor.py, Python with Debian's python3-zmq), the pipeline
// exports its act.state on /metrics and stores it in a real influxd, a kill -9 of it is followed
// by a restart, and when `cage run` itself is SIGKILLed the actuator notices the hang-up of its
// inherited channel and exits. Run under the shared e2e lock (real bpftrace CPU collector).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { startCage } from "./cliHarness.js";
import { freePort, InfluxServer, stopChild } from "../../lab/common/realServers.js";

const ADVISOR = fileURLToPath(new URL("../../../examples/external-actuator/cap_advisor.py", import.meta.url));

/** PIDs whose command line contains `needle`, with their parent PIDs. */
function processesRunning(needle: string): { pid: number; ppid: number }[] {
  const found: { pid: number; ppid: number }[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (!readFileSync(`/proc/${d}/cmdline`, "utf8").includes(needle)) continue;
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      found.push({ pid: Number(d), ppid: Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) });
    } catch {
      // gone
    }
  }
  return found;
}

async function until<T>(what: string, ms: number, output: () => string, probe: () => Promise<T | null> | T | null): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms; agent output:\n${output().slice(-3000)}`);
    await sleep(200);
  }
}

async function metricsText(port: number): Promise<string> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    return res.ok ? await res.text() : "";
  } catch {
    return "";
  }
}

test("cage run supervises an external Python actuator: its state exported and stored, restarted after kill -9, gone with the agent", { timeout: 240_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "oc-external-"));
  const influx = await InfluxServer.start(join(dir, "influx"));
  const port = await freePort();
  const workloads: ChildProcess[] = [];
  let agent: ReturnType<typeof startCage> | null = null;
  t.after(async () => {
    agent?.child.kill("SIGKILL");
    for (const w of workloads) w.kill("SIGKILL");
    for (const p of processesRunning(ADVISOR)) process.kill(p.pid, "SIGKILL");
    await influx.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  // A "VM" and an "IDS": short bounded loops, found by marker arguments.
  for (const marker of ["oc-ext-vm-marker", "oc-ext-ids-marker"]) {
    workloads.push(spawn(process.execPath, ["-e", "const end = Date.now() + 200000; while (Date.now() < end) { for (let i = 0; i < 1e6; i++); }", marker], { stdio: "ignore" }));
  }
  const config = join(dir, "cages.yaml");
  writeFileSync(
    config,
    `agent:\n  runtimeDir: ${join(dir, "run")}\n  pageCache: false\n  prometheus: { port: ${port} }\n` +
      `  influx: { url: "${influx.url}", database: oc_external, flushMs: 500 }\n` +
      `  actuators:\n    external:\n      - { name: advisor, command: /usr/bin/python3, args: ["${ADVISOR}"], stopTimeoutMs: 3000 }\n` +
      `cages:\n  - name: e1\n    vm: { kind: process, match: [{ cmdline: oc-ext-vm-marker }] }\n    ids: [{ cmdline: oc-ext-ids-marker, user: root }]\n    cpu: { cap: 100 }\n`,
  );
  agent = startCage(["run", "--config", config]);
  const agentPid = agent.child.pid as number;
  const output = agent.output;

  const first = await until("the advisor started by cage run", 60_000, output, () => processesRunning(ADVISOR).find((p) => p.ppid === agentPid) ?? null);
  // Its state reaches /metrics with its own actuator name.
  await until("advisor state on /metrics", 60_000, output, async () => (/actuator="advisor"/.test(await metricsText(port)) ? true : null));
  // And InfluxDB: the tag value is there once its points are flushed.
  await until("advisor points in InfluxDB", 60_000, output, async () => {
    const r = await influx.query('SHOW TAG VALUES WITH KEY = "actuator"', "oc_external").catch(() => null);
    return JSON.stringify(r ?? "").includes('"advisor"') ? true : null;
  });

  process.kill(first.pid, "SIGKILL");
  const second = await until("the advisor restarted after kill -9", 30_000, output, () => processesRunning(ADVISOR).find((p) => p.ppid === agentPid && p.pid !== first.pid) ?? null);
  assert.notEqual(second.pid, first.pid);
  // The restarted one publishes again: a decision counter or state for it keeps being exported.
  await sleep(2500);
  assert.match(await metricsText(port), /actuator="advisor"/);

  // SIGKILL of cage run: the advisor sees its channel hang up and exits (no orphan).
  agent.child.kill("SIGKILL");
  await until("the advisor gone after cage run died", 10_000, output, () => (processesRunning(ADVISOR).length === 0 ? true : null));
  for (const w of workloads) await stopChild(w, "SIGKILL");
});
