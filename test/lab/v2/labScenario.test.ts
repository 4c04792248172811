// v2 lab, pure parts: the scenario spec, the checks on what the guest reports, the cage file it
// writes and QEMU's command line. The lab itself runs in `npm run test:v2`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { balloonV2Check, checkLeftovers, checkRestart, checkSmoke, cpuV2Check, dropInAssignments, pageCacheCheck, validateV2Spec, type Leftovers, type RestartFacts, type SmokeFacts, type V2ScenarioSpec } from "../../../lab/v2/labScenario.js";
import { cageDocument, cageMemoryMiB, unitCgroup, VM_UNIT } from "../../../lab/v2/guest/labFiles.js";
import { kernelCommandLine, qemuArgs } from "../../../lab/v2/v2Lab.js";
import { parseConfigText } from "../../../config/loadConfig.js";
import type { CageWindow } from "../../../lab/xen/labScenario.js";

const spec: V2ScenarioSpec = { phases: ["service", "cage"], capPct: 50, idsCapPct: 25, durationS: 30, vmMemMiB: 128 };
const MiB = 2 ** 20;

void test("validateV2Spec accepts a good spec and names the bad field", () => {
  validateV2Spec(spec);
  validateV2Spec({ ...spec, phases: ["smoke"] });
  const bad: [Partial<V2ScenarioSpec>, RegExp][] = [
    [{ phases: [] }, /phases must be a non-empty list of smoke, service, cage, got \[\]/],
    [{ phases: ["smoke", "cage"] }, /smoke runs alone/],
    [{ phases: ["cage", "cage"] }, /a phase is listed twice/],
    [{ phases: ["cpu-on" as "cage"] }, /phases must be/],
    [{ capPct: 0 }, /capPct must be in \(0, 200\], got 0/],
    [{ idsCapPct: 50 }, /idsCapPct must be in \(0, capPct\), got 50/],
    [{ durationS: 2 }, /durationS must be an integer 3..600, got 2/],
    [{ vmMemMiB: 8 }, /vmMemMiB must be an integer 16..1024, got 8/],
  ];
  for (const [patch, re] of bad) assert.throws(() => validateV2Spec({ ...spec, ...patch }), re);
});

const smoke: SmokeFacts = {
  pid1Comm: "systemd",
  systemState: "running",
  cgroupMounts: ["cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0"],
  controllers: "cpuset cpu io memory hugetlb pids rdma misc",
  nodeVersion: "v20.20.2",
  bpftraceEvents: 42,
  failedUnits: [],
};

void test("checkSmoke: systemd PID 1, cgroup2 alone with cpu and memory, node and bpftrace", () => {
  assert.deepEqual(checkSmoke(smoke), { ok: true, problems: [] });
  assert.ok(checkSmoke({ ...smoke, systemState: "degraded" }).ok);
  const hybrid = checkSmoke({ ...smoke, cgroupMounts: [...smoke.cgroupMounts, "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0"] });
  assert.deepEqual(hybrid.problems, ["cgroup v1 is mounted: cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0"]);
  const unified = checkSmoke({ ...smoke, cgroupMounts: ["cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0"] });
  assert.deepEqual(unified.problems, ["cgroup2 is not mounted at /sys/fs/cgroup"]);
  const bad = checkSmoke({ ...smoke, pid1Comm: "init", systemState: "starting", controllers: "cpu pids", nodeVersion: "", bpftraceEvents: 0 });
  assert.equal(bad.problems.length, 5);
  assert.match(bad.problems.join("\n"), /PID 1 is "init"/);
  assert.match(bad.problems.join("\n"), /controller memory missing/);
});

const restart: RestartFacts = { mainPidBefore: 300, mainPidAfter: 412, nRestartsBefore: 0, nRestartsAfter: 1, idsStoppedWhileDown: [], idsCpuMaxWhileDown: ["25000 100000"], metricsStatusAfter: 200 };

void test("checkRestart: a new MainPID, one more NRestarts, no IDS left stopped, metrics again", () => {
  assert.ok(checkRestart(restart).ok);
  assert.match(checkRestart({ ...restart, mainPidAfter: 300 }).problems[0]!, /MainPID 300 → 300: not restarted/);
  assert.match(checkRestart({ ...restart, nRestartsAfter: 0 }).problems[0]!, /NRestarts 0 → 0/);
  assert.match(checkRestart({ ...restart, idsStoppedWhileDown: ["77:aide"] }).problems[0]!, /left stopped .*77:aide/);
  assert.match(checkRestart({ ...restart, metricsStatusAfter: 0 }).problems[0]!, /answered \/metrics with 0/);
});

const clean: Leftovers = { cgroups: [], processes: [], files: [], unitLoadState: "not-found", runtimeProperties: [], resetDropIns: [], stoppedProcesses: [] };

void test("dropInAssignments: the KEY=VALUE lines of a drop-in, an empty value kept empty", () => {
  const text = "# This is a drop-in unit file extension, created via \"systemctl set-property\"\n# or an equivalent operation. Do not edit.\n[Service]\nCPUQuota=\nCPUWeight=200\n";
  assert.deepEqual(dropInAssignments(text), [{ key: "CPUQuota", value: "" }, { key: "CPUWeight", value: "200" }]);
});

