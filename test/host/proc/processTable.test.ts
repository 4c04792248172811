import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { parseProcCgroup, parseProcCpuTicks, parseProcStat, processCpuSeconds, processKey, ProcessScanner, readProcess, scanProcesses, USER_HZ } from "../../../host/proc/processTable.js";

/** A /proc/PID/stat line: 52 fields, starttime (field 22) and ppid (field 4) as given. */
function statLine(pid: number, comm: string, ppid: number, startTime: number): string {
  const fields = [String(pid), `(${comm})`, "S", String(ppid)];
  for (let n = 5; n <= 52; n++) fields.push(n === 22 ? String(startTime) : String(n * 10));
  return `${fields.join(" ")}\n`;
}

void test("stat: comm with spaces and parentheses ends at the last ')'", () => {
  assert.deepEqual(parseProcStat(statLine(1234, "a) (b c", 77, 987654)), { pid: 1234, comm: "a) (b c", state: "S", ppid: 77, startTime: 987654 });
  assert.deepEqual(parseProcStat(statLine(5, ") S 1 2 3 (", 1, 42)), { pid: 5, comm: ") S 1 2 3 (", state: "S", ppid: 1, startTime: 42 });
  assert.deepEqual(parseProcStat(statLine(6, "", 0, 1)).comm, "");
});

void test("stat: garbage is an error, not a wrong number", () => {
  assert.throws(() => parseProcStat("1234 nocomm S 1"), /no "\(comm\)"/);
  assert.throws(() => parseProcStat("1234 (x) S 1 2"), /field 22 \(starttime\)/);
});

void test("cgroup: v1 lines per controller, co-mounted controllers, named hierarchies, and v2", () => {
  const text = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/27\n2:cpu,cpuacct:/a:b/c\n0::/user.slice/x\n";
  assert.deepEqual(parseProcCgroup(text), {
    v1: { "name=systemd": "/", pids: "/", memory: "/process_api/27", cpu: "/a:b/c", cpuacct: "/a:b/c" },
    v2: "/user.slice/x",
  });
  assert.deepEqual(parseProcCgroup("0::/\n"), { v1: {}, v2: "/" });
});

void test("processKey tells a reused PID apart by its start time", () => {
  assert.notEqual(processKey(100, 5), processKey(100, 6));
  assert.equal(processKey(100, 5), processKey(100, 5));
});

