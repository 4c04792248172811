import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KeptProcFiles } from "../../../host/proc/keptProcFiles.js";
import { isGone, parseProcCpuTicks } from "../../../host/proc/processTable.js";

/** Burns `ms` of this process's CPU time (not wall time: on a busy host that is longer). */
function burn(ms: number): void {
  const start = process.cpuUsage();
  let x = 0;
  while ((process.cpuUsage(start).user + process.cpuUsage(start).system) / 1000 < ms) for (let i = 0; i < 10_000; i++) x += Math.sqrt(x + i);
  assert.ok(x > 0);
}

void test("each read through a kept descriptor sees current values, without reopening", () => {
  const files = new KeptProcFiles();
  try {
    const ticks = (): number => {
      const t = parseProcCpuTicks(files.read(process.pid, "stat"));
      return t.utimeTicks + t.stimeTicks;
    };
    const before = ticks();
    assert.equal(files.size, 1);
    assert.ok(files.isKept(process.pid, "stat"));
    burn(200);
    const after = ticks();
    assert.equal(files.size, 1, "the same descriptor was read again");
    assert.ok(after - before >= 10, `200 ms of CPU is 20 ticks; the kept descriptor saw ${after - before}`);
  } finally {
    files.close();
  }
});

void test("a process that exited reads as gone (ESRCH) through its kept descriptor, which is closed", async () => {
  const files = new KeptProcFiles();
  const child = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    await once(child, "spawn");
    const pid = child.pid as number;
    assert.match(files.read(pid, "status"), /^Name:\tsleep$/m);
    assert.equal(files.size, 1);
    child.kill("SIGKILL");
    await once(child, "exit");
    assert.throws(() => files.read(pid, "status"), (err: unknown) => isGone(err));
    assert.equal(files.size, 0);
    assert.equal(files.isKept(pid, "status"), false);
  } finally {
    child.kill("SIGKILL");
    files.close();
  }
});

void test("a file larger than the buffer is read whole (the buffer grows)", async () => {
  const root = mkdtempSync(join(tmpdir(), "fake-proc-"));
  const long = "x".repeat(20_000);
  // sh keeps its arguments (sleep would reject the long one and exit).
  const child = spawn("sh", ["-c", "sleep 30; :", "sh", long], { stdio: "ignore" });
  const files = new KeptProcFiles();
  const fake = new KeptProcFiles(root);
  try {
    await once(child, "spawn");
    // Until the child has exec'd sh, its cmdline is the forking parent's (or empty).
    const expected = `sh\x00-c\x00sleep 30; :\x00sh\x00${long}\x00`;
    let cmdline = "";
    for (let i = 0; i < 250 && cmdline !== expected; i++) {
      cmdline = files.read(child.pid as number, "cmdline");
      if (cmdline !== expected) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(cmdline === expected, `cmdline of ${cmdline.length} bytes, expected ${expected.length}`);
    mkdirSync(join(root, "7"));
    const text = `${"line\n".repeat(3000)}end\n`;
    writeFileSync(join(root, "7", "status"), text);
    assert.equal(fake.read(7, "status"), text);
    assert.equal(fake.read(7, "status"), text, "read again from offset 0");
  } finally {
    child.kill("SIGKILL");
    files.close();
    fake.close();
    rmSync(root, { recursive: true, force: true });
  }
});

void test("past maxFds files are read by path; retain and close release descriptors; a read after close throws", () => {
  const capped = new KeptProcFiles("/proc", 1);
  try {
    capped.read(process.pid, "stat");
    assert.match(capped.read(process.pid, "status"), /^Name:/m);
    assert.equal(capped.size, 1);
    assert.equal(capped.isKept(process.pid, "status"), false);
    capped.retain((pid) => pid !== process.pid);
    assert.equal(capped.size, 0);
    capped.read(process.pid, "stat");
  } finally {
    capped.close();
  }
  assert.equal(capped.size, 0);
  assert.equal(capped.closed, true);
  assert.throws(() => capped.read(process.pid, "stat"), { message: "kept /proc files: read after close()" });
  assert.throws(() => new KeptProcFiles("/proc", -1), { message: "kept /proc files: maxFds must be a non-negative integer, got -1" });
  assert.throws(() => new KeptProcFiles("/proc").read(2 ** 22 + 1, "stat"), (err: unknown) => isGone(err));
});
