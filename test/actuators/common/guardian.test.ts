// The restore guardian, for real: stopped processes are resumed when the actuator's pipe closes
// or its heartbeats stop, cgroup files are written back, and a disarmed guardian does nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GuardianClient } from "../../../actuators/common/guardianClient.js";
import { GuardianState, parseGuardianLine } from "../../../actuators/common/guardianProtocol.js";
import { parseProcStat } from "../../../host/proc/processTable.js";
import { procState, stopChild, testCpuCgroup, waitFor } from "../actuatorHarness.js";

function sleeper(): { pid: number; start: number; child: ReturnType<typeof spawn> } {
  const child = spawn("sleep", ["60"], { stdio: "ignore" });
  const pid = child.pid as number;
  return { pid, start: parseProcStat(readFileSync(`/proc/${pid}/stat`, "utf8")).startTime, child };
}

void test("protocol: every message is checked, errors name the field", () => {
  assert.deepEqual(parseGuardianLine('{"id":1,"op":"cont","pid":5,"start":7}'), { id: 1, message: { op: "cont", pid: 5, start: 7 } });
  assert.throws(() => parseGuardianLine('{"op":"cont","pid":0,"start":1}'), /pid must be a positive integer/);
  assert.throws(() => parseGuardianLine('{"op":"write","path":"/etc/passwd","value":"x"}'), /path must be a file under \/sys\/fs\/cgroup\//);
  assert.throws(() => parseGuardianLine('{"op":"write","path":"/sys/fs/cgroup/../../etc/x","value":"x"}'), /without ".."/);
  assert.throws(() => parseGuardianLine('{"op":"exec","key":"k","argv":["rm","-rf","/"]}'), /argv\[0\] must be one of xl, virsh/);
  assert.throws(() => parseGuardianLine('{"op":"exec","key":"k","argv":["xl","a\\nb"]}'), /bad argument/);
  assert.throws(() => parseGuardianLine("nope"), /not JSON/);
  assert.throws(() => parseGuardianLine('{"op":"dance"}'), /unknown op "dance"/);
  const s = new GuardianState();
  s.apply({ op: "write", path: "/sys/fs/cgroup/cpu/x/cpu.shares", value: "1024" });
  s.apply({ op: "write", path: "/sys/fs/cgroup/cpu/x/cpu.shares", value: "10" }); // the first (original) wins
  assert.equal(s.writes.get("/sys/fs/cgroup/cpu/x/cpu.shares"), "1024");
  s.apply({ op: "exec", key: "xl:a", argv: ["xl", "x"] });
  s.apply({ op: "exec", key: "xl:a", argv: ["xl", "y"] }); // the latest command per key wins
  assert.deepEqual(s.execs.get("xl:a"), ["xl", "y"]);
});

void test("closing the pipe (the actuator died) resumes a stopped process and writes the cgroup file back", async () => {
  const p = sleeper();
  const cg = testCpuCgroup("guardian");
  mkdirSync(cg.path);
  const quota = join(cg.path, "cpu.cfs_quota_us");
  const g = await GuardianClient.start({ name: "test" });
  try {
    await g.register({ op: "cont", pid: p.pid, start: p.start });
    await g.register({ op: "write", path: quota, value: "-1" });
    process.kill(p.pid, "SIGSTOP");
    writeFileSync(quota, "20000");
    await waitFor("stopped", () => procState(p.pid) === "T");
    await g.closeArmed();
    await waitFor("resumed", () => procState(p.pid) !== "T");
    assert.equal(readFileSync(quota, "utf8").trim(), "-1");
  } finally {
    process.kill(p.pid, "SIGCONT");
    await stopChild(p.child);
    cg.remove();
  }
});

void test("no heartbeat: the watchdog resumes the process but keeps guarding", async () => {
  const p = sleeper();
  const g = await GuardianClient.start({ name: "test", watchdogMs: 200 });
  try {
    await g.register({ op: "cont", pid: p.pid, start: p.start });
    process.kill(p.pid, "SIGSTOP");
    await waitFor("stopped", () => procState(p.pid) === "T");
    await waitFor("resumed by the watchdog", () => procState(p.pid) !== "T");
    assert.equal(g.alive, true);
  } finally {
    process.kill(p.pid, "SIGCONT");
    await g.disarmAndClose();
    await stopChild(p.child);
  }
});

void test("a disarmed guardian (clean exit) does nothing; a PID reused by another process is not touched", async () => {
  const p = sleeper();
  const g = await GuardianClient.start({ name: "test" });
  try {
    await g.register({ op: "cont", pid: p.pid, start: p.start + 1 }); // not this process
    await g.register({ op: "cont", pid: p.pid, start: p.start });
    await g.forget(p.pid);
    process.kill(p.pid, "SIGSTOP");
    await waitFor("stopped", () => procState(p.pid) === "T");
    await g.disarmAndClose();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(procState(p.pid), "T", "disarmed: nothing resumed");
  } finally {
    process.kill(p.pid, "SIGCONT");
    await stopChild(p.child);
  }
});

void test("the actuator learns when its guardian dies", async () => {
  let lost = "";
  const g = await GuardianClient.start({ name: "test", onLost: (why) => (lost = why) });
  process.kill(g.pid, "SIGKILL");
  await waitFor("onLost", () => lost !== "");
  assert.match(lost, /guardian exited \(code null, signal SIGKILL\)/);
  await assert.rejects(g.register({ op: "cont", pid: 1, start: 0 }), /guardian is not running/);
});

void test("a guardian that does not start in time is killed, and start() fails naming the setting", async () => {
  // 1 ms: no node process starts that fast, so this is the slow-host case (the Xen lab's dom0).
  await assert.rejects(GuardianClient.start({ name: "slow-start-test", startTimeoutMs: 1 }), /restore guardian did not start within 1 ms \(the actuator's guardianStartTimeoutMs\)/);
  const alive = (): boolean => readdirSync("/proc").some((d) => /^\d+$/.test(d) && (readCmdline(d) ?? "").includes("slow-start-test"));
  await waitFor("the unstarted guardian to be gone", () => !alive());
});

function readCmdline(pid: string): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return null; // exited meanwhile
  }
}

void test("protocol: fail-safe fields are checked; the plan is the fail-safe unless the stop was orderly", () => {
  assert.throws(() => parseGuardianLine('{"op":"write","path":"/sys/fs/cgroup/cpu/x/cpu.cfs_quota_us","value":"-1","failsafe":""}'), /failsafe must be 1-64 printable characters, got ""/);
  assert.throws(() => parseGuardianLine('{"op":"exec","key":"k","argv":["xl","a"],"failsafeArgv":["sh","-c"]}'), /failsafeArgv\[0\] must be one of xl, virsh, systemctl \(or an absolute path to one\), got "sh"/);
  assert.throws(() => parseGuardianLine('{"op":"qmp","key":"q","socket":"/run/q.qmp","command":"balloon","bytes":0}'), /bytes must be a positive integer, got 0/);
  assert.throws(() => parseGuardianLine('{"op":"qmp","key":"q","socket":"run/q.qmp","command":"balloon","bytes":1}'), /socket must be an absolute path/);
  const s = new GuardianState();
  const quota = "/sys/fs/cgroup/cpu/x/cpu.cfs_quota_us";
  s.apply(parseGuardianLine(`{"op":"write","path":"${quota}","value":"-1","failsafe":"40000"}`).message);
  s.apply({ op: "write", path: quota, value: "20000", failsafe: "30000" }); // original stays, the latest fail-safe wins
  s.apply({ op: "exec", key: "xl:a", argv: ["xl", "orig"], failsafeArgv: ["xl", "safe"] });
  s.apply({ op: "qmp", key: "qmp:a", socket: "/run/a.qmp", command: "balloon", bytes: 4096, failsafeBytes: 2048 });
  s.apply({ op: "write", path: "/sys/fs/cgroup/cpu/x/cpu.shares", value: "1024" }); // no fail-safe: the original
  const crash = s.plan();
  assert.equal(crash.writes.get(quota), "30000");
  assert.equal(crash.writes.get("/sys/fs/cgroup/cpu/x/cpu.shares"), "1024");
  assert.deepEqual(crash.execs.get("xl:a"), ["xl", "safe"]);
  assert.deepEqual(crash.qmps.get("qmp:a"), { socket: "/run/a.qmp", bytes: 2048 });
  s.apply({ op: "orderly" });
  const orderly = s.plan();
  assert.equal(orderly.writes.get(quota), "-1");
  assert.deepEqual(orderly.execs.get("xl:a"), ["xl", "orig"]);
  assert.deepEqual(orderly.qmps.get("qmp:a"), { socket: "/run/a.qmp", bytes: 4096 });
});

void test("the actuator dies: the guardian writes the fail-safe; after `orderly` it writes the original", async () => {
  const cg = testCpuCgroup("guardian-fs");
  mkdirSync(cg.path);
  const quota = join(cg.path, "cpu.cfs_quota_us");
  try {
    const crashed = await GuardianClient.start({ name: "test" });
    await crashed.register({ op: "write", path: quota, value: "-1", failsafe: "40000" });
    writeFileSync(quota, "20000");
    await crashed.closeArmed();
    assert.equal(readFileSync(quota, "utf8").trim(), "40000", "fail-safe, not no limit");

    const orderly = await GuardianClient.start({ name: "test" });
    await orderly.register({ op: "write", path: quota, value: "-1", failsafe: "40000" });
    writeFileSync(quota, "20000");
    await orderly.orderly();
    await orderly.closeArmed();
    assert.equal(readFileSync(quota, "utf8").trim(), "-1", "the original after an orderly stop");
  } finally {
    cg.remove();
  }
});

void test("a guardian told to stop (SIGTERM, SIGHUP) restores only once its actuator is gone", async () => {
  const cg = testCpuCgroup("guardian-term");
  mkdirSync(cg.path);
  const quota = join(cg.path, "cpu.cfs_quota_us");
  const g = await GuardianClient.start({ name: "test" });
  try {
    await g.register({ op: "write", path: quota, value: "-1", failsafe: "40000" });
    writeFileSync(quota, "20000");
    process.kill(g.pid, "SIGTERM");
    process.kill(g.pid, "SIGHUP");
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(g.alive, true, "still guarding");
    assert.equal(readFileSync(quota, "utf8").trim(), "20000", "nothing restored behind the live actuator's back");
    await g.register({ op: "cont", pid: process.pid, start: 0 }); // still answering
    await g.forget(process.pid);
    await g.closeArmed();
    assert.equal(readFileSync(quota, "utf8").trim(), "40000", "the actuator gone: the fail-safe");
  } finally {
    if (g.alive) process.kill(g.pid, "SIGKILL");
    cg.remove();
  }
});
