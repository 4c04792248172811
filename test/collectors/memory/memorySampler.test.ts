import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { sampleMemory } from "../../../collectors/memory/memorySampler.js";

const MiB = 1024 * 1024;
/** Above pid_max's ceiling (2^22), so it can never exist. */
const NO_SUCH_PID = 4_194_305;

void test("a vanished PID is skipped and counted, not an error", () => {
  const before = process.hrtime.bigint();
  const s = sampleMemory([process.pid, NO_SUCH_PID]);
  assert.ok(s.batch.sampledAtNs >= before && s.batch.sampledAtNs <= process.hrtime.bigint());
  assert.deepEqual(s.batch.processes.map((p) => p.pid), [process.pid]);
  assert.ok((s.batch.processes[0]?.vmRssBytes ?? 0) > 0);
  assert.deepEqual(s.vanished, [NO_SUCH_PID]);
  assert.deepEqual(s.failures, []);
  assert.deepEqual(sampleMemory([]).batch.processes, []);
});

void test("a malformed status is a failure for that PID only", () => {
  const root = mkdtempSync(join(tmpdir(), "fake-proc-"));
  try {
    mkdirSync(join(root, "5"));
    writeFileSync(join(root, "5", "status"), "VmRSS:\tmany kB\n");
    mkdirSync(join(root, "6"));
    writeFileSync(join(root, "6", "status"), "VmRSS:\t100 kB\nVmHWM:\t200 kB\n");
    const s = sampleMemory([5, 6, 7], root);
    assert.deepEqual(s.batch.processes, [{ pid: 6, vmRssBytes: 102400, rssAnonBytes: 0, rssFileBytes: 0, rssShmemBytes: 0, vmHwmBytes: 204800 }]);
    assert.deepEqual(s.failures, [{ pid: 5, message: '/proc/5/status: field VmRSS: expected "<number> kB", got "many kB"' }]);
    assert.deepEqual(s.vanished, [7]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

void test("a real process that allocates and touches 64 MiB: VmRSS grows by 64 MiB (within 5%)", async () => {
  // The child reports ready, waits for "go", allocates 64 MiB and writes every page, reports done.
  const script = `
    const rl = require("node:readline").createInterface({ input: process.stdin });
    let keep;
    console.log("ready");
    rl.on("line", () => { keep = Buffer.alloc(${64 * MiB}, 1); console.log("done"); });
    setInterval(() => keep, 1000);
  `;
  const child = spawn(process.execPath, ["--max-semi-space-size=1", "-e", script], { stdio: ["pipe", "pipe", "inherit"] });
  try {
    const lines = createInterface({ input: child.stdout });
    const next = async (): Promise<string> => ((await once(lines, "line")) as [string])[0];
    assert.equal(await next(), "ready");
    await new Promise((r) => setTimeout(r, 300)); // let start-up settle
    const pid = child.pid as number;
    const before = sampleMemory([pid]).batch.processes[0];
    child.stdin.write("go\n");
    assert.equal(await next(), "done");
    const after = sampleMemory([pid]).batch.processes[0];
    assert.ok(before && after);
    const grewBy = after.vmRssBytes - before.vmRssBytes;
    const anonGrewBy = after.rssAnonBytes - before.rssAnonBytes;
    assert.ok(Math.abs(grewBy - 64 * MiB) <= 0.05 * 64 * MiB, `VmRSS grew by ${(grewBy / MiB).toFixed(2)} MiB`);
    assert.ok(Math.abs(anonGrewBy - 64 * MiB) <= 0.05 * 64 * MiB, `RssAnon grew by ${(anonGrewBy / MiB).toFixed(2)} MiB`);
    assert.ok(after.vmHwmBytes >= after.vmRssBytes);
  } finally {
    child.kill("SIGKILL");
    if (child.exitCode === null && child.signalCode === null) await once(child, "exit");
  }
});
