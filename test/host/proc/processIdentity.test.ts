import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isSameProcess, PidReuseCounter, readStartTime } from "../../../host/proc/processIdentity.js";

function statLine(pid: number, startTime: number): string {
  // Fields 3..22: state, ppid, then 17 more; field 22 is the start time.
  const rest = ["S", "1", ...Array.from({ length: 17 }, () => "0"), String(startTime), "0"];
  return `${pid} (a (b) c) ${rest.join(" ")}\n`;
}

void test("start time is field 22 of /proc/PID/stat; a PID with another start time is another process", () => {
  const root = mkdtempSync(join(tmpdir(), "fake-proc-"));
  try {
    mkdirSync(join(root, "42"));
    writeFileSync(join(root, "42", "stat"), statLine(42, 123456));
    assert.equal(readStartTime(42, root), 123456);
    assert.equal(isSameProcess({ pid: 42, startTime: 123456 }, root), true);
    // The PID was reused: the same number now names a process started later.
    writeFileSync(join(root, "42", "stat"), statLine(42, 123999));
    assert.equal(isSameProcess({ pid: 42, startTime: 123456 }, root), false);
    assert.equal(readStartTime(43, root), null);
    assert.equal(isSameProcess({ pid: 43, startTime: 0 }, root), false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

void test("a real process: same while it runs, not the same once it has exited", async () => {
  const child = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    const pid = child.pid as number;
    const startTime = readStartTime(pid);
    assert.ok(startTime !== null && startTime > 0);
    assert.equal(isSameProcess({ pid, startTime }), true);
    assert.equal(isSameProcess({ pid, startTime: startTime + 1 }), false);
    child.kill("SIGKILL");
    await once(child, "exit");
    assert.equal(isSameProcess({ pid, startTime }), false);
  } finally {
    child.kill("SIGKILL");
  }
});

void test("reuse skips are all counted, at most 5 a second are logged", () => {
  let now = 1000;
  const counter = new PidReuseCounter(() => now);
  const logged = Array.from({ length: 8 }, () => counter.note()).filter(Boolean).length;
  assert.equal(logged, 5);
  assert.equal(counter.skipped, 8);
  now += 1000;
  assert.equal(counter.note(), true);
  assert.equal(counter.skipped, 9);
});
