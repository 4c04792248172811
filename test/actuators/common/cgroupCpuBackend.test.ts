// The cgroup back ends against real cgroups on this host: v1 cpu (cfs quota, shares) on a
// cgroup the test makes, the actuator's own cgroup with a real process moved in and back, and
// what v2 does here (cpu is bound to v1 on this hybrid host, so v2 has no cpu.max).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CgroupCpuBackend, cpuCgroupFor, ownCageCgroup, readMounts } from "../../../actuators/common/cgroupCpuBackend.js";
import { formatV2Max, parseV1Quota, parseV2Max, parseV2Weight, quotaUsFor } from "../../../host/cgroup/cgroupCpuFiles.js";
import { sharesForWeight, v2WeightFor, xenWeightFor } from "../../../actuators/common/cpuBackend.js";
import { parseProcCgroup } from "../../../host/proc/processTable.js";
import { readStartTime } from "../../../host/proc/processIdentity.js";
import { cgroupLayout } from "../../../host/cgroup/cagePlan.js";
import { startBurner, stopChild, testCpuCgroup, waitFor } from "../actuatorHarness.js";

const read = (p: string): string => readFileSync(p, "utf8").trim();

void test("file formats: quota from a cap, v2 cpu.max, weights on each scale", () => {
  assert.equal(quotaUsFor(20, 100000), 20000);
  assert.equal(quotaUsFor(250, 100000), 250000);
  assert.equal(quotaUsFor(0.2, 100000), 1000); // the kernel's 1 ms minimum
  assert.throws(() => quotaUsFor(0, 100000), /positive/);
  assert.equal(parseV1Quota("-1\n"), null);
  assert.equal(parseV1Quota("50000\n"), 50000);
  assert.throws(() => parseV1Quota("abc", "/x/cpu.cfs_quota_us"), /\/x\/cpu.cfs_quota_us: expected an integer/);
  assert.deepEqual(parseV2Max("max 100000\n"), { quotaUs: null, periodUs: 100000 });
  assert.deepEqual(parseV2Max("20000 50000"), { quotaUs: 20000, periodUs: 50000 });
  assert.throws(() => parseV2Max("max"), /cpu.max: expected "max PERIOD"/);
  assert.equal(formatV2Max(null, 100000), "max 100000");
  assert.throws(() => parseV2Weight("10001"), /out of range/);
  assert.equal(sharesForWeight(100), 1024);
  assert.equal(sharesForWeight(1), 10);
  assert.equal(sharesForWeight(0.1), 2);
  assert.equal(v2WeightFor(64), 64);
  assert.equal(xenWeightFor(100), 256);
  assert.equal(xenWeightFor(25), 64);
});

void test("cpuCgroupFor: v1 cpu paths, other v1 hierarchies mapped to cpu, v2 paths", () => {
  const hybrid = { v2: "/sys/fs/cgroup/unified", v1: new Map([["cpu", "/sys/fs/cgroup/cpu"], ["memory", "/sys/fs/cgroup/memory"]]) };
  assert.deepEqual(cpuCgroupFor("/sys/fs/cgroup/cpu/vm1", hybrid), { path: "/sys/fs/cgroup/cpu/vm1", version: 1 });
  assert.deepEqual(cpuCgroupFor("/sys/fs/cgroup/memory/a/vm1", hybrid), { path: "/sys/fs/cgroup/cpu/a/vm1", version: 1 });
  assert.deepEqual(cpuCgroupFor("/sys/fs/cgroup/unified/vm1", hybrid), { path: "/sys/fs/cgroup/unified/vm1", version: 2 });
  const pure = { v2: "/sys/fs/cgroup", v1: new Map<string, string>() };
  assert.deepEqual(cpuCgroupFor("/sys/fs/cgroup/machine.slice/vm1", pure), { path: "/sys/fs/cgroup/machine.slice/vm1", version: 2 });
  assert.throws(() => cpuCgroupFor("/srv/x", hybrid), /not in any mounted cgroup hierarchy/);
});

