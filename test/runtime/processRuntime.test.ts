import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { STOP_TIMEOUT_MS, SUPERVISOR_KILL_MARGIN_MS, DEFAULT_STOP_TIMEOUT_MS } from "../../runtime/processRuntime.js";
import { processExists } from "../../host/proc/processTable.js";

const FIXTURE = fileURLToPath(new URL("./processFixture.js", import.meta.url));
const PARENT = fileURLToPath(new URL("./parentFixture.js", import.meta.url));

async function waitFor(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await sleep(25);
  }
}

async function exitOf(child: ChildProcess): Promise<[number | null, NodeJS.Signals | null]> {
  if (child.exitCode !== null || child.signalCode !== null) return [child.exitCode, child.signalCode];
  return (await once(child, "exit")) as [number | null, NodeJS.Signals | null];
}

for (const channel of ["ipc", "none"] as const) {
void test(`a parent that dies during a slow start-up stops the child: start aborted, stop run, exit (${channel === "ipc" ? "IPC channel" : "supervisor PID only"})`, async () => {
  const marks = mkdtempSync(join(tmpdir(), "oc-runtime-"));
  const parent = spawn(process.execPath, [PARENT, "--mode", "slow-start", "--marks", marks], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PARENT_FIXTURE_CHANNEL: channel } });
  let childPid = 0;
  try {
    let out = "";
    parent.stdout.on("data", (d: Buffer) => (out += d.toString()));
    await waitFor("the child's PID", () => /^\d+\n/.test(out), 30_000);
    childPid = Number(out.trim());
    await waitFor("the child's start-up to begin", () => existsSync(join(marks, "start-began")), 30_000);
    assert.ok(!existsSync(join(marks, "started")), "start-up is still waiting");

    parent.kill("SIGKILL");
    await exitOf(parent);
    await waitFor("the orphaned child to exit", () => !processExists(childPid), 30_000);
    assert.ok(existsSync(join(marks, "start-aborted")), "start() saw its abort signal");
    assert.ok(existsSync(join(marks, "stopped")), "stop() ran on what start() returned");
  } finally {
    parent.kill("SIGKILL");
    if (childPid > 0 && processExists(childPid)) process.kill(childPid, "SIGKILL");
    rmSync(marks, { recursive: true, force: true });
  }
});
}

void test("SIGTERM during a slow start-up aborts it and exits 0 after stop()", async () => {
  const marks = mkdtempSync(join(tmpdir(), "oc-runtime-"));
  const child = spawn(process.execPath, [FIXTURE, "--mode", "slow-start", "--marks", marks], { stdio: ["ignore", "ignore", "pipe"] });
  try {
    await waitFor("start-up to begin", () => existsSync(join(marks, "start-began")), 30_000);
    child.kill("SIGTERM");
    const [code] = await exitOf(child);
    assert.equal(code, 0);
    assert.ok(existsSync(join(marks, "start-aborted")) && existsSync(join(marks, "stopped")));
  } finally {
    child.kill("SIGKILL");
    rmSync(marks, { recursive: true, force: true });
  }
});

void test("a stop that overruns its deadline ends the process with exit 1 at the deadline", async () => {
  const marks = mkdtempSync(join(tmpdir(), "oc-runtime-"));
  const child = spawn(process.execPath, [FIXTURE, "--mode", "stuck-stop", "--marks", marks], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  try {
    await waitFor("the service to start", () => existsSync(join(marks, "started")), 30_000);
    const t0 = Date.now();
    child.kill("SIGTERM");
    // A second signal is ignored: it must not cut the stop short.
    await waitFor("stop to begin", () => existsSync(join(marks, "stop-began")), 30_000);
    child.kill("SIGINT");
    const [code, signal] = await exitOf(child);
    const took = Date.now() - t0;
    assert.equal(signal, null, "exited by itself, not killed by the second signal");
    assert.equal(code, 1);
    assert.ok(took >= 450 && took < 3_000, `exited ${took} ms after SIGTERM; the fixture's deadline is 500 ms`);
    assert.ok(!existsSync(join(marks, "stopped")));
    assert.match(stderr, /did not stop within its deadline/);
  } finally {
    child.kill("SIGKILL");
    rmSync(marks, { recursive: true, force: true });
  }
});

void test("a bad command line prints the parser's message and the usage, exit 2, nothing started", () => {
  const marks = mkdtempSync(join(tmpdir(), "oc-runtime-"));
  try {
    const r = spawnSync(process.execPath, [FIXTURE, "--mode", "fast", "--marks", marks], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 2);
    assert.equal(r.stderr, 'processFixture: --mode must be slow-start or stuck-stop, got "fast"\nusage: processFixture --mode slow-start|stuck-stop --marks DIR\n');
    assert.ok(!existsSync(join(marks, "start-began")));
  } finally {
    rmSync(marks, { recursive: true, force: true });
  }
});

void test("stop deadlines: one default, longer only for the actuators that restore state and their guardian", () => {
  const longer = Object.entries(STOP_TIMEOUT_MS).filter(([, ms]) => ms !== DEFAULT_STOP_TIMEOUT_MS).map(([name]) => name).sort();
  assert.deepEqual(longer, ["actuator-balloon", "actuator-cpu", "actuator-limiter", "guardian"]);
  assert.ok(SUPERVISOR_KILL_MARGIN_MS > 0);
  // A guardian asked to stop waits for its actuator: it must outlast the actuator's own deadline and the supervisor's kill.
  for (const name of ["actuator-balloon", "actuator-cpu", "actuator-limiter"] as const) {
    assert.ok(STOP_TIMEOUT_MS.guardian > STOP_TIMEOUT_MS[name] + SUPERVISOR_KILL_MARGIN_MS, `guardian ${STOP_TIMEOUT_MS.guardian} ms vs ${name} ${STOP_TIMEOUT_MS[name]} ms`);
  }
});
