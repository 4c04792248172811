// xl and virsh back ends. There is no Xen hypervisor on the test machine outside the Xen lab, so
// these tests run a FAKE xl that replays the REAL dom0 transcript in
// ../shared/fixtures/xen-commands (its `xl list` table, with Mem following `xl mem-set` as Xen's
// does), appending its argv to a log, so the exact commands are checked. The virsh back end runs
// against a real libvirtd in virshBalloon.e2e.test.ts.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BalloonActuator } from "../../../actuators/balloon/balloonActuator.js";
import { XlBalloonBackend, virshSize, xlSize } from "../../../actuators/balloon/commandBackends.js";
import { CAGE_JS } from "../../cli/cliHarness.js";
import { waitFor } from "../actuatorHarness.js";
import { ActuatorWatcher, FakePipeline, MiB, agentConfigWith, balloonSpec, captureLogger, memoryCage, startBalloonActuator, tempDir } from "./balloonHarness.js";

const TRANSCRIPT = fileURLToPath(new URL("../../../../../shared/fixtures/xen-commands/dom0-session-1.log", import.meta.url));
const work = tempDir("ocage-xl-");
after(() => work.remove());

/** The first `xl list` table of the real transcript that lists domu1 (header and rows, as printed). */
function realXlListTable(): string[] {
  const text = readFileSync(TRANSCRIPT, "utf8");
  const blocks = text.split("### $ ").filter((b) => b.startsWith("xl list\n") && b.includes("domu1"));
  const lines = (blocks[0] ?? "").split("\n").slice(1);
  return lines.slice(0, lines.findIndex((l) => l.startsWith("### rc=")));
}

/** Writes a FAKE xl (no Xen on this host). mode "fail": mem-set fails with xl's real error text. */
function writeFakeXl(name: string, mode: "ok" | "fail"): { path: string; argvLog: string } {
  // Named xl in a folder of its own: the restore guardian runs only programs named xl or virsh.
  mkdirSync(join(work.dir, name));
  const path = join(work.dir, name, "xl");
  const argvLog = `${path}.argv`;
  const state = `${path}.state.json`;
  const table = realXlListTable();
  const mem = Object.fromEntries(table.slice(1).map((l) => [l.slice(0, 40).trim(), Number(l.slice(40).trim().split(/\s+/)[1])]));
  writeFileSync(state, JSON.stringify(mem));
  writeFileSync(
    path,
    `#!${process.execPath}
// FAKE xl for tests (no Xen on this host): replays the real transcript's xl list table.
"use strict";
const fs = require("node:fs");
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(argvLog)}, JSON.stringify(args) + "\\n");
const mem = JSON.parse(fs.readFileSync(${JSON.stringify(state)}, "utf8"));
const table = ${JSON.stringify(table)};
const name = (d) => (d === "0" ? "Domain-0" : d === "1" ? "domu1" : d);
if (args[0] === "mem-set") {
  if (${JSON.stringify(mode)} === "fail") {
    process.stderr.write("libxl: error: libxl_mem.c:369:libxl_set_memory_target: memory_dynamic_max must be less than or equal to memory_static_max\\n");
    process.exit(1);
  }
  // xl's parse_mem_size_kb: a bare number is MiB; k/m/g/t/b suffixes.
  const m = /^(\\d+)([kmgtb]?)$/i.exec(args[2] || "");
  if (!m) { process.stderr.write("invalid memory size: " + args[2] + "\\n"); process.exit(1); }
  const kib = { "": 1024, m: 1024, k: 1, g: 1048576, t: 1073741824, b: 1 / 1024 }[m[2].toLowerCase()] * Number(m[1]);
  mem[name(args[1])] = Math.floor(kib / 1024);
  fs.writeFileSync(${JSON.stringify(state)}, JSON.stringify(mem));
  process.exit(0);
}
if (args[0] === "list") {
  const out = [table[0]];
  for (const row of table.slice(1)) {
    const n = row.slice(0, 40).trim();
    if (args[1] !== undefined && name(args[1]) !== n) continue;
    const cols = row.slice(40);
    out.push(row.slice(0, 40) + cols.replace(/^(\\s+\\d+\\s+)(\\d+)/, (_, a, b) => a + String(mem[n]).padStart(b.length)));
  }
  if (out.length === 1) { process.stderr.write("libxl: error: libxl_domain.c: Invalid domain identifier\\n"); process.exit(1); }
  process.stdout.write(out.join("\\n") + "\\n");
  process.exit(0);
}
process.stderr.write("fake xl: unsupported " + args.join(" ") + "\\n");
process.exit(1);
`,
  );
  chmodSync(path, 0o755);
  return { path, argvLog };
}

function argvOf(log: string): string[][] {
  try {
    return readFileSync(log, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as string[]);
  } catch {
    return [];
  }
}

