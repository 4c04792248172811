import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { CMDLINE_REFRESH_SCANS, parseProcCgroup, parseProcCpuTicks, parseProcStat, parseStatWithExecKey, processCpuSeconds, processKey, ProcessScanner, readProcess, scanProcesses, USER_HZ, type ProcessInfo } from "../../../host/proc/processTable.js";

/** A /proc/PID/stat line: 52 fields, starttime (field 22) and ppid (field 4) as given, field N = N * 10 unless in `fields`. */
function statLine(pid: number, comm: string, ppid: number, startTime: number, fields: Record<number, number> = {}): string {
  const out = [String(pid), `(${comm})`, "S", String(ppid)];
  for (let n = 5; n <= 52; n++) out.push(n === 22 ? String(startTime) : String(fields[n] ?? n * 10));
  return `${out.join(" ")}\n`;
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
    // A kept file that changes is read afresh from its start (an exec: comm and the addresses change).
    writeFileSync(join(root, "10", "stat"), statLine(10, "renamed", 1, 100, { 28: 999 }));
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

void test("exec key: comm and the new memory map's addresses; null when the kernel hides them, but not for a kernel thread", () => {
  const execKey = (line: string) => parseStatWithExecKey(line).execKey;
  const base = execKey(statLine(10, "aide", 1, 100));
  assert.ok(base !== null);
  assert.deepEqual(parseStatWithExecKey(statLine(10, "aide", 1, 100)).stat, parseProcStat(statLine(10, "aide", 1, 100)), "the stat fields as parseProcStat reads them");
  assert.equal(execKey(statLine(10, "aide", 1, 100, { 14: 1, 23: 5 })), base, "CPU times and vsize are not exec marks");
  for (const changed of [statLine(10, "sh", 1, 100), ...[26, 27, 28, 48, 49].map((n) => statLine(10, "aide", 1, 100, { [n]: 7 }))]) {
    assert.notEqual(execKey(changed), base, changed);
  }
  const hidden = { 26: 0, 27: 0, 28: 0, 48: 0, 49: 0 };
  assert.equal(execKey(statLine(10, "aide", 1, 100, { ...hidden, 9: 0x400000 })), null, "a user process whose addresses read as 0");
  const kthread = execKey(statLine(2, "kthreadd", 0, 1, { ...hidden, 9: 0x208040 }));
  assert.ok(kthread !== null, "a kernel thread has no addresses, and says so in its flags");
  assert.notEqual(execKey(statLine(2, "kthreadd", 0, 1, { 9: 0x400000 })), kthread, "a helper thread that exec'd");
  assert.equal(execKey(statLine(10, "aide", 1, 100).split(" ").slice(0, 30).join(" ")), null, "too few fields");
});

void test("ProcessScanner: cmdline and exe are read again only after an exec, for a new process on the PID, when hidden, or at the process's refresh turn", () => {
  const root = mkdtempSync(join(tmpdir(), "fake-proc-"));
  const scanner = new ProcessScanner(root);
  const read = { cgroups: false, exe: false };
  const cmdlineOf = (): string | undefined => scanner.scan({ read }).find((p) => p.pid === 10)?.cmdline;
  try {
    mkdirSync(join(root, "10"));
    writeFileSync(join(root, "10", "stat"), statLine(10, "sh", 1, 100));
    writeFileSync(join(root, "10", "cmdline"), "sh\0-c\0x\0");
    writeFileSync(join(root, "10", "status"), "Uid:\t0\t0\t0\t0\n");
    assert.equal(cmdlineOf(), "sh -c x");
    writeFileSync(join(root, "10", "cmdline"), "rewritten\0");
    assert.equal(cmdlineOf(), "sh -c x", "stat unchanged: cmdline not read again");
    assert.deepEqual(scanner.counts, { cmdlineReads: 1, cmdlineReused: 1 });
    writeFileSync(join(root, "10", "stat"), statLine(10, "aide", 1, 100, { 28: 1234 }));
    writeFileSync(join(root, "10", "cmdline"), "aide\0--init\0");
    assert.equal(cmdlineOf(), "aide --init", "comm and stack changed: an exec");
    // An exec of a program with the same name: the memory map's addresses still change.
    writeFileSync(join(root, "10", "stat"), statLine(10, "aide", 1, 100, { 28: 1234, 48: 55, 49: 66 }));
    writeFileSync(join(root, "10", "cmdline"), "aide\0--check\0");
    assert.equal(cmdlineOf(), "aide --check");
    // Another process on the same PID (new start time).
    writeFileSync(join(root, "10", "stat"), statLine(10, "aide", 1, 101, { 28: 1234, 48: 55, 49: 66 }));
    writeFileSync(join(root, "10", "cmdline"), "aide\0--update\0");
    assert.equal(cmdlineOf(), "aide --update");
    // Addresses hidden: nothing tells an exec, so every scan reads cmdline.
    const hidden = { 26: 0, 27: 0, 28: 0, 48: 0, 49: 0 };
    writeFileSync(join(root, "10", "stat"), statLine(10, "aide", 1, 101, hidden));
    assert.equal(cmdlineOf(), "aide --update");
    writeFileSync(join(root, "10", "cmdline"), "aide\0--hidden\0");
    assert.equal(cmdlineOf(), "aide --hidden");
    // Addresses shown again, then an argv rewritten in place: seen at the PID's refresh turn, within CMDLINE_REFRESH_SCANS scans.
    writeFileSync(join(root, "10", "stat"), statLine(10, "aide", 1, 101));
    assert.equal(cmdlineOf(), "aide --hidden");
    writeFileSync(join(root, "10", "cmdline"), "aide: idle\0");
    const seen: (string | undefined)[] = [];
    for (let i = 0; i < CMDLINE_REFRESH_SCANS; i++) seen.push(cmdlineOf());
    assert.equal(seen.filter((c) => c === "aide --hidden").length, seen.indexOf("aide: idle"), "old until the refresh turn");
    assert.ok(seen.indexOf("aide: idle") >= 0 && seen.at(-1) === "aide: idle", `refreshed within ${CMDLINE_REFRESH_SCANS} scans: ${JSON.stringify(seen)}`);
  } finally {
    scanner.close();
    rmSync(root, { recursive: true, force: true });
  }
});

void test("ProcessScanner refreshEvery: new PIDs read and exited ones dropped on every scan; an old process read again only at its turn, a young one on every scan", () => {
  const root = mkdtempSync(join(tmpdir(), "fake-proc-"));
  const scanner = new ProcessScanner(root);
  const every = 4;
  const scan = (): ProcessInfo[] => scanner.scan({ read: { cgroups: false, exe: false }, refreshEvery: every });
  const write = (pid: number, comm: string, startTime: number, stack: number): void => {
    mkdirSync(join(root, String(pid)), { recursive: true });
    writeFileSync(join(root, String(pid), "stat"), statLine(pid, comm, 1, startTime, { 28: stack }));
    writeFileSync(join(root, String(pid), "cmdline"), `${comm}\0`);
    writeFileSync(join(root, String(pid), "status"), "Uid:\t0\t0\t0\t0\n");
  };
  /** Scans until `pid` reads as `comm`; how many scans that took (every + 1: never). */
  const scansUntil = (pid: number, comm: string): number => {
    for (let n = 1; n <= every; n++) if (scan().find((p) => p.pid === pid)?.comm === comm) return n;
    return every + 1;
  };
  try {
    write(10, "sh", 100, 1);
    assert.deepEqual(scan().map((p) => p.comm), ["sh"]);
    // Young (first read fewer than `every` scans ago): an exec is seen by the next scan.
    write(10, "aide", 100, 2);
    assert.equal(scansUntil(10, "aide"), 1);
    for (let i = 0; i < every; i++) scan();
    // Old: the same object between its turns, and an exec seen within `every` scans.
    const turns: boolean[] = [];
    let last = scan().find((p) => p.pid === 10);
    for (let i = 0; i < every; i++) {
      const now = scan().find((p) => p.pid === 10);
      turns.push(now !== last);
      last = now;
    }
    assert.equal(turns.filter(Boolean).length, 1, `read again once in ${every} scans: ${JSON.stringify(turns)}`);
    write(10, "aide-check", 100, 3);
    const took = scansUntil(10, "aide-check");
    assert.ok(took >= 1 && took <= every, `an exec of an old process is seen within ${every} scans, took ${took}`);
    // A new PID is read, and an exited one dropped, by the very next scan.
    write(20, "new", 200, 1);
    assert.deepEqual(scan().map((p) => p.pid), [10, 20]);
    rmSync(join(root, "10"), { recursive: true });
    assert.deepEqual(scan().map((p) => p.pid), [20]);
    // An old PID taken by another process (new start time) between two listings: seen within `every` scans.
    for (let i = 0; i < every; i++) scan();
    write(20, "reused", 201, 1);
    const reuse = scansUntil(20, "reused");
    assert.ok(reuse >= 1 && reuse <= every, `PID reuse seen within ${every} scans, took ${reuse}`);
    assert.equal(scan().find((p) => p.pid === 20)?.startTime, 201);
    assert.throws(() => scanner.scan({ refreshEvery: 0 }), { message: "process scanner: refreshEvery must be a positive integer, got 0" });
  } finally {
    scanner.close();
    rmSync(root, { recursive: true, force: true });
  }
});

void test("ProcessScanner: exe is kept with cmdline while there is no exec, read again after one", () => {
  const root = mkdtempSync(join(tmpdir(), "fake-proc-"));
  const scanner = new ProcessScanner(root);
  const read = { cgroups: true, exe: true };
  try {
    mkdirSync(join(root, "10"));
    writeFileSync(join(root, "10", "stat"), statLine(10, "sh", 1, 100));
    writeFileSync(join(root, "10", "cmdline"), "sh\0");
    writeFileSync(join(root, "10", "cgroup"), "0::/a\n");
    writeFileSync(join(root, "10", "status"), "Uid:\t0\t0\t0\t0\n");
    symlinkSync("/usr/bin/sh", join(root, "10", "exe"));
    assert.equal(scanner.scan({ read })[0]?.exe, "/usr/bin/sh");
    rmSync(join(root, "10", "exe"));
    symlinkSync("/usr/bin/aide", join(root, "10", "exe"));
    writeFileSync(join(root, "10", "cgroup"), "0::/b\n");
    const [same] = scanner.scan({ read });
    assert.equal(same?.exe, "/usr/bin/sh", "no exec: exe not read again");
    assert.equal(same?.cgroups.v2, "/b", "cgroup is read every scan: a process moves without an exec");
    writeFileSync(join(root, "10", "stat"), statLine(10, "aide", 1, 100, { 28: 1 }));
    assert.equal(scanner.scan({ read })[0]?.exe, "/usr/bin/aide");
  } finally {
    scanner.close();
    rmSync(root, { recursive: true, force: true });
  }
});

void test("ProcessScanner on /proc: a process that execs is seen with its new cmdline; one that does not is not read again", async () => {
  const scanner = new ProcessScanner();
  const child = spawn("sh", ["-c", "read line; exec sleep 30"], { stdio: ["pipe", "ignore", "ignore"] });
  try {
    await once(child, "spawn");
    const pid = child.pid as number;
    const find = (): ProcessInfo | undefined => scanner.scan({ read: { cgroups: false, exe: true } }).find((p) => p.pid === pid);
    const first = find();
    assert.equal(first?.cmdline, "sh -c read line; exec sleep 30");
    const reads = scanner.counts.cmdlineReads;
    find();
    assert.ok(scanner.counts.cmdlineReads - reads < 50, `a second scan reads few cmdlines (${scanner.counts.cmdlineReads - reads})`);
    child.stdin?.write("go\n");
    let after = find();
    for (let i = 0; i < 100 && after?.comm !== "sleep"; i++) {
      await new Promise((r) => setTimeout(r, 20));
      after = find();
    }
    assert.equal(after?.cmdline, "sleep 30");
    assert.match(after?.exe ?? "", /\/sleep$/);
    assert.equal(after?.startTime, first?.startTime, "the same process, exec'd");
  } finally {
    child.kill("SIGKILL");
    scanner.close();
  }
});
