import { test } from "node:test";
import assert from "node:assert/strict";
import { enterCgroupsArgv, parseCgroupMounts, parseMemoryStat, parseV2CgroupOfProcess } from "../../../host/cgroup/cgroupMounts.js";
import { compareBatchWithMemcg } from "../../../collectors/pagecache/memoryCgroupCrossCheck.js";
import { parsePageCacheCollectorArgs } from "../../../collectors/pagecache/pageCacheCollectorArgs.js";
import { planIdsPlacement } from "../../../collectors/pagecache/idsPlacement.js";
import type { CageSpec } from "../../../config/cageConfig.js";
import type { ProcessInfo } from "../../../host/proc/processTable.js";
import { defaultScriptPath, multiGroupProgram, ONE_GROUP_FILTER, pageCacheInvocation, validatePageCacheOptions } from "../../../collectors/pagecache/pageCacheOptions.js";
import { readFileSync } from "node:fs";
import { pageCacheTotals } from "../../../collectors/pagecache/pageCacheTotals.js";

const GOOD = { cgroupV2Path: "/sys/fs/cgroup/unified/offloadcage/tracked", intervalMs: 1000, maxTrackedPages: 4096 };

void test("options: exact messages for bad values", () => {
  validatePageCacheOptions(GOOD);
  assert.throws(() => validatePageCacheOptions({ ...GOOD, cgroupV2Path: "rel/path" }), /cgroupV2Path must be an absolute path, got "rel\/path"/);
  assert.throws(() => validatePageCacheOptions({ ...GOOD, cgroupV2Path: '/a"b' }), /may hold only/);
  assert.throws(() => validatePageCacheOptions({ ...GOOD, cgroupV2Path: "/a/../b" }), /no \.\./);
  assert.throws(() => validatePageCacheOptions({ ...GOOD, intervalMs: 5 }), /intervalMs must be an integer from 10 to 60000, got 5/);
  assert.throws(() => validatePageCacheOptions({ ...GOOD, maxTrackedPages: 0 }), /maxTrackedPages must be an integer from 1 to 16777216, got 0/);
  assert.throws(() => validatePageCacheOptions({ ...GOOD, maxTrackedPages: 1.5 }), /maxTrackedPages/);
});

void test("invocation: positional parameters and map size", () => {
  const inv = pageCacheInvocation(GOOD, 4096, "/x/pageCache.bt");
  assert.deepEqual(inv.args, ["-f", "json", "/x/pageCache.bt", GOOD.cgroupV2Path, "1000", "4096"]);
  assert.equal(inv.env.BPFTRACE_MAP_KEYS_MAX, "4096");
  assert.throws(() => pageCacheInvocation(GOOD, 1000), /page size must be a power of two/);
});

void test("collector args", () => {
  const a = parsePageCacheCollectorArgs(["--cgroup", "/sys/fs/cgroup/unified/x", "--endpoint=ipc:///run/x.sock", "--max-pages", "100"]);
  assert.deepEqual(a, { cgroupV2Path: "/sys/fs/cgroup/unified/x", configPath: null, endpoint: "ipc:///run/x.sock", intervalMs: 1000, maxTrackedPages: 100, createCgroup: false, statusMs: 5000 });
  assert.deepEqual(parsePageCacheCollectorArgs(["--config", "cages.yaml", "--endpoint", "ipc:///x"]).cgroupV2Path, null);
  assert.throws(() => parsePageCacheCollectorArgs(["--endpoint", "ipc:///x"]), /--cgroup PATH or --config FILE is required/);
  assert.throws(() => parsePageCacheCollectorArgs(["--cgroup", "/x", "--endpoint", "http://x"]), /--endpoint must be/);
  assert.throws(() => parsePageCacheCollectorArgs(["--cgroup", "/x", "--endpoint", "ipc:///x", "--interval-ms", "1s"]), /--interval-ms must be an integer from 10 to 60000, got "1s"/);
  assert.throws(() => parsePageCacheCollectorArgs(["--cgroup", "/x", "--bogus"]), /^UsageError: cage collector pagecache: unknown option "--bogus"$/);
  assert.throws(() => parsePageCacheCollectorArgs(["--cgroup", "x", "--endpoint", "ipc:///x"]), /--cgroup must be an absolute path, got "x"/);
});

