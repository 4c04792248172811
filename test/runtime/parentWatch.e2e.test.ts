// `cage run` SIGKILLed during its start-up (0.2–3 s in, while its children are still loading and
// starting): no agent process may be left with parent 1 five seconds later. Starts the whole
// agent (collectors, pipeline, CPU actuator, limiter): run under the e2e lock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseProcStat } from "../../host/proc/processTable.js";
import { CAGE_JS } from "../cli/cliHarness.js";

/** This checkout: every process it starts (node entries, bpftrace programs) names a file below it. */
const REPO = dirname(dirname(dirname(CAGE_JS)));

/** Our processes whose parent is now PID 1, by PID with their command line. */
function orphans(): Map<number, string> {
  const out = new Map<number, string>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = parseProcStat(readFileSync(`/proc/${d}/stat`, "utf8"));
      if (stat.ppid !== 1 || stat.state === "Z") continue;
      const cmdline = readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0").join(" ");
      if (cmdline.includes(`${REPO}/`)) out.set(Number(d), cmdline);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

void test("SIGKILL of `cage run` during start-up leaves no agent process behind after 5 s", { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "oc-orphans-"));
  const vm = spawn("sleep", ["600"], { stdio: "ignore" });
  const ids = spawn("sleep", ["600"], { stdio: "ignore" });
  const config = join(dir, "cages.yaml");
  writeFileSync(
    config,
    [
      "agent:",
      `  runtimeDir: ${join(dir, "run")}`,
      `  stateDir: ${join(dir, "state")}`,
      "  logLevel: warn",
      "  prometheus: false",
      "  actuators:",
      "    cpu: { periodMs: 100, staleAfterMs: 1000 }",
      "    limiter: { mode: sigstop, periodMs: 100, staleAfterMs: 1000 }",
      "cages:",
      "  - name: orphans",
      `    vm: { kind: process, match: [{ pid: ${String(vm.pid)} }] }`,
      `    ids: [{ pid: ${String(ids.pid)}, uid: 0 }]`,
      "    cpu: { cap: 100, idsCap: 20, failsafeCap: 40 }",
      "",
    ].join("\n"),
  );
  const before = new Set(orphans().keys());
  const left: string[] = [];
  // Fixed moments across start-up: before the children exist, while they load, while they start.
  const killAfterMs = [250, 800, 1400, 2100, 2900];
  let run: ChildProcess | null = null;
  try {
    for (const ms of killAfterMs) {
      run = spawn(process.execPath, [CAGE_JS, "run", "--config", config], { stdio: "ignore" });
      await sleep(ms);
      const exited = new Promise<void>((resolve) => (run as ChildProcess).once("exit", () => resolve()));
      run.kill("SIGKILL");
      await exited;
      await sleep(5_000);
      const now = [...orphans()].filter(([pid]) => !before.has(pid));
      t.diagnostic(`killed ${ms} ms after start: ${now.length} agent processes with parent 1 after 5 s`);
      for (const [pid, cmdline] of now) {
        left.push(`${ms} ms: ${pid} ${cmdline.slice(0, 160)}`);
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone meanwhile
        }
      }
    }
    assert.deepEqual(left, [], "no orphans");
  } finally {
    run?.kill("SIGKILL");
    vm.kill("SIGKILL");
    ids.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
