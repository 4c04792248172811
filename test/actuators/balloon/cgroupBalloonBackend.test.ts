// The cgroup back end against REAL cgroups: a v1 memory cgroup holding a real process that has
// touched memory (the "process VM"), driven by the real actuator process (`cage actuator balloon`)
// from synthetic aggregates on a real ZeroMQ socket. cgroup v2: this host binds the memory
// controller to v1 (the v2 hierarchy offers only hugetlb), so memory.max cannot exist in a v2
// cgroup here; the test checks the back end's message against a real v2 cgroup that lacks it.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import { CgroupBalloonBackend, cgroupMemoryVersion } from "../../../actuators/balloon/cgroupBalloonBackend.js";
import { ActuatorWatcher, FakePipeline, MiB, tempDir } from "./balloonHarness.js";

const CAGE_BIN = fileURLToPath(new URL("../../../cli/cage.js", import.meta.url));
const V1 = `/sys/fs/cgroup/memory/ocage-balloon-${process.pid}`;
const V2 = `/sys/fs/cgroup/unified/ocage-balloon-${process.pid}`;
const work = tempDir("ocage-cg-");
const children: ChildProcess[] = [];

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await delay(200);
  for (const dir of [V1, V2]) {
    if (!existsSync(dir)) continue;
    // Move anything left to the root, then remove.
    try {
      for (const pid of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) writeFileSync(join(dir, "..", "cgroup.procs"), pid);
    } catch {
      /* gone already */
    }
    try {
      rmdirSync(dir);
    } catch {
      /* best effort */
    }
  }
  work.remove();
});

/** A real process in the cgroup that touches `mib` MiB of anonymous memory and then idles. */
function startVmProcess(cgroup: string, mib: number): ChildProcess {
  const script = `const b = Buffer.alloc(${mib} * 1048576, 1); setInterval(() => b[0]++, 1000);`;
  const child = spawn(process.execPath, ["-e", script], { stdio: "ignore" });
  children.push(child);
  writeFileSync(join(cgroup, "cgroup.procs"), String(child.pid));
  return child;
}

void test("path decides the cgroup version", () => {
  assert.equal(cgroupMemoryVersion("/sys/fs/cgroup/memory/vm1"), 1);
  assert.equal(cgroupMemoryVersion("/sys/fs/cgroup/unified/vm1"), 2);
  assert.equal(cgroupMemoryVersion("/sys/fs/cgroup/vm1.slice"), 2);
  assert.equal(new CgroupBalloonBackend("/sys/fs/cgroup/vm1.slice", "memory.high").limitFile, "/sys/fs/cgroup/vm1.slice/memory.high");
});

void test("v1 back end on a real cgroup: limit written and read back; a missing cgroup is a clear error", async () => {
  mkdirSync(V1);
  const backend = new CgroupBalloonBackend(V1);
  assert.equal(backend.kind, "cgroup-v1");
  await backend.apply(200 * MiB);
  assert.equal(readFileSync(join(V1, "memory.limit_in_bytes"), "utf8").trim(), String(200 * MiB));
  assert.equal(await backend.readActual(), 200 * MiB);
  await backend.apply(100_000); // not a page multiple: the kernel rounds down
  assert.equal(await backend.readActual(), 98304);
  const gone = new CgroupBalloonBackend(`${V1}-missing`);
  await assert.rejects(gone.readActual(), /-missing \(memory.limit_in_bytes\): cannot read .*: the cgroup does not exist$/);
});

void test("v2 back end on this host: the real v2 cgroup has no memory.max (memory bound to v1): clear error", async (t) => {
  const controllers = readFileSync("/sys/fs/cgroup/unified/cgroup.controllers", "utf8").trim();
  if (controllers.split(/\s+/).includes("memory")) {
    t.skip("this host has the v2 memory controller; the write path would be exercisable here");
    return;
  }
  mkdirSync(V2);
  const backend = new CgroupBalloonBackend(V2);
  assert.equal(backend.kind, "cgroup-v2");
  await assert.rejects(backend.apply(100 * MiB), /memory.max: the cgroup does not exist, or the v2 memory controller is not enabled for it/);
  t.diagnostic(`v2 controllers available here: "${controllers}": memory.max/memory.high cannot be exercised`);
});

