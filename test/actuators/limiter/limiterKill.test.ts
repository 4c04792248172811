// HARD REQUIREMENT: whatever kills the limiter, even SIGKILL, no IDS process stays stopped.
// `cage actuator limiter` (sigstop mode) limits a real CPU-burning process tree; it is killed
// with SIGKILL at random moments, 20 times, and after each kill no process of the tree may be
// in state T (/proc/PID/stat) 1 s later. Then the same with the guardian killed first.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CAGE_JS } from "../../cli/cliHarness.js";
import { AggregateFeeder, aggregate, childrenOf, killTree, procState, startBurnerTree, stopChild, waitFor, writeCageFile } from "../actuatorHarness.js";

function writeConfig(dir: string, cage: string, idsPid: number): string {
  return writeCageFile(
    dir,
    ["  actuators:", "    limiter: { mode: sigstop, periodMs: 100, staleAfterMs: 2000 }"],
    [`  - name: ${cage}`, "    vm: { kind: process, match: [{ pid: 1, descendants: false }] }", `    ids: [{ pid: ${idsPid}, uid: 0 }]`, "    cpu: { cap: 100, idsCap: 20 }"],
  );
}

/** Guardian processes started by a limiter (their command line names the guardian entry). */
function pidsOfGuardians(): number[] {
  const { readdirSync, readFileSync } = fs;
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
      if (cmd.includes("guardianMain.js") && cmd.includes("limiter")) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

void test("kill -9 of the limiter at random moments, 20 times: no IDS process left stopped", { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "oc-limiter-kill-"));
  const cage = `kill${process.pid}`;
  const tree = startBurnerTree();
  await waitFor("the stand-in's two workers", () => childrenOf(tree.pid).length === 2);
  const pids = [tree.pid, ...childrenOf(tree.pid)];
  const endpoint = `ipc://${join(dir, "agg.sock")}`;
  const feeder = new AggregateFeeder(endpoint, () => [aggregate(cage, { idsPids: pids, idsPct: 200 })]);
  const config = writeConfig(dir, cage, tree.pid);
  const resumeMs: number[] = [];
  let stoppedAtKill = 0;
  let limiter: ReturnType<typeof spawn> | null = null;
  try {
    await feeder.start();
    for (let i = 0; i < 20; i++) {
      limiter = spawn(process.execPath, [CAGE_JS, "actuator", "limiter", "--config", config, "--endpoint", endpoint, "--publish", `ipc://${join(dir, "lim.sock")}`], { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      limiter.stderr?.on("data", (d: Buffer) => (err += d.toString()));
      // Wait until it is really duty-cycling (a worker seen stopped), then kill at a random moment.
      await waitFor(`limiter #${i} stopping the IDS (stderr: ${err.slice(-500)})`, () => pids.some((p) => procState(p) === "T"), 15_000);
      await sleep(Math.floor(Math.random() * 250));
      if (pids.some((p) => procState(p) === "T")) stoppedAtKill++;
      limiter.kill("SIGKILL");
      const t0 = Date.now();
      await waitFor(`no IDS process in state T after kill #${i}`, () => pids.every((p) => procState(p) !== "T"));
      resumeMs.push(Date.now() - t0);
      await new Promise((r) => (limiter?.exitCode !== null || limiter?.signalCode !== null ? r(undefined) : limiter?.once("exit", r)));
      // Still resumed a little later (nothing stops them again) and the guardian is gone.
      await sleep(150);
      assert.ok(pids.every((p) => procState(p) !== "T"), `kill #${i}: an IDS process was stopped again`);
      await waitFor("guardian exit", () => pidsOfGuardians().length === 0);
    }
    assert.equal(resumeMs.length, 20);
    assert.ok(stoppedAtKill >= 1, "at least one kill hit while the IDS was stopped");
    t.diagnostic(`resumed after SIGKILL within ${Math.max(...resumeMs)} ms (max of 20; ${stoppedAtKill} kills hit a stopped phase)`);
  } finally {
    if (limiter) await stopChild(limiter);
    await feeder.close();
    await killTree(tree);
    rmSync(dir, { recursive: true, force: true });
  }
});

void test("the guardian killed first: the limiter resumes the IDS at once and starts a new guardian", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "oc-limiter-guard-"));
  const cage = `guard${process.pid}`;
  const tree = startBurnerTree();
  await waitFor("workers", () => childrenOf(tree.pid).length === 2);
  const pids = [tree.pid, ...childrenOf(tree.pid)];
  const endpoint = `ipc://${join(dir, "agg.sock")}`;
  const feeder = new AggregateFeeder(endpoint, () => [aggregate(cage, { idsPids: pids, idsPct: 200 })]);
  const limiter = spawn(process.execPath, [CAGE_JS, "actuator", "limiter", "--config", writeConfig(dir, cage, tree.pid), "--endpoint", endpoint, "--publish", `ipc://${join(dir, "lim.sock")}`], { stdio: "ignore" });
  try {
    await feeder.start();
    await waitFor("duty cycling", () => pids.some((p) => procState(p) === "T"), 15_000);
    const [guardian] = pidsOfGuardians();
    assert.ok(guardian !== undefined);
    // Kill the guardian right after the limiter stopped the IDS.
    await waitFor("stopped phase", () => pids.some((p) => procState(p) === "T"));
    process.kill(guardian, "SIGKILL");
    await waitFor("a new guardian", () => pidsOfGuardians().some((p) => p !== guardian));
    await waitFor("duty cycling again", () => pids.some((p) => procState(p) === "T"));
    // And the new guardian does its job too.
    limiter.kill("SIGKILL");
    await waitFor("resumed", () => pids.every((p) => procState(p) !== "T"));
  } finally {
    await stopChild(limiter);
    await feeder.close();
    await killTree(tree);
    rmSync(dir, { recursive: true, force: true });
  }
});