void test("xl sizes always carry a unit suffix; virsh sizes are KiB", () => {
  assert.equal(xlSize(96 * MiB), "96m");
  assert.equal(xlSize(96 * MiB + 4096), "98308k");
  assert.throws(() => xlSize(1000), /at least 1 MiB/);
  assert.equal(virshSize(512 * MiB), "524288KiB");
  assert.equal(virshSize(512 * MiB + 1), "524289KiB");
});

void test("xl back end (fake xl, no Xen on this host): mem-set with a suffix, Mem read back from xl list", async () => {
  const xl = writeFakeXl("xl-ok", "ok");
  const backend = new XlBalloonBackend("domu1", { commandPath: xl.path });
  assert.equal(await backend.readActual(), 128 * MiB); // the real transcript's domu1 row
  await backend.apply(96 * MiB);
  assert.equal(await backend.readActual(), 96 * MiB);
  assert.deepEqual(argvOf(xl.argvLog), [["list", "domu1"], ["mem-set", "domu1", "96m"], ["list", "domu1"]]);
});

void test("xl missing or failing: clear messages", async () => {
  const missing = new XlBalloonBackend("domu1", { commandPath: join(work.dir, "no-such-xl") });
  await assert.rejects(missing.apply(96 * MiB), (e: Error) => /no-such-xl does not exist/.test(e.message));
  const failing = new XlBalloonBackend("domu1", { commandPath: writeFakeXl("xl-fail", "fail").path });
  await assert.rejects(failing.apply(96 * MiB), (e: Error) => /`.*xl-fail\/xl mem-set domu1 96m` exited 1: .*memory_dynamic_max must be less than or equal to memory_static_max/.test(e.message));
  assert.throws(() => new XlBalloonBackend("-x", { commandPath: "xl" }), /invalid Xen domain/);
});

void test("actuator with xl (fake xl): domU shrinks, dom0 grows by the same amount, in that order; restore on exit", async () => {
  const xl = writeFakeXl("xl-act", "ok");
  const pipeline = new FakePipeline(`ipc://${join(work.dir, "agg-xl.sock")}`);
  await pipeline.start(100);
  const watcher = new ActuatorWatcher(`ipc://${join(work.dir, "act-xl.sock")}`);
  const spec = balloonSpec({ xlPath: xl.path, dom0: { baseBytes: 512 * MiB, maxBytes: 640 * MiB } });
  const { logger } = captureLogger();
  const actuator = await startBalloonActuator([memoryCage("domu1", { kind: "xen", domain: "domu1" }, 128 * MiB, 64 * MiB)], spec, pipeline, watcher, logger);
  try {
    pipeline.set("domu1", 32 * MiB);
    const s = await watcher.waitForState("domu1", (x) => x.values.vmActualBytes === 96 * MiB && x.values.hostTargetBytes === 544 * MiB, 10_000, "domU 96 MiB, dom0 544 MiB");
    assert.equal(s.backend, "xl-mem-set");
    assert.equal(s.values.movedBytes, 32 * MiB);
    const sets = argvOf(xl.argvLog).filter((a) => a[0] === "mem-set");
    assert.deepEqual(sets, [["mem-set", "domu1", "96m"], ["mem-set", "0", "544m"]], "shrink the domU first, then grow dom0");
    // Past max: dom0 is capped at its max (640 MiB) even though the domU would give more.
    pipeline.set("domu1", 200 * MiB); // domU held at its floor 64 MiB: moved 64 MiB → dom0 576 MiB
    await watcher.waitForState("domu1", (x) => x.values.vmActualBytes === 64 * MiB && x.values.hostTargetBytes === 576 * MiB, 10_000, "domU at floor");
  } finally {
    await actuator.stop();
    await watcher.close();
    await pipeline.close();
  }
  const sets = argvOf(xl.argvLog).filter((a) => a[0] === "mem-set");
  assert.deepEqual(sets.slice(-2), [["mem-set", "0", "512m"], ["mem-set", "domu1", "128m"]], "exit: dom0 back to base first, then the domU to its base");
});