void test("`cage actuator balloon` process, cgroup v1 process VM: limit follows base − IDS memory; SIGTERM restores the limit found; SIGKILL → the guardian's fail-safe", async (t) => {
  if (!existsSync(V1)) mkdirSync(V1);
  writeFileSync(join(V1, "memory.limit_in_bytes"), "-1");
  const found = readFileSync(join(V1, "memory.limit_in_bytes"), "utf8").trim();
  startVmProcess(V1, 64);
  const pipeline = new FakePipeline(`ipc://${join(work.dir, "agg.sock")}`);
  await pipeline.start(200);
  const watcher = new ActuatorWatcher(`ipc://${join(work.dir, "act.sock")}`);
  const configPath = join(work.dir, "cages.yaml");
  writeFileSync(
    configPath,
    [
      "agent:",
      `  runtimeDir: ${work.dir}`,
      `  stateDir: ${join(work.dir, "state")}`,
      "  logLevel: info",
      "  actuators:",
      "    balloon: { periodMs: 200, staleAfterMs: 3000, minMoveIntervalMs: 200, maxStep: 256MiB }",
      "cages:",
      "  - name: pvm",
      "    vm: { kind: process, match: [{ cgroup: " + V1 + " }] }",
      "    cpu: { cap: 100 }",
      "    memory: { base: 512MiB, floor: 128MiB, cgroup: " + V1 + " }",
    ].join("\n"),
  );
  const child = spawn(process.execPath, [CAGE_BIN, "actuator", "balloon", "--config", configPath, "--endpoint", pipeline.endpoint, "--publish", watcher.endpoint], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  let stderr = "";
  child.stderr?.on("data", (b: Buffer) => (stderr += b.toString()));
  watcher.start();
  const limit = (): number => Number(readFileSync(join(V1, "memory.limit_in_bytes"), "utf8").trim());
  try {
    pipeline.set("pvm", 100 * MiB, 12 * MiB);
    const s = await watcher.waitForState("pvm", (x) => x.values.vmActualBytes === 400 * MiB, 15_000, "limit 400 MiB");
    assert.equal(s.backend, "cgroup-v1");
    assert.equal(limit(), 400 * MiB);
    pipeline.set("pvm", 600 * MiB);
    await watcher.waitForState("pvm", (x) => x.values.vmActualBytes === 128 * MiB, 15_000, "limit at the floor");
    assert.equal(limit(), 128 * MiB, "held at the floor (the VM process uses 64 MiB, so the kernel accepts it)");
    // The aggregates stop: fail-safe (default: base).
    pipeline.silence("pvm");
    const fs = await watcher.waitForState("pvm", (x) => x.mode === "failsafe" && x.values.vmActualBytes === 512 * MiB, 10_000, "fail-safe");
    t.diagnostic(`stale → mode ${fs.mode}, limit ${limit() / MiB} MiB`);
    pipeline.set("pvm", 300 * MiB);
    await watcher.waitForState("pvm", (x) => x.mode === "active" && x.values.vmActualBytes === 212 * MiB, 15_000, "active again");
  } finally {
    child.kill("SIGTERM");
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    await watcher.close();
    await pipeline.close();
    assert.equal(code, 0, stderr);
  }
  assert.equal(readFileSync(join(V1, "memory.limit_in_bytes"), "utf8").trim(), found, "SIGTERM: the actuator gives the VM the limit it found back before exiting");
  assert.match(stderr, /actuator exiting: restore the VM's memory as found/);

  // SIGKILL cannot be caught, but the restore guardian puts the VM at its fail-safe (memory.failsafe, default base).
  const again = spawn(process.execPath, [CAGE_BIN, "actuator", "balloon", "--config", configPath, "--endpoint", pipeline.endpoint, "--publish", `ipc://${join(work.dir, "act-b.sock")}`], { stdio: "ignore" });
  children.push(again);
  const p2 = new FakePipeline(pipeline.endpoint);
  await p2.start(200);
  p2.set("pvm", 100 * MiB);
  const deadline = Date.now() + 15_000;
  while (limit() !== 412 * MiB && Date.now() < deadline) await delay(100);
  assert.equal(limit(), 412 * MiB);
  const killedAt = Date.now();
  again.kill("SIGKILL");
  await new Promise((resolve) => again.once("exit", resolve));
  // A bound on waiting, not on the guardian's speed (the time is reported below).
  while (limit() !== 512 * MiB && Date.now() - killedAt < 30_000) await delay(10);
  const failsafeAfterMs = Date.now() - killedAt;
  await p2.close();
  assert.equal(limit(), 512 * MiB, "after SIGKILL the guardian puts the VM at its fail-safe (base)");
  t.diagnostic(`after SIGKILL: limit ${limit() / MiB} MiB (the fail-safe) ${failsafeAfterMs} ms after the kill`);
});
