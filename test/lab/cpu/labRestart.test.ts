import { test } from "node:test";
import assert from "node:assert/strict";
import { restartSummary, FOLLOW_LIMIT_MS, type RestartTimes } from "../../../lab/cpu/labRestart.js";
import { v1CgroupPathOf, parseGlobalQuota } from "../../../lab/cpu/labLibvirtVm.js";
import { parseDommemstatActualBytes } from "../../../lab/memory/labLibvirtVm.js";

const times: RestartTimes = {
  oldPid: 100,
  newPid: 200,
  destroyedAtMs: 10_000,
  startedAtMs: 11_000,
  quotaAfterStartUs: -1,
  reappliedAtMs: 12_500,
  reappliedQuotaUs: 2000,
  actuatorVmCapPct: 40,
  error: null,
};

void test("restartSummary: followed, no old PID once the new one is seen, cap set again", () => {
  const log = [
    { timeMs: 9_900, seenAtMs: 9_950, pids: [100] },
    { timeMs: 10_100, seenAtMs: 10_150, pids: [100] }, // window ended after destroy: the resolver had not run yet
    { timeMs: 10_300, seenAtMs: 10_350, pids: [] },
    { timeMs: 11_600, seenAtMs: 11_650, pids: [200] },
    { timeMs: 11_700, seenAtMs: 11_750, pids: [200] },
  ];
  const s = restartSummary(times, log);
  assert.equal(s.followedMs, 650);
  assert.equal(s.oldPidAfterDestroy, 1);
  assert.equal(s.oldPidAfterNewSeen, 0);
  assert.equal(s.reappliedMs, 1500);
  assert.equal(s.holds, true);
});

void test("restartSummary: each way the check fails", () => {
  const late = [{ timeMs: 13_100, seenAtMs: 11_000 + FOLLOW_LIMIT_MS + 1, pids: [200] }];
  assert.equal(restartSummary(times, late).holds, false);
  const stale = [
    { timeMs: 11_600, seenAtMs: 11_650, pids: [200] },
    { timeMs: 11_700, seenAtMs: 11_750, pids: [100, 200] },
  ];
  assert.equal(restartSummary(times, stale).oldPidAfterNewSeen, 1);
  assert.equal(restartSummary(times, stale).holds, false);
  const ok = [{ timeMs: 11_600, seenAtMs: 11_650, pids: [200] }];
  assert.equal(restartSummary({ ...times, reappliedAtMs: null }, ok).holds, false);
  assert.equal(restartSummary({ ...times, newPid: 100 }, [{ timeMs: 11_600, seenAtMs: 11_650, pids: [100] }]).holds, false);
  assert.equal(restartSummary(times, []).followedMs, null);
  assert.equal(restartSummary({ ...times, error: "virsh start failed" }, ok).holds, false);
});

void test("parsers of the libvirt labs: cpuacct path, global_quota, dommemstat actual", () => {
  assert.equal(v1CgroupPathOf("4:memory:/\n2:cpuacct:/\n1:cpu:/machine/qemu-1-x.libvirt-qemu/emulator\n", "cpu"), "/machine/qemu-1-x.libvirt-qemu/emulator");
  assert.equal(v1CgroupPathOf("3:cpu,cpuacct:/machine/y\n", "cpuacct"), "/machine/y");
  assert.equal(v1CgroupPathOf("0::/\n", "cpu"), null);
  assert.equal(parseGlobalQuota("Scheduler      : posix\nglobal_period  : 5000\nglobal_quota   : -1\n", "d"), -1);
  assert.equal(parseGlobalQuota("Scheduler      : posix\nglobal_quota   : 3500\n", "d"), 3500);
  assert.throws(() => parseGlobalQuota("Scheduler : posix\n", "oc-x"), /virsh schedinfo oc-x printed no global_quota line/);
  assert.equal(parseDommemstatActualBytes("actual 262144\nswap_in 0\nrss 300000\n"), 262144 * 1024);
  assert.equal(parseDommemstatActualBytes("rss 300000\n"), null);
});
