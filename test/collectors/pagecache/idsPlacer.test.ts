// The IDS page cache group on this host's real cgroup2 hierarchy: what a page cache collector
// killed while the IDS sat in its group leaves, and how `cage run` releases it. Needs root; run
// it under the e2e lock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { IdsPlacer, releaseOwnPageCacheGroups } from "../../../collectors/pagecache/idsPlacer.js";
import { parseV2CgroupOfProcess } from "../../../host/cgroup/cgroupMounts.js";
import { hostCgroupLayout } from "../../../host/cgroup/cageGroups.js";
import { cageByPid } from "../../pipeline/pipelineHarness.js";

void test("a group a killed collector left is emptied and removed by releaseOwnPageCacheGroups; nothing else is touched", async () => {
  const layout = hostCgroupLayout();
  const log = pino({ level: "silent" });
  const ids = spawn("sleep", ["60"], { stdio: "ignore" });
  const pid = ids.pid as number;
  try {
    const cage = cageByPid(`placer${process.pid}`, 1, pid);
    const placer = await IdsPlacer.open([cage], log, { layout });
    const group = placer.groupOf(cage.name);
    assert.ok(group !== null && existsSync(group), `the cage's page cache group is made: ${String(group)}`);
    const before = parseV2CgroupOfProcess(readFileSync(`/proc/${pid}/cgroup`, "utf8"));
    writeFileSync(join(group, "cgroup.procs"), String(pid)); // what a placement did before the collector was killed
    assert.equal(join(layout.mounts.v2 as string, parseV2CgroupOfProcess(readFileSync(`/proc/${pid}/cgroup`, "utf8")) ?? ""), group);

    // The collector is gone without its stop(): `cage run` releases what it left.
    releaseOwnPageCacheGroups([cage], log, layout);
    assert.equal(existsSync(group), false, "the group is removed");
    assert.equal(parseV2CgroupOfProcess(readFileSync(`/proc/${pid}/cgroup`, "utf8")), "/", `the IDS is back in the v2 root (it came from ${String(before)})`);
    // Nothing left: a second release is a no-op, not an error.
    releaseOwnPageCacheGroups([cage], log, layout);
  } finally {
    ids.kill("SIGKILL");
  }
});
