import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCgroupProcs, readCgroupProcs } from "../../../host/cgroup/cgroupProcs.js";
import { parseV2CgroupOfProcess } from "../../../host/cgroup/cgroupMounts.js";
import { cgroupV2Root } from "../../../host/cgroup/trackingCgroup.js";

test("cgroup.procs: one PID a line, kernel order kept; a bad line is named", () => {
  assert.deepEqual(parseCgroupProcs("12\n7\n300\n"), [12, 7, 300]);
  assert.deepEqual(parseCgroupProcs(""), []);
  assert.throws(() => parseCgroupProcs("12\nx1\n", "/g/cgroup.procs"), /^Error: \/g\/cgroup.procs: not a PID: "x1"$/);
});

test("readCgroupProcs reads a directory's cgroup.procs and names a missing one", () => {
  const dir = mkdtempSync(join(tmpdir(), "oc-procs-"));
  try {
    writeFileSync(join(dir, "cgroup.procs"), "5\n6\n");
    assert.deepEqual(readCgroupProcs(dir), [5, 6]);
    assert.throws(() => readCgroupProcs(join(dir, "nope")), new RegExp(`cannot read ${join(dir, "nope", "cgroup.procs")}: no such file`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("this process is listed in its own cgroup v2 group", { skip: !existsSync("/proc/self/cgroup") }, () => {
  const group = parseV2CgroupOfProcess(readFileSync("/proc/self/cgroup", "utf8"));
  assert.ok(group !== null, "no 0:: line in /proc/self/cgroup");
  assert.ok(readCgroupProcs(join(cgroupV2Root(), group)).includes(process.pid));
});