void test("actuator with a failing xl: error state, counter, decision with the error, no crash", async () => {
  const xl = writeFakeXl("xl-act-fail", "fail");
  const pipeline = new FakePipeline(`ipc://${join(work.dir, "agg-xlf.sock")}`);
  await pipeline.start(100);
  const watcher = new ActuatorWatcher(`ipc://${join(work.dir, "act-xlf.sock")}`);
  const spec = balloonSpec({ xlPath: xl.path, minMoveIntervalMs: 200 });
  const { logger, lines } = captureLogger();
  const actuator = await startBalloonActuator([memoryCage("domu1", { kind: "xen", domain: 1 }, 128 * MiB, 64 * MiB), memoryCage("gone", { kind: "xen", domain: "domu9" }, 128 * MiB, 64 * MiB)], spec, pipeline, watcher, logger);
  try {
    pipeline.set("domu1", 32 * MiB);
    pipeline.set("gone", 32 * MiB);
    const s = await watcher.waitForState("domu1", (x) => x.mode === "error" && (x.values.backendErrors ?? 0) >= 3, 10_000, "error state");
    const d = watcher.decisions.find((x) => x.cage === "domu1" && x.error !== undefined);
    assert.match(d?.error ?? "", /mem-set 1 96m` exited 1: .*memory_dynamic_max/);
    assert.equal(s.values.vmTargetBytes, undefined, "a failed move is not reported as the target");
    const gone = await watcher.waitForState("gone", (x) => x.mode === "error", 10_000, "unknown domain");
    assert.ok((gone.values.backendErrors ?? 0) >= 1);
    assert.ok(lines.some((l) => l.msg.startsWith("balloon back end failed") && /Invalid domain identifier/.test(String(l.err))));
    const missing = new BalloonActuator({
      config: agentConfigWith([memoryCage("domu1", { kind: "xen", domain: 1 }, 128 * MiB, 64 * MiB)], { ...spec, xlPath: "/nonexistent/xl" }),
      spec: { ...spec, xlPath: "/nonexistent/xl" },
      aggregates: pipeline.endpoint,
      publish: null,
      logger,
    });
    await missing.start();
    await missing.tick();
    assert.match(missing.snapshot()[0]?.lastError ?? "", /\/nonexistent\/xl does not exist/);
    assert.equal(missing.snapshot()[0]?.mode, "error");
    await missing.stop();
  } finally {
    await actuator.stop();
    await watcher.close();
    await pipeline.close();
  }
});

void test("SIGKILL of `cage actuator balloon` (fake xl): its guardian puts the domU at its fail-safe; the next run restores the size found", { timeout: 90_000 }, async (t) => {
  const xl = writeFakeXl("xl-kill", "ok");
  const pipeline = new FakePipeline(`ipc://${join(work.dir, "agg-kill.sock")}`);
  await pipeline.start(100);
  const config = join(work.dir, "kill.yaml");
  writeFileSync(
    config,
    [
      "agent:",
      `  runtimeDir: ${join(work.dir, "kill-run")}`,
      `  stateDir: ${join(work.dir, "kill-state")}`,
      "  logLevel: warn",
      "  prometheus: false",
      "  actuators:",
      `    balloon: { xlPath: ${xl.path}, periodMs: 100, minMoveIntervalMs: 100, staleAfterMs: 60000 }`,
      "cages:",
      "  - name: domu1",
      "    vm: { kind: xen, domain: domu1 }",
      "    cpu: { cap: 100 }",
      "    memory: { base: 128MiB, floor: 64MiB, failsafe: 112MiB }",
      "",
    ].join("\n"),
  );
  let stderr = "";
  const start = (): ChildProcess => {
    const child = spawn(process.execPath, [CAGE_JS, "actuator", "balloon", "--config", config, "--endpoint", pipeline.endpoint], { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    return child;
  };
  const memSets = (): string[] => argvOf(xl.argvLog).filter((a) => a[0] === "mem-set").map((a) => a.join(" "));
  let actuator = start();
  try {
    pipeline.set("domu1", 32 * MiB);
    await waitFor(`domU shrunk (stderr: ${stderr.slice(-500)})`, () => memSets().includes("mem-set domu1 96m"), 20_000);
    assert.ok(existsSync(join(work.dir, "kill-state", "originals-balloon.json")), "the size found is recorded before the first change");
    const killedAt = Date.now();
    actuator.kill("SIGKILL");
    await waitFor("the domU at its fail-safe (112 MiB) by the guardian", () => memSets().at(-1) === "mem-set domu1 112m");
    const restoredMs = Date.now() - killedAt;
    t.diagnostic(`balloon fail-safe in place ${restoredMs} ms after the actuator's SIGKILL`);
    assert.ok(restoredMs <= 1_500, `fail-safe in place ${restoredMs} ms after the SIGKILL`);

    // The next run finds 112 MiB but restores the 128 MiB recorded by the first run on its orderly stop.
    actuator = start();
    await waitFor("shrunk again by the new run", () => memSets().filter((m) => m === "mem-set domu1 96m").length >= 2, 20_000);
    const exited = new Promise<void>((resolve) => actuator.once("exit", () => resolve()));
    actuator.kill("SIGTERM");
    await exited;
    assert.equal(memSets().at(-1), "mem-set domu1 128m", `the size found before the agent (stderr: ${stderr.slice(-800)})`);
    assert.ok(!existsSync(join(work.dir, "kill-state", "originals-balloon.json")), "the record is removed after a clean restore");
  } finally {
    if (actuator.exitCode === null && actuator.signalCode === null) actuator.kill("SIGKILL");
    await pipeline.close();
  }
});
