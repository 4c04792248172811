import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parseProcStatus, parseStatusUids, ProcStatusError, statmResidentKey } from "../../../host/proc/procStatus.js";

const userProcess = `Name:\tnginx
Umask:\t0022
State:\tS (sleeping)
Tgid:\t4321
Pid:\t4321
VmPeak:\t  123456 kB
VmSize:\t  120000 kB
VmHWM:\t    9000 kB
VmRSS:\t    8192 kB
RssAnon:\t    4096 kB
RssFile:\t    3072 kB
RssShmem:\t    1024 kB
Threads:\t1
`;

void test("memory fields are read in bytes", () => {
  assert.deepEqual(parseProcStatus(4321, userProcess), {
    pid: 4321,
    vmRssBytes: 8192 * 1024,
    rssAnonBytes: 4096 * 1024,
    rssFileBytes: 3072 * 1024,
    rssShmemBytes: 1024 * 1024,
    vmHwmBytes: 9000 * 1024,
  });
});

void test("a kernel thread has no memory fields: all 0", () => {
  const kthread = "Name:\tkworker/0:1-events\nUmask:\t0000\nState:\tI (idle)\nTgid:\t42\nPid:\t42\nPPid:\t2\nThreads:\t1\n";
  assert.deepEqual(parseProcStatus(42, kthread), { pid: 42, vmRssBytes: 0, rssAnonBytes: 0, rssFileBytes: 0, rssShmemBytes: 0, vmHwmBytes: 0 });
});

void test("a malformed field is an error naming the field", () => {
  assert.throws(() => parseProcStatus(7, userProcess.replace("VmRSS:\t    8192 kB", "VmRSS:\t    lots kB")), {
    name: "ProcStatusError",
    message: '/proc/7/status: field VmRSS: expected "<number> kB", got "lots kB"',
  });
  assert.throws(() => parseProcStatus(7, "RssFile:\t12 MB\n"), ProcStatusError);
});

void test("the real /proc/self/status: VmRSS is RssAnon + RssFile + RssShmem", () => {
  const m = parseProcStatus(process.pid, readFileSync("/proc/self/status", "utf8"));
  assert.ok(m.vmRssBytes > 10 * 1024 * 1024, `node's RSS ${m.vmRssBytes}`);
  assert.equal(m.vmRssBytes, m.rssAnonBytes + m.rssFileBytes + m.rssShmemBytes);
  assert.ok(m.vmHwmBytes >= m.vmRssBytes);
});

void test("a real kernel thread (kthreadd, PID 2) reads as zeros", () => {
  const m = parseProcStatus(2, readFileSync("/proc/2/status", "utf8"));
  assert.deepEqual(m, { pid: 2, vmRssBytes: 0, rssAnonBytes: 0, rssFileBytes: 0, rssShmemBytes: 0, vmHwmBytes: 0 });
});

void test("Uid: gives the real and the effective UID; a status without it is an error naming the PID", () => {
  assert.deepEqual(parseStatusUids(7, "Name:\tx\nUid:\t65534\t0\t0\t0\nGid:\t0\t0\t0\t0\n"), { real: 65534, effective: 0 });
  assert.throws(() => parseStatusUids(7, "Name:\tx\n"), { name: "ProcStatusError", message: '/proc/7/status: no "Uid:" line with four numbers' });
  assert.throws(() => parseStatusUids(7, "Uid:\t-1\t0\t0\t0\n"), /no "Uid:" line/);
  const own = parseStatusUids(process.pid, readFileSync("/proc/self/status", "utf8"));
  assert.deepEqual(own, { real: process.getuid?.(), effective: process.geteuid?.() });
});

void test("a field on the first line or on a last line without newline is read; one that is absent is 0", () => {
  assert.deepEqual(parseProcStatus(9, "VmRSS:\t  10 kB\nName:\tx\nRssAnon:\t4 kB\nVmHWM:\t12 kB"), {
    pid: 9,
    vmRssBytes: 10 * 1024,
    rssAnonBytes: 4 * 1024,
    rssFileBytes: 0,
    rssShmemBytes: 0,
    vmHwmBytes: 12 * 1024,
  });
  // A name that only ends like a field is not that field.
  assert.equal(parseProcStatus(9, "Name:\tx\nXVmRSS:\t5 kB\n").vmRssBytes, 0);
});

void test("statmResidentKey: the resident and shared page counts; malformed text names the file", () => {
  assert.equal(statmResidentKey(7, "2345 678 90 12 0 345 0\n"), "678 90");
  assert.notEqual(statmResidentKey(7, "2345 679 90 12 0 345 0\n"), statmResidentKey(7, "2345 678 90 12 0 345 0\n"));
  assert.throws(() => statmResidentKey(7, "2345 678"), { message: '/proc/7/statm: expected at least three page counts, got "2345 678"' });
  assert.throws(() => statmResidentKey(7, "a b c d"), { message: '/proc/7/statm: expected at least three page counts, got "a b c d"' });
  const own = statmResidentKey(process.pid, readFileSync(`/proc/${process.pid}/statm`, "utf8"));
  assert.match(own, /^[1-9]\d* \d+$/);
});
