import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { parseProcCpuTicks } from "../../host/proc/processTable.js";
import { agentProcessName, agentUsage, readAgentTree, type AgentProcessSample } from "../../pipeline/agentProcesses.js";

const sample = (pid: number, ppid: number, cmdline: string, cpuTicks: number, rssBytes: number): AgentProcessSample => ({ pid, ppid, cmdline, cpuTicks, rssBytes });

void test("children of the root name their subtree; cage members and strangers are left out", () => {
  const samples = [
    sample(10, 1, "node dist/cli/cage.js run", 100, 1000),
    sample(11, 10, "node /x/dist/collectors/cpu/main.js --interval-ms 100", 50, 2000),
    sample(12, 11, "bpftrace -e ...", 300, 3000),
    sample(13, 10, "node /x/dist/pipeline/main.js --config c", 20, 4000),
    sample(14, 10, "node /x/dist/cli/demo/demoWorkload.js --kind vm", 999, 9999),
    sample(15, 14, "child of a cage member", 999, 9999),
    sample(16, 10, "node /x/dist/actuators/balloon/main.js", 1, 10),
    sample(17, 10, "node /x/dist/cli/cage.js collector xentrace --endpoint e", 2, 20),
    sample(99, 1, "unrelated", 5, 5),
  ];
  const usage = agentUsage(samples, 10, "supervisor", new Set([14]));
  assert.deepEqual(Object.fromEntries(usage), {
    supervisor: { cpuSeconds: 1, rssBytes: 1000 },
    "collector-cpu": { cpuSeconds: 3.5, rssBytes: 5000 },
    pipeline: { cpuSeconds: 0.2, rssBytes: 4000 },
    "actuator-balloon": { cpuSeconds: 0.01, rssBytes: 10 },
    "collector-xentrace": { cpuSeconds: 0.02, rssBytes: 20 },
  });
  assert.equal(agentProcessName("sleep 60"), "other");
});

void test("stat fields 14 and 15 are read after the last ')'", () => {
  const line = `42 (a) b) c) S 1 ${Array.from({ length: 48 }, (_, i) => String(i + 5)).join(" ")}`;
  // Field n (n >= 5) holds n here, so utime = 14, stime = 15.
  assert.deepEqual(parseProcCpuTicks(line), { utimeTicks: 14, stimeTicks: 15 });
  assert.throws(() => parseProcCpuTicks("42 (x) S 1 2"), /fields 14-15 \(utime, stime\) are not integers/);
});

void test("reads a real process tree from /proc, children included", async () => {
  const child = spawn("sh", ["-c", "sleep 30 & wait"], { stdio: "ignore" });
  let sleeperPid: number | undefined;
  try {
    // Wait until sh has forked its sleep.
    const deadline = Date.now() + 30_000;
    let tree: AgentProcessSample[] = [];
    while (Date.now() < deadline) {
      tree = readAgentTree(process.pid);
      if (tree.some((s) => s.cmdline === "sleep 30")) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const me = tree.find((s) => s.pid === process.pid);
    assert.ok(me && me.rssBytes > 0 && me.cpuTicks > 0, "this process, with memory and CPU");
    const sh = tree.find((s) => s.pid === child.pid);
    assert.equal(sh?.ppid, process.pid);
    const sleeper = tree.find((s) => s.cmdline === "sleep 30");
    sleeperPid = sleeper?.pid;
    assert.equal(sleeper?.ppid, child.pid);
    const own = Number(readFileSync("/proc/self/stat", "utf8").split(" ")[0]);
    assert.equal(own, process.pid);
    const usage = agentUsage(tree, process.pid, "pipeline", new Set());
    assert.ok((usage.get("other")?.rssBytes ?? 0) > 0, "sh and sleep are grouped under 'other'");
  } finally {
    // The sleep would outlive sh: kill it by its PID first.
    if (sleeperPid !== undefined) process.kill(sleeperPid, "SIGKILL");
    child.kill("SIGKILL");
    await once(child, "exit");
  }
});
