import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { CageSpec } from "../../../config/cageConfig.js";
import { resolveCages } from "../../../host/proc/cageMembership.js";
import { scanProcesses, type ProcessInfo } from "../../../host/proc/processTable.js";

const NO_CPU = { cap: 100, idsCap: null, weight: null };

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGKILL");
  await once(child, "exit");
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

void test("a real process tree: a parent and the child it spawned resolve as one IDS", async () => {
  const tag = `3${randomBytes(3).readUIntBE(0, 3)}`; // a unique sleep argument to find the child by
  let parent: ChildProcess | undefined;
  let childPid: number | undefined;
  try {
    // bash forks here (the sleep is not its last command), so there is a parent and a child.
    parent = spawn("/bin/bash", ["-c", `sleep ${tag}; true`], { stdio: "ignore" });
    await once(parent, "spawn");
    const parentPid = parent.pid as number;
    const child = await waitFor("the child sleep", () => scanProcesses().find((p) => p.ppid === parentPid && p.cmdline === `sleep ${tag}`));
    childPid = child.pid;

    const cages: CageSpec[] = [
      { name: "tree", vm: { kind: "xen", domain: 1 }, ids: [{ pid: parentPid, descendants: true }], cpu: NO_CPU, memory: null },
      { name: "only-parent", vm: { kind: "process", match: [{ pid: parentPid, descendants: false }] }, ids: [], cpu: NO_CPU, memory: null },
    ];
    const r = resolveCages(cages, scanProcesses());
    assert.deepEqual(r.get("tree")?.ids.map((p) => p.pid), [parentPid, child.pid].sort((a, b) => a - b));
    assert.deepEqual(r.get("only-parent")?.vm, []); // both already belong to the first cage
    const alone = resolveCages([cages[1] as CageSpec], scanProcesses());
    assert.deepEqual(alone.get("only-parent")?.vm.map((p) => p.pid), [parentPid]);
    const byComm = resolveCages([{ ...(cages[0] as CageSpec), ids: [{ comm: "sleep", cmdline: `^sleep ${tag}$`, descendants: true }] }], scanProcesses());
    assert.deepEqual(byComm.get("tree")?.ids.map((p) => p.pid), [child.pid]);
  } finally {
    // Killing bash does not kill its sleep: stop the child first or it outlives the test.
    if (childPid !== undefined) {
      try {
        process.kill(childPid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await stop(parent);
  }
});

async function inCgroupTest(dir: string, matchPath: string): Promise<void> {
  let sleeper: ChildProcess | undefined;
  mkdirSync(dir);
  try {
    sleeper = spawn("/bin/sleep", ["30"], { stdio: "ignore" });
    await once(sleeper, "spawn");
    const pid = sleeper.pid as number;
    writeFileSync(`${dir}/cgroup.procs`, String(pid));
    assert.ok(readFileSync(`${dir}/cgroup.procs`, "utf8").split("\n").includes(String(pid)));

    const cages: CageSpec[] = [
      { name: "vm-by-cgroup", vm: { kind: "cgroup", path: matchPath }, ids: [], cpu: NO_CPU, memory: null },
      { name: "ids-by-cgroup", vm: { kind: "xen", domain: 0 }, ids: [{ cgroup: matchPath, descendants: false }], cpu: NO_CPU, memory: null },
    ];
    const table = scanProcesses();
    assert.deepEqual(resolveCages(cages, table).get("vm-by-cgroup")?.vm.map((p: ProcessInfo) => p.pid), [pid]);
    assert.deepEqual(resolveCages([cages[1] as CageSpec], table).get("ids-by-cgroup")?.ids.map((p) => p.pid), [pid]);
    // Our own process is not in it.
    assert.ok(!resolveCages(cages, table).get("vm-by-cgroup")?.vm.some((p) => p.pid === process.pid));
  } finally {
    await stop(sleeper);
    // The cgroup can only be removed once its last task is gone; reaping takes a moment.
    for (let i = 0; i < 50 && existsSync(dir); i++) {
      try {
        rmdirSync(dir);
      } catch {
        await sleep(20);
      }
    }
  }
  assert.ok(!existsSync(dir), `${dir} was not removed`);
}

void test("a real v1 memory cgroup matcher", { skip: !existsSync("/sys/fs/cgroup/memory/cgroup.procs") || process.getuid?.() !== 0 }, async () => {
  const dir = `/sys/fs/cgroup/memory/offloadcage-test-${randomBytes(4).toString("hex")}`;
  await inCgroupTest(dir, dir);
});

void test("a real v2 cgroup matcher on the hybrid host's unified hierarchy", { skip: !existsSync("/sys/fs/cgroup/unified/cgroup.procs") || process.getuid?.() !== 0 }, async () => {
  const dir = `/sys/fs/cgroup/unified/offloadcage-test-${randomBytes(4).toString("hex")}`;
  await inCgroupTest(dir, `${dir}/`);
});