void test("v1: caps and shares land in the real files and the original values come back", async () => {
  const cg = testCpuCgroup("v1");
  mkdirSync(cg.path);
  try {
    writeFileSync(join(cg.path, "cpu.shares"), "2048");
    const b = new CgroupCpuBackend({ path: cg.path, version: 1, own: false });
    await b.open();
    await b.prepare();
    assert.equal(b.kind, "cgroup-v1");
    assert.deepEqual(b.restoreActions(), [
      { op: "write", path: join(cg.path, "cpu.cfs_quota_us"), value: "-1" },
      { op: "write", path: join(cg.path, "cpu.shares"), value: "2048" },
    ]);
    await b.apply({ capPct: 35, weight: 64 });
    assert.equal(read(join(cg.path, "cpu.cfs_quota_us")), "35000");
    assert.equal(read(join(cg.path, "cpu.shares")), "655"); // round(64 × 1024 / 100)
    assert.deepEqual(b.readCurrent(), { quotaUs: 35000, periodUs: 100000, weight: 655 });
    await b.apply({ capPct: 150, weight: null });
    assert.equal(read(join(cg.path, "cpu.cfs_quota_us")), "150000");
    assert.equal(read(join(cg.path, "cpu.shares")), "655"); // weight left alone
    await b.apply({ capPct: null, weight: null });
    assert.equal(read(join(cg.path, "cpu.cfs_quota_us")), "-1");
    await b.restore();
    assert.equal(read(join(cg.path, "cpu.cfs_quota_us")), "-1");
    assert.equal(read(join(cg.path, "cpu.shares")), "2048");
  } finally {
    cg.remove();
  }
});

void test("v1: a cap really limits a burner in the cgroup (loose bound)", async () => {
  const cg = testCpuCgroup("v1cap");
  mkdirSync(cg.path);
  const burner = startBurner();
  try {
    cg.add(burner.pid);
    const b = new CgroupCpuBackend({ path: cg.path, version: 1, own: false });
    await b.open();
    await b.apply({ capPct: 20, weight: null });
    const throttledBefore = read(join(cg.path, "cpu.stat"));
    const stat = (): Map<string, string> => new Map(read(join(cg.path, "cpu.stat")).split("\n").map((l) => l.split(" ") as [string, string]));
    // The burner is a node process: on a loaded machine it may burn only seconds after its spawn.
    await waitFor("the burner throttled", () => Number(stat().get("nr_throttled")) > 0).catch(() => undefined);
    assert.ok(Number(stat().get("nr_throttled")) > 0, `the burner was throttled (cpu.stat before: ${throttledBefore}, after: ${[...stat()].join(" ")})`);
    await b.restore();
  } finally {
    await stopChild(burner);
    cg.remove();
  }
});

void test("own cgroup: the VM's PIDs move in, come back to where they were, and the cgroup is removed", async () => {
  const cage = `octest${process.pid}`;
  const b = ownCageCgroup(cage, "vm", readMounts());
  const burner = startBurner(30);
  const originOf = (pid: number): string | undefined => parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, "utf8")).v1.cpu;
  const origin = originOf(burner.pid);
  try {
    await b.open(); // nothing to read before prepare
    await b.prepare();
    assert.equal(b.target, `/sys/fs/cgroup/cpu/offloadcage/${cage}/vm`);
    assert.deepEqual(b.restoreActions()[0], { op: "write", path: `${b.target}/cpu.cfs_quota_us`, value: "-1" });
    await b.adoptPids([{ pid: burner.pid, startTime: readStartTime(burner.pid) as number }, { pid: 999999999, startTime: 1 }]); // a PID that does not exist is skipped
    assert.equal(originOf(burner.pid), `/offloadcage/${cage}/vm`);
    await b.apply({ capPct: 40, weight: 100 });
    assert.equal(read(`${b.target}/cpu.cfs_quota_us`), "40000");
    await b.restore();
    assert.equal(originOf(burner.pid), origin);
    assert.equal(existsSync(`/sys/fs/cgroup/cpu/offloadcage/${cage}`), false);
  } finally {
    await stopChild(burner);
    await b.restore().catch(() => undefined);
  }
});

void test("own cgroup left by a crash: prepare() keeps its fail-safe cap until apply(); the original is still no limit", async () => {
  const cage = `octestleft${process.pid}`;
  const b = ownCageCgroup(cage, "vm", readMounts());
  const burner = startBurner(30);
  try {
    mkdirSync(b.target, { recursive: true });
    writeFileSync(`${b.target}/cgroup.procs`, String(burner.pid));
    writeFileSync(`${b.target}/cpu.cfs_quota_us`, "40000"); // what a guardian writes as the fail-safe
    await b.open();
    await b.prepare();
    assert.equal(read(`${b.target}/cpu.cfs_quota_us`), "40000", "the VM is never uncapped between prepare() and apply()");
    assert.deepEqual(b.restoreActions()[0], { op: "write", path: `${b.target}/cpu.cfs_quota_us`, value: "-1" }, "our own group's original is no limit, not the leftover");
    await b.apply({ capPct: 70, weight: null });
    assert.equal(read(`${b.target}/cpu.cfs_quota_us`), "70000");
  } finally {
    await stopChild(burner);
    await b.restore().catch(() => undefined);
    if (existsSync(b.target)) rmdirSync(b.target);
    if (existsSync(`/sys/fs/cgroup/cpu/offloadcage/${cage}`)) rmdirSync(`/sys/fs/cgroup/cpu/offloadcage/${cage}`);
  }
});