void test("IDS placement: each cage's IDS not yet in its own group; a unit's or matcher's group is tracked, not moved into", () => {
  const proc = (pid: number, v2: string): ProcessInfo => ({ pid, ppid: 1, startTime: pid, comm: "aide", exe: null, cmdline: "", cgroups: { v1: {}, v2 }, uids: { real: 0, effective: 0 } });
  const spec = (name: string, ids: CageSpec["ids"]): CageSpec => ({ name, vm: { kind: "process", match: [{ pid: 1, descendants: false }] }, ids, cpu: { cap: 100, idsCap: null, weight: null }, memory: null });
  const cages = [
    spec("web", [{ comm: "aide", descendants: true }]),
    spec("db", [{ cgroup: "/sys/fs/cgroup/ids-db", descendants: true }]),
    spec("old", [{ comm: "clamd", descendants: true }]),
    spec("gone", [{ comm: "snort", descendants: true }]),
  ];
  const members = new Map([
    ["web", { vm: [], ids: [proc(30, "/user.slice"), proc(20, "/svc/cages/web/ids"), proc(10, "/system.slice/aide.service")] }],
    ["db", { vm: [], ids: [proc(40, "/ids-db")] }],
    ["old", { vm: [], ids: [proc(50, "/"), proc(51, "/svc/cages/old/ids/sub"), proc(30, "/user.slice")] }],
    ["gone", { vm: [], ids: [proc(60, "/")] }],
  ]);
  const groups = new Map([
    ["web", { v2Path: "/svc/cages/web/ids", own: true }],
    ["db", { v2Path: "/ids-db", own: false }],
    ["old", { v2Path: "/svc/cages/old/ids", own: true }],
  ]);
  const plan = planIdsPlacement(cages, members, groups);
  assert.deepEqual(plan, {
    place: [
      { pid: 10, cage: "web" },
      { pid: 30, cage: "web" }, // in two cages: the first cage's group
      { pid: 50, cage: "old" },
    ],
    untracked: ["gone"],
  });
});

void test("IDS placement: a libvirt IDS-VM's QEMU stays in libvirt's cgroup; a qemu IDS-VM's is placed like any IDS process", () => {
  const proc = (pid: number, v2: string): ProcessInfo => ({ pid, ppid: 1, startTime: pid, comm: "qemu-system-x86", exe: null, cmdline: "", cgroups: { v1: {}, v2 }, uids: { real: 0, effective: 0 } });
  const base = { vm: { kind: "process" as const, match: [{ pid: 1, descendants: false }] }, ids: [], cpu: { cap: 100, idsCap: 30, weight: null }, memory: null };
  const cages: CageSpec[] = [
    { ...base, name: "lv", idsVms: [{ kind: "libvirt", domain: "ids1", uri: "qemu:///system" }] },
    { ...base, name: "q", idsVms: [{ kind: "qemu", qmpSocket: "/run/q.qmp", match: [{ pid: 20, descendants: true }] }] },
  ];
  const members = new Map([
    ["lv", { vm: [], ids: [proc(10, "/machine.slice/machine-qemu-1-ids1.scope/libvirt/emulator")] }],
    ["q", { vm: [], ids: [proc(20, "/user.slice")] }],
  ]);
  const groups = new Map([
    ["lv", { v2Path: "/svc/cages/lv/ids", own: true }],
    ["q", { v2Path: "/svc/cages/q/ids", own: true }],
  ]);
  assert.deepEqual(planIdsPlacement(cages, members, groups), { place: [{ pid: 20, cage: "q" }], untracked: [] });
});