void test("a real process named 'a) (b c' is read correctly", async () => {
  const dir = mkdtempSync(join(tmpdir(), "proc-stat-"));
  const exe = join(dir, "a) (b c");
  let child: ChildProcess | undefined;
  try {
    copyFileSync("/bin/sleep", exe);
    chmodSync(exe, 0o755);
    child = spawn(exe, ["30"], { stdio: "ignore" });
    await once(child, "spawn");
    const pid = child.pid as number;
    const info = readProcess(pid);
    assert.ok(info);
    assert.equal(info.comm, "a) (b c");
    assert.equal(info.ppid, process.pid);
    assert.equal(info.exe, exe);
    assert.equal(info.cmdline, `${exe} 30`);
    assert.equal(typeof info.cgroups.v2, "string");
    assert.ok(info.startTime > 0);

    const table = scanProcesses();
    const fromScan = table.find((p) => p.pid === pid);
    assert.deepEqual(fromScan, info);
    const self = table.find((p) => p.pid === process.pid);
    assert.equal(self?.ppid, process.ppid);
    assert.ok(table.some((p) => p.pid === 2 && p.exe === null && p.cmdline === ""), "kthreadd: no exe, no cmdline");
  } finally {
    if (child && child.exitCode === null) {
      child.kill("SIGKILL");
      await once(child, "exit");
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A fake /proc with 10 complete, 11 gone after its stat (no other file), 12 with an unparseable stat. */
function writeThreeProcesses(root: string): void {
    mkdirSync(join(root, "10"));
    writeFileSync(join(root, "10", "stat"), statLine(10, "ok", 1, 100));
    writeFileSync(join(root, "10", "cmdline"), "ok\0--flag\0");
    writeFileSync(join(root, "10", "cgroup"), "0::/\n");
    writeFileSync(join(root, "10", "status"), "Name:\tok\nUid:\t0\t0\t0\t0\n");
    mkdirSync(join(root, "11"));
    writeFileSync(join(root, "11", "stat"), statLine(11, "gone", 1, 100));
    mkdirSync(join(root, "12"));
    writeFileSync(join(root, "12", "stat"), "garbage");
}

void test("scan: a process that vanishes mid-read is skipped silently; other failures are reported, not thrown", () => {
  const root = mkdtempSync(join(tmpdir(), "fake-proc-"));
  try {
    // 10: complete. 11: gone after its stat was read (no cmdline). 12: unparseable stat.
    writeThreeProcesses(root);
    writeFileSync(join(root, "12", "cmdline"), "");
    writeFileSync(join(root, "12", "cgroup"), "");
    mkdirSync(join(root, "self"));
    const errors: number[] = [];
    const table = scanProcesses(root, { onError: (pid) => errors.push(pid) });
    assert.deepEqual(table, [{ pid: 10, ppid: 1, startTime: 100, comm: "ok", exe: null, cmdline: "ok --flag", cgroups: { v1: {}, v2: "/" }, uids: { real: 0, effective: 0 } }]);
    assert.deepEqual(errors, [12]);
    assert.equal(readProcess(999, root), null);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

void test("scan: the cgroup and exe files are read only when asked for", () => {
  const root = mkdtempSync(join(tmpdir(), "fake-proc-"));
  try {
    // No cgroup file and an exe link to check: a scan that reads them would fail or find it.
    mkdirSync(join(root, "10"));
    writeFileSync(join(root, "10", "stat"), statLine(10, "ok", 1, 100));
    writeFileSync(join(root, "10", "cmdline"), "ok\0");
    writeFileSync(join(root, "10", "status"), "Name:\tok\nUid:\t0\t0\t0\t0\n");
    symlinkSync("/usr/bin/ok", join(root, "10", "exe"));
    const errors: number[] = [];
    const lean = scanProcesses(root, { read: { cgroups: false, exe: false }, onError: (pid) => errors.push(pid) });
    assert.deepEqual(lean, [{ pid: 10, ppid: 1, startTime: 100, comm: "ok", exe: null, cmdline: "ok", cgroups: { v1: {}, v2: null }, uids: { real: 0, effective: 0 } }]);
    assert.equal(scanProcesses(root, { read: { cgroups: false, exe: true } })[0]?.exe, "/usr/bin/ok");
    assert.equal(errors.length, 0);
    // The default reads both: without a cgroup file the process reads as gone.
    assert.deepEqual(scanProcesses(root), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

void test("processCpuSeconds: this process's utime + stime in seconds; null for a PID that is gone", () => {
  const t = parseProcCpuTicks(readFileSync(`/proc/${process.pid}/stat`, "utf8"));
  const s = processCpuSeconds(process.pid);
  assert.ok(s !== null && s >= (t.utimeTicks + t.stimeTicks) / USER_HZ, `got ${String(s)}`);
  assert.equal(processCpuSeconds(2 ** 22 + 1), null);
});

void test("ProcessScanner: the same table as scanProcesses, read through descriptors kept while each process lives", async () => {
  const scanner = new ProcessScanner();
  const child = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    await once(child, "spawn");
    const pid = child.pid as number;
    for (const read of [{ cgroups: true, exe: true }, { cgroups: false, exe: false }]) {
      const kept = scanner.scan({ read }).find((p) => p.pid === pid);
      assert.deepEqual(kept, scanProcesses("/proc", { read }).find((p) => p.pid === pid));
      assert.equal(kept?.cmdline, "sleep 30");
    }
    const held = scanner.keptFds;
    assert.ok(held > 0);
    scanner.scan({ read: { cgroups: false, exe: false } });
    assert.ok(Math.abs(scanner.keptFds - held) < 20, `a second scan reuses the descriptors (${held} then ${scanner.keptFds})`);
    child.kill("SIGKILL");
    await once(child, "exit");
    const after = scanner.scan({ read: { cgroups: false, exe: false } });
    assert.equal(after.some((p) => p.pid === pid), false, "an exited process is not in the next scan");
  } finally {
    child.kill("SIGKILL");
    scanner.close();
  }
  assert.equal(scanner.keptFds, 0);
  assert.throws(() => scanner.scan(), { message: "process scanner: scan() after close()" });
});

void test("ProcessScanner: a vanished or unparseable process is skipped or reported as scanProcesses does; a process's files are released once it is gone", () => {
  const root = mkdtempSync(join(tmpdir(), "fake-proc-"));
  const scanner = new ProcessScanner(root);
  try {
    writeThreeProcesses(root);
    const errors: number[] = [];
    const expected = [{ pid: 10, ppid: 1, startTime: 100, comm: "ok", exe: null, cmdline: "ok --flag", cgroups: { v1: {}, v2: "/" }, uids: { real: 0, effective: 0 } }];
    assert.deepEqual(scanner.scan({ onError: (pid) => errors.push(pid) }), expected);
    assert.deepEqual(errors, [12]);
    // A kept file that changes is read afresh from its start.
    writeFileSync(join(root, "10", "cmdline"), "renamed\0");
    assert.deepEqual(scanner.scan().map((p) => p.cmdline), ["renamed"]);
    rmSync(join(root, "10"), { recursive: true });
    rmSync(join(root, "11"), { recursive: true });
    rmSync(join(root, "12"), { recursive: true });
    assert.deepEqual(scanner.scan(), []);
    assert.equal(scanner.keptFds, 0);
  } finally {
    scanner.close();
    rmSync(root, { recursive: true, force: true });
  }
});

void test("ProcessScanner: the owner is read from status when first asked for; an unreadable one matches no owner", () => {
  const root = mkdtempSync(join(tmpdir(), "fake-proc-"));
  const scanner = new ProcessScanner(root);
  try {
    mkdirSync(join(root, "10"));
    writeFileSync(join(root, "10", "stat"), statLine(10, "ok", 1, 100));
    writeFileSync(join(root, "10", "cmdline"), "ok\0");
    writeFileSync(join(root, "10", "status"), "Name:\tok\nUid:\t0\t0\t0\t0\n");
    const [p] = scanner.scan({ read: { cgroups: false, exe: false } });
    assert.ok(p);
    // Rewritten in place after the scan: what the owner reads is status as it is when asked for.
    writeFileSync(join(root, "10", "status"), "Name:\tok\nUid:\t1000\t1001\t1001\t1001\n");
    assert.deepEqual(p.uids, { real: 1000, effective: 1001 });
    writeFileSync(join(root, "10", "status"), "Name:\tok\nUid:\t0\t0\t0\t0\n");
    assert.deepEqual(p.uids, { real: 1000, effective: 1001 }, "read once per scan");
    assert.deepEqual({ ...p }, { pid: 10, ppid: 1, startTime: 100, comm: "ok", exe: null, cmdline: "ok", cgroups: { v1: {}, v2: null }, uids: { real: 1000, effective: 1001 } });
    writeFileSync(join(root, "10", "status"), "Name:\tok\n");
    const [q] = scanner.scan({ read: { cgroups: false, exe: false } });
    assert.deepEqual(q?.uids, { real: -1, effective: -1 });
  } finally {
    scanner.close();
    rmSync(root, { recursive: true, force: true });
  }
});
