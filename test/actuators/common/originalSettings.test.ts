import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OriginalSettings, originalSettingsFiles } from "../../../actuators/common/originalSettings.js";

const QUOTA = "/sys/fs/cgroup/cpu/vm1/cpu.cfs_quota_us";

/** Runs `body` with the CPU actuator's record files (runtime and state directory) in a temporary directory, removed afterwards. */
function withRecordFiles(body: (files: string[]) => void): void {
  const root = mkdtempSync(join(tmpdir(), "oc-originals-"));
  try {
    body(originalSettingsFiles("cpu", join(root, "run"), join(root, "state")));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

void test("the first value seen is recorded in both directories; a later start keeps it, with the new fail-safe", () => {
  withRecordFiles((files) => {
    const first = new OriginalSettings("cpu", files);
    const kept = first.keep("vm1", [{ op: "write", path: QUOTA, value: "-1", failsafe: "40000" }, { op: "cont", pid: 5, start: 9 }]);
    assert.deepEqual(kept, [{ op: "write", path: QUOTA, value: "-1", failsafe: "40000" }, { op: "cont", pid: 5, start: 9 }]);
    for (const f of files) assert.deepEqual(JSON.parse(readFileSync(f, "utf8")), { v: 1, actuator: "cpu", cages: { vm1: [{ op: "write", path: QUOTA, value: "-1" }] } }, f);

    // A crash left the fail-safe cap in place: the next start reads 40000 as found, the record wins.
    const next = new OriginalSettings("cpu", files);
    assert.deepEqual(next.keep("vm1", [{ op: "write", path: QUOTA, value: "40000", failsafe: "30000" }]), [{ op: "write", path: QUOTA, value: "-1", failsafe: "30000" }]);
    assert.deepEqual(next.cageNames, ["vm1"]);
  });
});

void test("the state directory's copy is used when the runtime directory's is gone (a reboot)", () => {
  withRecordFiles((files) => {
    new OriginalSettings("cpu", files).keep("vm1", [{ op: "exec", key: "xl:d1", argv: ["xl", "sched-credit", "-d", "d1", "-c", "0"] }]);
    rmSync(files[0] as string);
    const after = new OriginalSettings("cpu", files);
    assert.deepEqual(after.recorded("vm1"), [{ op: "exec", key: "xl:d1", argv: ["xl", "sched-credit", "-d", "d1", "-c", "0"] }]);
  });
});

void test("forget: the record goes, and the files with the last cage", () => {
  withRecordFiles((files) => {
    const s = new OriginalSettings("cpu", files);
    s.keep("vm1", [{ op: "write", path: QUOTA, value: "-1" }]);
    s.keep("vm2", [{ op: "write", path: "/sys/fs/cgroup/cpu/vm2/cpu.cfs_quota_us", value: "50000" }]);
    s.forget("vm1");
    assert.deepEqual(Object.keys((JSON.parse(readFileSync(files[1] as string, "utf8")) as { cages: object }).cages), ["vm2"]);
    s.forget("vm2");
    for (const f of files) assert.equal(existsSync(f), false, f);
  });
});

void test("a bad record is refused naming the file and the entry; a bad action is never recorded", () => {
  withRecordFiles((files) => {
    const s = new OriginalSettings("cpu", files);
    assert.throws(() => s.keep("vm1", [{ op: "write", path: "/etc/passwd", value: "x" }]), /path must be a file under \/sys\/fs\/cgroup\//);
    assert.equal(existsSync(files[0] as string), false, "nothing written");
    s.keep("vm1", [{ op: "write", path: QUOTA, value: "-1" }]);
    writeFileSync(files[0] as string, '{"v":1,"actuator":"cpu","cages":{"vm1":[{"op":"exec","key":"k","argv":["rm","-rf"]}]}}');
    assert.throws(() => new OriginalSettings("cpu", files), (e: Error) => e.message.startsWith(`${files[0] as string}: cages.vm1[0]: argv[0] must be one of xl, virsh`));
    writeFileSync(files[0] as string, '{"v":1,"actuator":"limiter","cages":{}}');
    assert.throws(() => new OriginalSettings("cpu", files), /recorded by actuator "limiter", expected "cpu"/);
    writeFileSync(files[0] as string, "{");
    assert.throws(() => new OriginalSettings("cpu", files), /: not JSON$/);
  });
});