void test("several tracked groups: the script's filter becomes an OR over their cgroup ids", () => {
  const script = readFileSync(defaultScriptPath(), "utf8");
  const program = multiGroupProgram(script, ["/sys/fs/cgroup/svc/cages/db/ids"]);
  assert.ok(program.includes('/cgroup == cgroupid(str($1)) || cgroup == cgroupid("/sys/fs/cgroup/svc/cages/db/ids")/'));
  assert.equal(program.replace('/cgroup == cgroupid(str($1)) || cgroup == cgroupid("/sys/fs/cgroup/svc/cages/db/ids")/', ONE_GROUP_FILTER), script);
  const inv = pageCacheInvocation({ ...GOOD, extraCgroupV2Paths: ["/sys/fs/cgroup/svc/cages/db/ids"] }, 4096);
  assert.deepEqual([inv.args[0], inv.args[1], inv.args[2]], ["-f", "json", "-e"]);
  assert.deepEqual(inv.args.slice(4), [GOOD.cgroupV2Path, "1000", "4096"]);
  assert.throws(() => pageCacheInvocation({ ...GOOD, extraCgroupV2Paths: ['/sys/fs/cgroup/a")||1||("'] }, 4096), /may hold only letters, digits/);
  assert.throws(() => multiGroupProgram("BEGIN {}", ["/x"]), /has no \/cgroup == cgroupid\(str\(\$1\)\)\/ filter to widen/);
});

void test("cgroup mounts of a hybrid host", () => {
  const m = parseCgroupMounts(
    [
      "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
      "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
      "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
      "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
    ].join("\n"),
  );
  assert.equal(m.v2, "/sys/fs/cgroup/unified");
  assert.equal(m.v1.get("memory"), "/sys/fs/cgroup/memory");
  assert.equal(m.v1.get("cpu"), "/sys/fs/cgroup/cpu");
  assert.equal(m.v1.has("rw"), false);
  assert.equal(parseV2CgroupOfProcess("9:name=systemd:/\n4:memory:/process_api/x\n0::/offloadcage/t\n"), "/offloadcage/t");
});

void test("memory.stat is read by key", () => {
  const s = parseMemoryStat("cache 67293184\nrss 0\ninactive_file 67158016\ntotal_cache 67293184\n");
  assert.equal(s.get("cache"), 67293184);
  assert.equal(s.get("inactive_file"), 67158016);
});

void test("enterCgroupsArgv execs the command after joining every group", () => {
  const argv = enterCgroupsArgv(["/a/cgroup.procs", "/b/cgroup.procs"], ["cat", "f"]);
  assert.deepEqual(argv.slice(3), ["offloadcage-enter", "/a/cgroup.procs", "/b/cgroup.procs", "--", "cat", "f"]);
  assert.throws(() => enterCgroupsArgv(["/a/tasks"], ["cat"]), /not a cgroup.procs path/);
  assert.throws(() => enterCgroupsArgv([], []), /command is empty/);
});

void test("totals and the memcg comparison", () => {
  const batch = {
    sampledAtNs: 1n,
    untrackedInserts: 0,
    processes: [
      { pid: 1, insertedBytes: 100, residentBytes: 60 },
      { pid: 2, insertedBytes: 50, residentBytes: 40 },
    ],
  };
  assert.deepEqual(pageCacheTotals(batch), { insertedBytes: 150, residentBytes: 100, pids: [1, 2] });
  assert.deepEqual(pageCacheTotals(batch, [2, 3]), { insertedBytes: 50, residentBytes: 40, pids: [2] });
  const c = compareBatchWithMemcg(batch, 98, { kind: "v1", cacheKey: "cache" });
  assert.equal(c.differenceBytes, 2);
  assert.equal(c.relativeDifference, 0.02);
  assert.equal(compareBatchWithMemcg({ ...batch, processes: [] }, 0, { kind: "v1", cacheKey: "cache" }).relativeDifference, 0);
});