void test("checkLeftovers lists every kind of trace left behind", () => {
  assert.ok(checkLeftovers(clean).ok);
  assert.ok(checkLeftovers({ ...clean, resetDropIns: ["aide.service.d/50-CPUQuota.conf"] }).ok, "a drop-in that resets to the default sets nothing");
  const dirty = checkLeftovers({ ...clean, cgroups: ["/sys/fs/cgroup/offloadcage/ids"], processes: ["9 bpftrace"], files: ["/opt/offloadcage"], unitLoadState: "loaded", runtimeProperties: ["vm-workload.service.d/50-CPUQuota.conf"], stoppedProcesses: ["5:aide"] });
  assert.equal(dirty.problems.length, 6);
  assert.match(dirty.problems.join("\n"), /cgroups left: \/sys\/fs\/cgroup\/offloadcage\/ids/);
  assert.match(dirty.problems.join("\n"), /LoadState is "loaded"/);
});

void test("pageCacheCheck: the last sample within 2% of memory.stat file", () => {
  const s = (agent: number, file: number) => ({ atS: 0, agentBytes: agent, cgroupFileBytes: file });
  const ok = pageCacheCheck([s(50 * MiB, 100 * MiB), s(199 * MiB, 200 * MiB)]);
  assert.equal(ok.ok, true);
  assert.equal(ok.samples, 2);
  assert.equal(ok.maxError, 0.5);
  assert.equal(pageCacheCheck([s(190 * MiB, 200 * MiB)]).ok, false);
  assert.equal(pageCacheCheck([s(0, 0)]).ok, false);
  assert.equal(pageCacheCheck([]).ok, false);
});

void test("balloonV2Check: memory.high moves by the IDS's memory within max(1%, 4 MiB), capped at the floor", () => {
  const base = 512 * MiB;
  const floor = 160 * MiB;
  const b = (ids: number, high: number | null) => ({ atS: 0, idsBytes: ids, vmHighBytes: high });
  assert.ok(balloonV2Check([b(100 * MiB, 413 * MiB)], base, floor).ok); // moved 99 MiB for 100
  const off = balloonV2Check([b(100 * MiB, 420 * MiB)], base, floor); // moved 92 for 100
  assert.equal(off.ok, false);
  assert.equal(off.errorBytes, 8 * MiB);
  assert.equal(off.boundBytes, 4 * MiB);
  // 1% of 1 GiB is over 4 MiB; the floor caps what can move at base − floor.
  assert.ok(balloonV2Check([b(1024 * MiB, 160 * MiB)], base, floor).ok);
  assert.equal(balloonV2Check([b(100 * MiB, null)], base, floor).ok, false);
  assert.equal(balloonV2Check([], base, floor).ok, false);
});

void test("cpuV2Check: total ≤ cap + 2 and IDS ≤ idsCap + 2 in ≥ 95% of windows", () => {
  const w = (vm: number, ids: number): CageWindow => ({ timeMs: 0, windowSeconds: 1, vmPct: vm, idsPct: ids, totalPct: vm + ids, capPct: 50 });
  const good = Array.from({ length: 20 }, () => w(25, 25));
  assert.ok(cpuV2Check(good, 25).ok);
  const oneOver = [...good.slice(1), w(24, 28)]; // total 52 is within, IDS 28 is not: 19 of 20 = 95%
  const c = cpuV2Check(oneOver, 25);
  assert.equal(c.idsWithin, 19);
  assert.equal(c.total.within, 20);
  assert.ok(c.ok);
  assert.ok(cpuV2Check([...good.slice(2), w(24, 28), w(30, 25)], 25).ok); // each bar missed once: 19 of 20
  assert.equal(cpuV2Check([...good.slice(2), w(24, 28), w(20, 30)], 25).ok, false); // IDS over twice: 18 of 20
  assert.equal(cpuV2Check([], 25).ok, false);
});

void test("the guest's cage file validates: VM as its unit's cgroup, AIDE as the IDS, every actuator", () => {
  const doc = cageDocument(spec);
  const cfg = parseConfigText(JSON.stringify(doc), "cages.yaml");
  const cage = cfg.cages[0]!;
  assert.deepEqual(cage.vm, { kind: "cgroup", path: unitCgroup(VM_UNIT) });
  assert.equal(cage.cpu.failsafeCap, 25);
  assert.equal(cage.memory?.baseBytes, cageMemoryMiB(spec).base * MiB);
  assert.equal(cage.memory?.balloon.cgroupV2File, "memory.high");
  assert.ok(cfg.agent.actuators.limiter && cfg.agent.actuators.cpu && cfg.agent.actuators.balloon);
  assert.equal(cfg.agent.actuators.limiter.mode, "cgroup");
});

void test("QEMU: TCG, two vCPUs, cgroup v1 off on the kernel command line, the disks in the guest's order", () => {
  const images = { dir: "/i", vmlinuz: "/i/vmlinuz", initrd: "/i/initrd.gz", root: "/i/root.ext2", vmDisk: "/i/vm-disk.ext2" };
  const args = qemuArgs(images, "/w/project.tar", "/w/results.img");
  assert.equal(args[args.indexOf("-accel") + 1], "tcg,thread=multi");
  assert.equal(args[args.indexOf("-smp") + 1], "2");
  assert.ok(args.includes("-no-reboot"));
  assert.deepEqual(args.filter((_, i) => args[i - 1] === "-drive"), [
    "file=/i/root.ext2,format=raw,if=virtio,readonly=on",
    "file=/w/project.tar,format=raw,if=virtio,readonly=on",
    "file=/w/results.img,format=raw,if=virtio",
    "file=/i/vm-disk.ext2,format=raw,if=virtio,readonly=on",
  ]);
  const cmdline = kernelCommandLine().split(" ");
  for (const want of ["console=ttyS0,115200", "cgroup_no_v1=all", "systemd.unified_cgroup_hierarchy=1"]) assert.ok(cmdline.includes(want), want);
});
