// The QEMU-guest labs' shared boot (lab/common/guestBoot.ts) with a stand-in for
// qemu-system-x86_64 on PATH: a shell script that prints console lines, so no guest is booted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bootGuest, guestQemuArgs, markerTime, parseLabMarker } from "../../../lab/common/guestBoot.js";

void test("parseLabMarker reads the guest's LAB: lines, with or without Xen's prefix", () => {
  assert.deepEqual(parseLabMarker("LAB: stage1 8.64", 30.5), { name: "stage1", rest: "8.64", atS: 30.5 });
  assert.deepEqual(parseLabMarker("(d0) LAB: poweroff", 1), { name: "poweroff", rest: "", atS: 1 });
  assert.equal(parseLabMarker("[   16.1] virtio_blk virtio0", 1), null);
  assert.equal(parseLabMarker("LAB: Bad$Name x", 1), null);
  const ms = [parseLabMarker("LAB: stage1 1", 5), parseLabMarker("LAB: xen-ready 2", 9)].filter((m) => m !== null);
  assert.equal(markerTime(ms, "xen-ready"), 9);
  assert.equal(markerTime(ms, "poweroff"), null);
});

void test("guestQemuArgs: the labs' machine, the disks in order, read-only ones marked", () => {
  const a = guestQemuArgs({ accel: "tcg,thread=multi", cpu: "max", kernel: "/k", initrd: "/i", append: "console=ttyS0", drives: [{ file: "/r", readonly: true }, { file: "/w", readonly: false }] });
  assert.equal(a[a.indexOf("-smp") + 1], "2");
  assert.equal(a[a.indexOf("-m") + 1], "3072");
  assert.equal(a[a.indexOf("-serial") + 1], "stdio");
  assert.ok(a.includes("-no-reboot"));
  assert.deepEqual(a.filter((_, i) => a[i - 1] === "-drive"), ["file=/r,format=raw,if=virtio,readonly=on", "file=/w,format=raw,if=virtio"]);
});

/** A temp dir with a fake qemu-system-x86_64 running `body`, first on PATH for the test's duration. */
function fakeQemu(body: string): { dir: string; restore: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "guest-boot-test-"));
  const fake = join(dir, "qemu-system-x86_64");
  writeFileSync(fake, `#!/bin/sh\n${body}\n`);
  chmodSync(fake, 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${dir}:${path ?? ""}`;
  return {
    dir,
    restore: () => {
      process.env.PATH = path;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether `pid` still runs (a zombie waiting for its reaper does not). */
const running = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
};

void test("bootGuest follows the console: markers in order, QEMU's arguments and exit status, the console log", async () => {
  const q = fakeQemu('echo "args: $*"\nprintf "LAB: stage1 0.5\\r\\nnoise\\n(d0) LAB: poweroff 2.0\\n"\nexit 3');
  try {
    const seen: string[] = [];
    const consoleLogPath = join(q.dir, "console.log");
    const r = await bootGuest({ lab: "test lab", qemuArgs: ["-m", "3072"], timeoutMs: 30_000, consoleLogPath, onMarker: (m) => seen.push(m.name) });
    assert.deepEqual(seen, ["stage1", "poweroff"]);
    assert.deepEqual(r.markers.map((m) => [m.name, m.rest]), [["stage1", "0.5"], ["poweroff", "2.0"]]);
    assert.equal(r.exitCode, 3);
    assert.equal(r.timedOut, false);
    assert.equal(r.lockWaitSeconds, 0);
    assert.ok(r.wallSeconds > 0 && r.wallSeconds < 30, `wallSeconds ${r.wallSeconds}`);
    const log = readFileSync(consoleLogPath, "utf8");
    assert.match(log, /^args: -m 3072$/m);
    assert.match(log, /noise/);
  } finally {
    q.restore();
  }
});

void test("bootGuest kills QEMU's whole process group when the bound passes", async () => {
  const q = fakeQemu("echo 'LAB: stage1 1'\nsleep 60 &\necho \"$!\" >\"$(dirname \"$0\")/child\"\nwait");
  try {
    const started = Date.now();
    const r = await bootGuest({ lab: "test lab", qemuArgs: [], timeoutMs: 1_500, consoleLogPath: join(q.dir, "console.log") });
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, "SIGKILL");
    assert.ok(Date.now() - started < 10_000);
    assert.deepEqual(r.markers.map((m) => m.name), ["stage1"]);
    const child = Number(readFileSync(join(q.dir, "child"), "utf8"));
    // SIGKILL is delivered at once, but the kernel needs a moment to tear the process down.
    for (let i = 0; i < 20 && running(child); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(running(child), false, `the fake QEMU's child ${child} outlived the boot`);
  } finally {
    q.restore();
  }
});

void test("bootGuest under a lock: QEMU waits for it, and the wait has its own bound", async () => {
  const q = fakeQemu("echo 'LAB: poweroff 1'");
  const lockPath = join(q.dir, "qemu.lock");
  // Another holder of the lock, in its own group, so that killing the group frees the lock.
  const holders: ChildProcess[] = [];
  const hold = async (seconds: number): Promise<void> => {
    holders.push(spawn("flock", [lockPath, "sleep", String(seconds)], { stdio: "ignore", detached: true }));
    await new Promise((resolve) => setTimeout(resolve, 300));
  };
  const boot = (lockTimeoutMs: number) => bootGuest({ lab: "test lab", qemuArgs: [], timeoutMs: 30_000, lock: { path: lockPath, timeoutMs: lockTimeoutMs }, consoleLogPath: join(q.dir, "console.log") });
  try {
    await hold(2);
    const waited = await boot(30_000);
    assert.deepEqual([waited.timedOut, waited.exitCode, waited.markers.map((m) => m.name)], [false, 0, ["poweroff"]]);
    assert.ok(waited.lockWaitSeconds >= 1, `lockWaitSeconds ${waited.lockWaitSeconds}`);
    await hold(30);
    const gaveUp = await boot(1_000);
    assert.deepEqual([gaveUp.timedOut, gaveUp.wallSeconds, gaveUp.markers], [true, 0, []]);
  } finally {
    for (const h of holders) {
      try {
        process.kill(-(h.pid as number), "SIGKILL");
      } catch {
        /* gone */
      }
    }
    q.restore();
  }
});