void test("v2 on this host: a real v2 cgroup has no cpu.max, and the error says why", async () => {
  const mounts = readMounts();
  if (mounts.v2 === null || mounts.v1.get("cpu") === undefined) {
    // Only a hybrid host (cpu bound to v1) shows this; a pure-v2 host would run the v1 test's v2 twin.
    return;
  }
  const dir = join(mounts.v2, `oc-test-v2-${process.pid}`);
  mkdirSync(dir);
  try {
    const controllers = read(join(mounts.v2, "cgroup.controllers"));
    assert.ok(!controllers.split(" ").includes("cpu"), `cpu is bound to v1 here: v2 root offers only "${controllers}"`);
    // Enabling cpu in the v2 subtree is refused by the kernel while v1 holds it.
    assert.throws(() => writeFileSync(join(mounts.v2 as string, "cgroup.subtree_control"), "+cpu"), (err: NodeJS.ErrnoException) => err.code === "ENOENT" || err.code === "EINVAL" || err.code === "EBUSY");
    const b = new CgroupCpuBackend({ path: dir, version: 2, own: false });
    await assert.rejects(b.open(), new RegExp(`cgroup ${dir} has no cpu.max: the cpu controller is not enabled in its parent's subtree \\(${mounts.v2}/cgroup.subtree_control lacks "cpu"; ${mounts.v2}/cgroup.controllers: "hugetlb"\\)`));
    // The agent's own v2 group, where the plan puts it in the agent's subtree: enabling cpu is refused, and said.
    const layout = cgroupLayout({ v2: mounts.v2, v1: new Map() }, "/");
    const own = ownCageCgroup(`octest${process.pid}`, "vm", layout.mounts, layout);
    assert.equal(own.target, `${mounts.v2}/offloadcage/cages/octest${process.pid}/vm`);
    await assert.rejects(own.prepare(), new RegExp(`cannot enable the cpu controller below ${mounts.v2} \\(${mounts.v2}/cgroup.controllers: "hugetlb"\\): writing "\\+cpu" to ${mounts.v2}/cgroup.subtree_control failed`));
    assert.equal(existsSync(`${mounts.v2}/offloadcage/cages/octest${process.pid}`), false, "nothing made below a refused controller");
  } finally {
    for (const d of [join(dir, "x", "vm"), join(dir, "x"), dir]) {
      try {
        rmdirSync(d);
      } catch {
        /* not made */
      }
    }
  }
});

void test("own cgroup: a reused PID is not moved in; a process that leaves the cage goes back where it came from", async () => {
  const cage = `octest${process.pid}r`;
  const b = ownCageCgroup(cage, "vm", readMounts());
  const burner = startBurner(30);
  const originOf = (pid: number): string | undefined => parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, "utf8")).v1.cpu;
  const origin = originOf(burner.pid);
  const me = { pid: burner.pid, startTime: readStartTime(burner.pid) as number };
  try {
    await b.open();
    await b.prepare();
    // The aggregate named a process that has exited; its PID now belongs to the burner.
    await b.adoptPids([{ pid: me.pid, startTime: me.startTime - 1 }]);
    assert.equal(originOf(me.pid), origin);
    assert.equal(b.reusedPids.skipped, 1);
    await b.adoptPids([me]);
    assert.equal(originOf(me.pid), `/offloadcage/${cage}/vm`);
    await b.adoptPids([me]); // already in: nothing moves
    assert.equal(b.movedOut, 0);
    await b.adoptPids([]); // it left the cage
    assert.equal(originOf(me.pid), origin);
    assert.equal(b.movedOut, 1);
    assert.equal(b.reusedPids.skipped, 1);
    await b.restore();
    assert.equal(existsSync(`/sys/fs/cgroup/cpu/offloadcage/${cage}`), false);
  } finally {
    await stopChild(burner);
    await b.restore().catch(() => undefined);
  }
});
