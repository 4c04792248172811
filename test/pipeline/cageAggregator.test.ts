import { test } from "node:test";
import assert from "node:assert/strict";
import type { CageSpec } from "../../config/cageConfig.js";
import { CageAggregator, PidSlotTable, pidsOf, type CagePids } from "../../pipeline/cageAggregator.js";
import { CpuBatchView, encodeCpuBatch, type CpuBatch } from "../../protocol/rawBatches.js";
import { encodeCageAggregates } from "../../protocol/cageAggregate.js";

const MS = 1_000_000;

function cage(name: string, extra: Partial<CageSpec> = {}): CageSpec {
  return {
    name,
    vm: { kind: "process", match: [{ comm: `${name}-vm`, descendants: true }] },
    ids: [{ comm: `${name}-ids`, descendants: true }],
    cpu: { cap: 150, idsCap: 40, weight: 2 },
    memory: { baseBytes: 4 << 30, floorBytes: 1 << 30, failsafeBytes: 4 << 30, balloon: { backend: "auto", libvirtDomain: null, cgroup: null, cgroupV2File: "memory.max" } },
    ...extra,
  };
}

/** A PID's start time in these tests: distinct per PID, so a mix-up shows. */
const startOf = (pid: number): number => pid * 7 + 3;

function membership(entries: Record<string, Omit<CagePids, "startTimes">>): Map<string, CagePids> {
  return new Map(Object.entries(entries).map(([name, m]) => [name, { ...m, startTimes: new Map([...m.vm, ...m.ids].map((p) => [p, startOf(p)])) }]));
}

function cpuBatch(startMs: number, endMs: number, processes: [pid: number, cpuMs: number][]): CpuBatch {
  return {
    windowStartNs: BigInt(startMs * MS),
    windowEndNs: BigInt(endMs * MS),
    processes: processes.map(([pid, ms]) => ({ pid, cpuNs: ms * MS })),
    threads: [],
  };
}

void test("50 ms of VM and 20 ms of IDS in a 100 ms window are 50 %, 20 %, 70 %", () => {
  const agg = new CageAggregator([cage("web")]);
  agg.setMembership(membership({ web: { vm: [100, 101], ids: [200] } }));
  const [a] = agg.ingestCpu(cpuBatch(1000, 1100, [[100, 30], [101, 20], [200, 20]]), 5_000);
  assert.ok(a);
  assert.equal(a.v, 1);
  assert.equal(a.cage, "web");
  assert.equal(a.windowSeconds, 0.1);
  assert.equal(a.vm.cpuPct, 50);
  assert.equal(a.ids.cpuPct, 20);
  assert.equal(a.totalPct, 70);
  assert.equal(a.timeMs, 5_000 + 1100);
  assert.deepEqual(a.vm.pids, [100, 101]);
  assert.deepEqual(a.ids.pids, [200]);
  assert.equal(a.capPct, 150);
  assert.equal(a.idsCapPct, 40);
  assert.equal(a.weight, 2);
  assert.deepEqual(a.memory, { baseBytes: 4 << 30, floorBytes: 1 << 30 });
});

void test("more than one CPU's worth is reported above 100 %", () => {
  const agg = new CageAggregator([cage("big")]);
  agg.setMembership(membership({ big: { vm: [1, 2], ids: [] } }));
  const [a] = agg.ingestCpu(cpuBatch(0, 100, [[1, 100], [2, 80]]), 0);
  assert.equal(a?.vm.cpuPct, 180);
  assert.equal(a?.totalPct, 180);
});

void test("one aggregate per configured cage, in config order, idle cages at zero", () => {
  const agg = new CageAggregator([cage("a"), cage("b"), cage("c")]);
  agg.setMembership(membership({ a: { vm: [10], ids: [11] }, c: { vm: [30], ids: [] } }));
  const out = agg.ingestCpu(cpuBatch(0, 200, [[30, 50], [11, 10]]), 0);
  assert.deepEqual(
    out.map((a) => [a.cage, a.vm.cpuPct, a.ids.cpuPct, a.totalPct]),
    [
      ["a", 0, 5, 5],
      ["b", 0, 0, 0],
      ["c", 25, 0, 25],
    ],
  );
});

void test("unknown PIDs are ignored and counted", () => {
  const agg = new CageAggregator([cage("web")]);
  agg.setMembership(membership({ web: { vm: [100], ids: [] } }));
  const [a] = agg.ingestCpu(cpuBatch(0, 100, [[100, 10], [999, 90], [998, 5]]), 0);
  assert.equal(a?.vm.cpuPct, 10);
  assert.equal(agg.stats.unknownPidRecords, 2);
  agg.ingestCpu(cpuBatch(100, 200, [[997, 1]]), 0);
  assert.equal(agg.stats.unknownPidRecords, 3);
  assert.equal(agg.stats.cpuBatches, 2);
});

void test("before any membership every PID is unknown and cages read zero", () => {
  const agg = new CageAggregator([cage("web")]);
  const [a] = agg.ingestCpu(cpuBatch(0, 100, [[1, 50]]), 0);
  assert.equal(a?.totalPct, 0);
  assert.deepEqual(a?.vm.pids, []);
  assert.equal(agg.stats.unknownPidRecords, 1);
});

void test("membership changes move PIDs between cages and roles and are reported", () => {
  const agg = new CageAggregator([cage("a"), cage("b")]);
  const first = agg.setMembership(membership({ a: { vm: [1, 2], ids: [3] }, b: { vm: [4], ids: [] } }));
  assert.deepEqual(first, [
    { cage: "a", role: "vm", added: [1, 2], removed: [] },
    { cage: "a", role: "ids", added: [3], removed: [] },
    { cage: "b", role: "vm", added: [4], removed: [] },
  ]);
  assert.deepEqual(agg.setMembership(membership({ a: { vm: [2, 1], ids: [3] }, b: { vm: [4], ids: [] } })), [], "same sets, any order: no change");

  // PID 3 (the IDS) exits, PID 5 starts as b's IDS, PID 2 moves from a to b.
  const changes = agg.setMembership(membership({ a: { vm: [1], ids: [] }, b: { vm: [4, 2], ids: [5] } }));
  assert.deepEqual(changes, [
    { cage: "a", role: "vm", added: [], removed: [2] },
    { cage: "a", role: "ids", added: [], removed: [3] },
    { cage: "b", role: "vm", added: [2], removed: [] },
    { cage: "b", role: "ids", added: [5], removed: [] },
  ]);
  assert.deepEqual(agg.lookup(2), { cage: "b", role: "vm" });
  assert.equal(agg.lookup(3), undefined);

  const [a, b] = agg.ingestCpu(cpuBatch(0, 100, [[1, 10], [2, 20], [3, 30], [4, 40], [5, 50]]), 0);
  assert.equal(a?.vm.cpuPct, 10);
  assert.equal(a?.ids.cpuPct, 0);
  assert.equal(b?.vm.cpuPct, 60);
  assert.equal(b?.ids.cpuPct, 50);
  assert.equal(agg.stats.unknownPidRecords, 1, "PID 3 left every cage");
});

void test("a PID claimed twice is charged once: first cage in config order, IDS over VM within a cage", () => {
  const agg = new CageAggregator([cage("a"), cage("b")]);
  agg.setMembership(membership({ a: { vm: [1, 2], ids: [2] }, b: { vm: [1], ids: [] } }));
  assert.deepEqual(agg.lookup(1), { cage: "a", role: "vm" });
  assert.deepEqual(agg.lookup(2), { cage: "a", role: "ids" });
  assert.equal(agg.stats.conflictingPids, 2);
  const [a, b] = agg.ingestCpu(cpuBatch(0, 100, [[1, 10], [2, 20]]), 0);
  assert.equal(a?.totalPct, 30);
  assert.equal(b?.totalPct, 0);
});

void test("rss sums use each PID's latest VmRSS; samples of PIDs that left are dropped", () => {
  const agg = new CageAggregator([cage("web")]);
  agg.setMembership(membership({ web: { vm: [1, 2], ids: [3] } }));
  const mem = (pid: number, rss: number) => ({ pid, vmRssBytes: rss, rssAnonBytes: 0, rssFileBytes: 0, rssShmemBytes: 0, vmHwmBytes: rss });
  agg.ingestMemory({ sampledAtNs: 1n, processes: [mem(1, 1000), mem(2, 2000), mem(3, 500), mem(9, 7)] });
  agg.ingestMemory({ sampledAtNs: 2n, processes: [mem(2, 2500)] });
  let [a] = agg.ingestCpu(cpuBatch(0, 100, []), 0);
  assert.equal(a?.vm.rssBytes, 3500);
  assert.equal(a?.ids.rssBytes, 500);
  assert.equal(agg.rssBytes("web", "vm"), 3500);

  agg.setMembership(membership({ web: { vm: [1], ids: [3, 4] } }));
  [a] = agg.ingestCpu(cpuBatch(100, 200, []), 0);
  assert.equal(a?.vm.rssBytes, 1000);
  assert.equal(a?.ids.rssBytes, 500, "PID 4 has no sample yet: counts 0");
  // PID 2 left: if it comes back, its old sample must not be resurrected.
  agg.setMembership(membership({ web: { vm: [1, 2], ids: [3] } }));
  assert.equal(agg.rssBytes("web", "vm"), 1000);
});

void test("takeIdsMemoryChanges: every cage first, then only cages whose IDS RSS or page cache moved (VM memory is not the IDS's)", () => {
  const agg = new CageAggregator([cage("web"), cage("db")]);
  agg.setMembership(membership({ web: { vm: [1], ids: [3] }, db: { vm: [5], ids: [6] } }));
  const mem = (pid: number, rss: number) => ({ pid, vmRssBytes: rss, rssAnonBytes: 0, rssFileBytes: 0, rssShmemBytes: 0, vmHwmBytes: rss });
  agg.ingestMemory({ sampledAtNs: 1n, processes: [mem(1, 1000), mem(3, 500), mem(5, 70), mem(6, 60)] });
  assert.deepEqual(agg.takeIdsMemoryChanges(), [
    { cage: "web", ids: { rssBytes: 500, pageCacheBytes: 0 } },
    { cage: "db", ids: { rssBytes: 60, pageCacheBytes: 0 } },
  ]);
  assert.deepEqual(agg.takeIdsMemoryChanges(), [], "nothing moved");
  agg.ingestMemory({ sampledAtNs: 2n, processes: [mem(1, 9999), mem(3, 500), mem(6, 61)] });
  assert.deepEqual(agg.takeIdsMemoryChanges(), [{ cage: "db", ids: { rssBytes: 61, pageCacheBytes: 0 } }], "the VM's RSS is not the IDS's memory");
  agg.ingestPageCache({ sampledAtNs: 3n, untrackedInserts: 0, processes: [{ pid: 3, insertedBytes: 4096, residentBytes: 4096 }] });
  assert.deepEqual(agg.takeIdsMemoryChanges(), [{ cage: "web", ids: { rssBytes: 500, pageCacheBytes: 4096 } }]);
  // A new IDS member brings its sampled RSS with it.
  agg.ingestMemory({ sampledAtNs: 4n, processes: [mem(7, 300)] });
  agg.setMembership(membership({ web: { vm: [1], ids: [3, 7] }, db: { vm: [5], ids: [6] } }));
  assert.deepEqual(agg.takeIdsMemoryChanges(), [{ cage: "web", ids: { rssBytes: 800, pageCacheBytes: 4096 } }]);
});

void test("IDS page cache: members' resident bytes per cage, kept after the IDS exits until evicted, VM pages not charged", () => {
  const agg = new CageAggregator([cage("web"), cage("db")]);
  agg.setMembership(membership({ web: { vm: [1], ids: [3, 4] }, db: { vm: [5], ids: [6] } }));
  const pc = (processes: [pid: number, resident: number][]) => ({
    sampledAtNs: 1n,
    untrackedInserts: 0,
    processes: processes.map(([pid, residentBytes]) => ({ pid, insertedBytes: residentBytes + 4096, residentBytes })),
  });
  agg.ingestPageCache(pc([[1, 999], [3, 4096], [4, 8192], [6, 100], [77, 5]]));
  const [first, db] = agg.ingestCpu(cpuBatch(0, 100, []), 0);
  assert.equal(first?.ids.pageCacheBytes, 12288);
  assert.equal(db?.ids.pageCacheBytes, 100);
  assert.equal(agg.pageCacheBytes("web"), 12288);

  // PID 4 (an AIDE run) exits: its cache is still resident and still the cage's.
  agg.setMembership(membership({ web: { vm: [1], ids: [3] }, db: { vm: [5], ids: [6] } }));
  agg.ingestPageCache(pc([[3, 4096], [4, 8192], [6, 100]]));
  const [web] = agg.ingestCpu(cpuBatch(100, 200, []), 0);
  assert.equal(web?.ids.pageCacheBytes, 12288);

  // Evicted (drop_caches): PID 4 reports 0 and is forgotten; a later process reusing PID 4 in db is db's.
  agg.ingestPageCache(pc([[3, 4096], [4, 0], [6, 100]]));
  assert.equal(agg.pageCacheBytes("web"), 4096);
  agg.setMembership(membership({ web: { vm: [1], ids: [3] }, db: { vm: [5], ids: [6, 4] } }));
  agg.ingestPageCache(pc([[3, 4096], [4, 2048], [6, 100]]));
  assert.equal(agg.pageCacheBytes("web"), 4096);
  assert.equal(agg.pageCacheBytes("db"), 2148);
});

void test("cumulative CPU seconds per cage and role add up across windows", () => {
  const agg = new CageAggregator([cage("web")]);
  agg.setMembership(membership({ web: { vm: [1], ids: [2] } }));
  for (let i = 0; i < 10; i++) agg.ingestCpu(cpuBatch(i * 100, (i + 1) * 100, [[1, 50], [2, 25]]), 0);
  assert.ok(Math.abs(agg.cpuSeconds("web", "vm") - 0.5) < 1e-12);
  assert.ok(Math.abs(agg.cpuSeconds("web", "ids") - 0.25) < 1e-12);
  assert.throws(() => agg.cpuSeconds("nope", "vm"), /unknown cage "nope"/);
});

void test("an empty window reports 0 %, not Infinity or NaN", () => {
  const agg = new CageAggregator([cage("web")]);
  agg.setMembership(membership({ web: { vm: [1], ids: [] } }));
  const [a] = agg.ingestCpu(cpuBatch(100, 100, [[1, 0]]), 0);
  assert.equal(a?.vm.cpuPct, 0);
  assert.equal(a?.windowSeconds, 0);
});

void test("cages without memory or optional CPU settings carry nulls", () => {
  const agg = new CageAggregator([cage("bare", { memory: null, cpu: { cap: 50, idsCap: null, weight: null } })]);
  const [a] = agg.ingestCpu(cpuBatch(0, 100, []), 0);
  assert.deepEqual(a?.memory, { baseBytes: null, floorBytes: null });
  assert.equal(a?.idsCapPct, null);
  assert.equal(a?.weight, null);
  assert.deepEqual(agg.latestAggregates(), [a]);
});

void test("duplicate cage names are refused", () => {
  assert.throws(() => new CageAggregator([cage("x"), cage("x")]), /duplicate cage name "x"/);
});

void test("pidsOf turns a process-table resolution into PID lists with start times", () => {
  const resolved = new Map([["web", { vm: [{ pid: 1, startTime: 10, comm: "qemu" }], ids: [{ pid: 2, startTime: 20 }, { pid: 3, startTime: 30 }] }]]);
  assert.deepEqual(pidsOf(resolved), new Map([["web", { vm: [1], ids: [2, 3], startTimes: new Map([[1, 10], [2, 20], [3, 30]]) }]]));
});

void test("aggregates pair each PID with its start time; a member without one is refused, changing nothing", () => {
  const agg = new CageAggregator([cage("a"), cage("b")]);
  agg.setMembership(membership({ a: { vm: [12, 5], ids: [40] }, b: { vm: [40, 7], ids: [] } }));
  agg.ingestCpu(cpuBatch(0, 100, [[5, 10]]), 0);
  const [a, b] = agg.latestAggregates();
  assert.deepEqual([a?.vm.pids, a?.vm.startTimes, a?.ids.pids, a?.ids.startTimes], [[5, 12], [startOf(5), startOf(12)], [40], [startOf(40)]]);
  // 40 went to cage a's IDS first; b keeps only 7, with 7's start time.
  assert.deepEqual([b?.vm.pids, b?.vm.startTimes], [[7], [startOf(7)]]);
  assert.throws(() => agg.setMembership(new Map([["a", { vm: [99], ids: [], startTimes: new Map() }]])), /^Error: cage aggregator: cage "a": PID 99 has no start time$/);
  assert.deepEqual(agg.pids("a", "vm"), [5, 12]);
});

void test("a Xen cage's VM CPU comes from raw.xen windows, by domain name or id, and goes stale", () => {
  const agg = new CageAggregator([
    cage("byname", { vm: { kind: "xen", domain: "domu1" } }),
    cage("byid", { vm: { kind: "xen", domain: 1 } }),
    cage("absent", { vm: { kind: "xen", domain: "nosuch" } }),
  ]);
  agg.setMembership(membership({ byname: { vm: [], ids: [200] } }));
  const xen = {
    v: 1 as const, windowSeconds: 1, timeMs: 10_000, cpuHz: 2.6e9, session: 1, final: false, lostRecords: 0, corrupt: 0,
    domains: [
      { domain: 0, name: "Domain-0", runNs: 900 * MS, vcpus: [] },
      { domain: 1, name: "domu1", runNs: 350 * MS, vcpus: [{ vcpu: 0, runNs: 350 * MS }] },
    ],
  };
  agg.ingestXen(xen);
  // The host-side IDS (pid 200) is still charged from the eBPF window; wall time 10 000 ms.
  const [byName, byId, absent] = agg.ingestCpu(cpuBatch(9900, 10_000, [[200, 20]]), 0);
  assert.equal(byName?.vm.cpuPct, 35);
  assert.equal(byName?.ids.cpuPct, 20);
  assert.equal(byName?.totalPct, 55);
  assert.equal(byId?.vm.cpuPct, 35);
  assert.equal(absent?.vm.cpuPct, 0);
  assert.equal(agg.cpuSeconds("byname", "vm"), 0.35);
  // Six seconds with no raw.xen: the figure is stale and no longer reported.
  const [later] = agg.ingestCpu(cpuBatch(15_900, 16_000, []), 0);
  assert.equal(later?.vm.cpuPct, 0);
});

void test("charging a batch read in place gives the aggregates ingestCpu gives for the decoded batch", () => {
  const specs = [cage("web"), cage("db"), cage("idle")];
  const member = membership({ web: { vm: [1, 2], ids: [3] }, db: { vm: [5], ids: [6] } });
  const mem = (pid: number, rss: number) => ({ pid, vmRssBytes: rss, rssAnonBytes: 0, rssFileBytes: 0, rssShmemBytes: 0, vmHwmBytes: rss });
  const eager = new CageAggregator(specs);
  const inPlace = new CageAggregator(specs);
  const batches = [
    cpuBatch(0, 100, [[1, 10], [2, 5], [3, 40], [6, 1], [99, 7]]),
    cpuBatch(100, 200, [[5, 30]]),
    cpuBatch(200, 300, []),
  ];
  for (const agg of [eager, inPlace]) {
    agg.setMembership(member);
    agg.ingestMemory({ sampledAtNs: 1n, processes: [mem(1, 1000), mem(3, 300), mem(6, 60)] });
  }
  for (const batch of batches) {
    const expected = eager.ingestCpu(batch, 7_000);
    inPlace.chargeCpuView(new CpuBatchView(encodeCpuBatch(batch)), 7_000);
    assert.deepEqual(inPlace.windowAggregates(), expected);
    assert.equal(inPlace.windowAggregates(), inPlace.windowAggregates(), "built once per window");
  }
  assert.deepEqual(inPlace.stats, eager.stats);
  assert.equal(inPlace.cpuSeconds("web", "ids"), eager.cpuSeconds("web", "ids"));
  assert.equal(inPlace.cpuSeconds("db", "vm"), 0.03);
});

void test("aggregates built after later samples arrive still describe their window", () => {
  const agg = new CageAggregator([cage("web")]);
  agg.setMembership(membership({ web: { vm: [1], ids: [2] } }));
  const mem = (pid: number, rss: number) => ({ pid, vmRssBytes: rss, rssAnonBytes: 0, rssFileBytes: 0, rssShmemBytes: 0, vmHwmBytes: rss });
  agg.ingestMemory({ sampledAtNs: 1n, processes: [mem(1, 1000), mem(2, 200)] });
  agg.chargeCpuView(new CpuBatchView(encodeCpuBatch(cpuBatch(0, 100, [[1, 50]]))), 0);
  // A new sample and membership arrive before anyone reads the window's aggregates.
  agg.ingestMemory({ sampledAtNs: 2n, processes: [mem(1, 5000)] });
  agg.setMembership(membership({ web: { vm: [1, 7], ids: [2] } }));
  const [a] = agg.latestAggregates();
  assert.equal(a?.vm.rssBytes, 1000);
  assert.deepEqual(a?.vm.pids, [1]);
  assert.equal(a?.vm.cpuPct, 50);
  assert.equal(agg.rssBytes("web", "vm"), 5000);
  // A newer window supersedes an unread one: latest is the newest.
  agg.chargeCpuView(new CpuBatchView(encodeCpuBatch(cpuBatch(100, 200, [[7, 20]]))), 0);
  agg.chargeCpuView(new CpuBatchView(encodeCpuBatch(cpuBatch(200, 300, [[1, 10]]))), 0);
  const [b] = agg.latestAggregates();
  assert.equal(b?.vm.cpuPct, 10);
  assert.equal(b?.vm.rssBytes, 5000);
  assert.equal(agg.cpuSeconds("web", "vm"), 0.08, "unread windows are still charged");
});

// A QEMU VM's CPU by kind. QEMU 300 has threads 300 (main loop), 301 (CPU 0/TCG), 302 (CPU 1/TCG),
// 303 (vhost-300, Linux >= 6.4); 900 is a kernel vhost worker vhost-300 (Linux < 6.4).
const qemuCage = (name: string): CageSpec => cage(name, { vm: { kind: "qemu", match: [{ comm: "qemu-system-x86", descendants: false }], qmpSocket: "/run/qmp.sock" } });
const QEMU_THREADS: CagePids["vmThreads"] = [
  { pid: 300, tid: 300, kind: "emulator" },
  { pid: 300, tid: 301, kind: "vcpu" },
  { pid: 300, tid: 302, kind: "vcpu" },
  { pid: 300, tid: 303, kind: "vhost" },
  { pid: 900, tid: 900, kind: "vhost" },
];

function threadBatch(startMs: number, endMs: number, threads: [pid: number, tid: number, cpuMs: number][]): CpuBatch {
  const perPid = new Map<number, number>();
  for (const [pid, , ms] of threads) perPid.set(pid, (perPid.get(pid) ?? 0) + ms);
  return {
    windowStartNs: BigInt(startMs * MS),
    windowEndNs: BigInt(endMs * MS),
    processes: [...perPid].map(([pid, ms]) => ({ pid, cpuNs: ms * MS })),
    threads: threads.map(([pid, tid, ms]) => ({ pid, tid, cpuNs: ms * MS })),
  };
}

void test("a QEMU VM's window splits into vcpu, emulator and vhost that sum to vm.cpuPct; a kernel vhost worker is charged to the VM", () => {
  for (const view of [false, true]) {
    const agg = new CageAggregator([qemuCage("q"), cage("plain")]);
    agg.setMembership(membership({ q: { vm: [300], ids: [400], vmThreads: QEMU_THREADS }, plain: { vm: [500], ids: [] } }));
    // 304 started after the resolution (a new worker): emulator. 900 is not in vm.pids but works for the VM.
    const batch = threadBatch(0, 100, [[300, 300, 4], [300, 301, 30], [300, 302, 20], [300, 303, 3], [300, 304, 1], [900, 900, 2], [400, 400, 10], [500, 500, 7]]);
    const [q, plain] = view ? agg.ingestCpuView(new CpuBatchView(encodeCpuBatch(batch)), 0) : agg.ingestCpu(batch, 0);
    assert.ok(q && plain);
    assert.equal(q.vm.cpuPct, 60);
    assert.deepEqual(q.vm.cpuPctByKind, { vcpu: 50, emulator: 5, vhost: 5 });
    assert.deepEqual(q.vm.pids, [300], "the kernel worker is charged, not listed");
    assert.equal(q.ids.cpuPct, 10);
    assert.equal(plain.vm.cpuPctByKind, undefined, "a process VM has no kinds");
    assert.deepEqual(agg.lookup(900), { cage: "q", role: "vm" });
    assert.deepEqual(agg.vmCpuSecondsByKind("q"), { vcpu: 0.05, emulator: 0.005, vhost: 0.005 });
    assert.equal(agg.vmCpuSecondsByKind("plain"), null);
  }
});

void test("QEMU kinds: cumulative seconds sum to the VM's, an idle window is all zero, a stale thread list cannot split another process", () => {
  const agg = new CageAggregator([qemuCage("q"), qemuCage("r")]);
  // r's thread list still names 301 under PID 300, which q holds: ignored for r.
  agg.setMembership(membership({ q: { vm: [300], ids: [], vmThreads: QEMU_THREADS.slice(0, 2) }, r: { vm: [600], ids: [], vmThreads: [{ pid: 300, tid: 302, kind: "vcpu" }, { pid: 600, tid: 601, kind: "vcpu" }] } }));
  const [q1, r1] = agg.ingestCpu(threadBatch(0, 100, [[300, 300, 10], [300, 301, 40], [300, 302, 20], [600, 600, 5], [600, 601, 15]]), 0);
  assert.deepEqual(q1?.vm.cpuPctByKind, { vcpu: 40, emulator: 30, vhost: 0 });
  assert.deepEqual(r1?.vm.cpuPctByKind, { vcpu: 15, emulator: 5, vhost: 0 });
  const [q2] = agg.ingestCpu(threadBatch(100, 200, [[600, 601, 1]]), 0);
  assert.equal(q2?.vm.cpuPct, 0);
  assert.deepEqual(q2?.vm.cpuPctByKind, { vcpu: 0, emulator: 0, vhost: 0 });
  agg.ingestCpu(threadBatch(200, 300, [[300, 301, 25], [300, 300, 5]]), 0);
  const byKind = agg.vmCpuSecondsByKind("q")!;
  assert.ok(Math.abs(byKind.vcpu - 0.065) < 1e-12 && Math.abs(byKind.emulator - 0.035) < 1e-12 && byKind.vhost === 0, JSON.stringify(byKind));
  assert.ok(Math.abs(byKind.vcpu + byKind.emulator + byKind.vhost - agg.cpuSeconds("q", "vm")) < 1e-12);
});

void test("QEMU kinds: thread records adding up to more than their process are scaled to the VM's total", () => {
  const agg = new CageAggregator([qemuCage("q")]);
  agg.setMembership(membership({ q: { vm: [300], ids: [], vmThreads: QEMU_THREADS } }));
  const batch: CpuBatch = {
    windowStartNs: 0n,
    windowEndNs: BigInt(100 * MS),
    processes: [{ pid: 300, cpuNs: 20 * MS }],
    threads: [
      { pid: 300, tid: 301, cpuNs: 30 * MS },
      { pid: 300, tid: 303, cpuNs: 10 * MS },
    ],
  };
  const [q] = agg.ingestCpu(batch, 0);
  assert.equal(q?.vm.cpuPct, 20);
  assert.deepEqual(q?.vm.cpuPctByKind, { vcpu: 15, emulator: 0, vhost: 5 });
});

void test("QEMU kinds: a kernel worker another cage already holds stays there; a resolution without threads makes it all emulator", () => {
  const agg = new CageAggregator([cage("first"), qemuCage("q")]);
  agg.setMembership(membership({ first: { vm: [900], ids: [] }, q: { vm: [300], ids: [], vmThreads: QEMU_THREADS } }));
  assert.deepEqual(agg.lookup(900), { cage: "first", role: "vm" });
  agg.setMembership(membership({ q: { vm: [300], ids: [] } }));
  assert.equal(agg.lookup(900), undefined);
  const [, q] = agg.ingestCpu(threadBatch(0, 100, [[300, 301, 30], [300, 300, 10]]), 0);
  assert.deepEqual(q?.vm.cpuPctByKind, { vcpu: 0, emulator: 40, vhost: 0 });
});

void test("a Xen IDS-VM's run time (raw.xen) is charged to the cage's IDS, added to its host processes, and goes stale", () => {
  const agg = new CageAggregator([
    cage("web", { vm: { kind: "xen", domain: "domu1" }, idsVms: [{ kind: "xen", domain: "ids-dom" }] }),
    cage("plain", { vm: { kind: "xen", domain: 3 } }),
  ]);
  agg.setMembership(membership({ web: { vm: [], ids: [200] } }));
  agg.ingestXen({
    v: 1 as const, windowSeconds: 1, timeMs: 10_000, cpuHz: 2.6e9, session: 1, final: false, lostRecords: 0, corrupt: 0,
    domains: [
      { domain: 1, name: "domu1", runNs: 350 * MS, vcpus: [] },
      { domain: 2, name: "ids-dom", runNs: 250 * MS, vcpus: [] },
      { domain: 3, name: "other", runNs: 100 * MS, vcpus: [] },
    ],
  });
  const [web, plain] = agg.ingestCpu(cpuBatch(9900, 10_000, [[200, 20]]), 0);
  assert.equal(web?.vm.cpuPct, 35);
  assert.equal(web?.ids.cpuPct, 45); // 25 (IDS-VM) + 20 (its host process)
  assert.equal(web?.totalPct, 80);
  assert.equal(plain?.ids.cpuPct, 0);
  assert.equal(plain?.vm.cpuPct, 10);
  assert.equal(agg.cpuSeconds("web", "ids"), 0.25 + 0.02);
  const [later] = agg.ingestCpu(cpuBatch(15_900, 16_000, []), 0);
  assert.equal(later?.ids.cpuPct, 0);
});

void test("a member that leaves is still charged in the windows that began before it left, to its former cage and role; nobody's after", () => {
  for (const inPlace of [false, true]) {
    const agg = new CageAggregator([cage("web"), cage("db")]);
    const ingest = (b: CpuBatch): ReturnType<CageAggregator["ingestCpu"]> => (inPlace ? agg.ingestCpuView(new CpuBatchView(encodeCpuBatch(b)), 0) : agg.ingestCpu(b, 0));
    agg.setMembership(membership({ web: { vm: [100], ids: [200, 201] }, db: { vm: [300], ids: [] } }), BigInt(1000 * MS));
    // 200 exited at 1150 ms; the rescan at 1180 ms dropped it, and 201 moved to db's VM.
    agg.setMembership(membership({ web: { vm: [100], ids: [] }, db: { vm: [300, 201], ids: [] } }), BigInt(1180 * MS));
    assert.deepEqual(agg.retiredPids, [200]);
    const [web, db] = ingest(cpuBatch(1100, 1200, [[100, 10], [200, 30], [201, 5]]));
    assert.equal(web?.ids.cpuPct, 30, `the window 1100-1200 ms is charged to the membership it began under (${inPlace ? "in place" : "decoded"})`);
    assert.deepEqual(web?.ids.pids, [], "a retired PID is charged, not listed as a member");
    assert.equal(db?.vm.cpuPct, 5, "a PID that moved is charged where it is now");
    assert.equal(agg.stats.unknownPidRecords, 0);
    const [later] = ingest(cpuBatch(1200, 1300, [[200, 30]]));
    assert.equal(later?.ids.cpuPct, 0, "a window that began after it left: nobody's (the PID may be another process now)");
    assert.equal(agg.stats.unknownPidRecords, 1);
    assert.deepEqual(agg.retiredPids, []);
  }
});

void test("a PID that returns is a member again, not retired; without a time, a member that leaves is charged to nobody from the next window", () => {
  const agg = new CageAggregator([cage("web")]);
  agg.setMembership(membership({ web: { vm: [], ids: [200] } }), BigInt(1000 * MS));
  agg.setMembership(membership({ web: { vm: [], ids: [] } }), BigInt(2000 * MS));
  agg.setMembership(membership({ web: { vm: [200], ids: [] } }), BigInt(2050 * MS));
  assert.deepEqual(agg.retiredPids, [], "back as a member: not retired");
  const [a] = agg.ingestCpu(cpuBatch(1900, 2000, [[200, 40]]), 0);
  assert.equal(a?.vm.cpuPct, 40);
  assert.equal(a?.ids.cpuPct, 0);
  agg.setMembership(membership({ web: { vm: [], ids: [] } }));
  assert.deepEqual(agg.retiredPids, []);
  const [b] = agg.ingestCpu(cpuBatch(1950, 2100, [[200, 40]]), 0);
  assert.equal(b?.vm.cpuPct, 0);
});

void test("PidSlotTable finds every PID's slot and -1 for any other u32, as the Map it is built from", () => {
  const slotOfPid = new Map<number, number>();
  // Consecutive PIDs (process trees), scattered ones, the u32 extremes, and enough of them to wrap probes.
  for (let i = 0; i < 5000; i++) slotOfPid.set(1000 + i, i % 2001);
  for (let i = 0; i < 2000; i++) slotOfPid.set((i * 2_654_435_761) % 4_194_304, 7);
  slotOfPid.set(0, 3);
  slotOfPid.set(0xffff_ffff, 4);
  const table = new PidSlotTable(slotOfPid);
  for (const [pid, slot] of slotOfPid) assert.equal(table.get(pid), slot, `PID ${pid}`);
  for (const pid of [1, 999, 6000, 0xffff_fffe, 4_194_305, 0x8000_0000]) {
    if (!slotOfPid.has(pid)) assert.equal(table.get(pid), -1, `PID ${pid}`);
  }
  let misses = 0;
  for (let pid = 0; pid < 100_000; pid++) if (table.get(pid) !== (slotOfPid.get(pid) ?? -1)) misses++;
  assert.equal(misses, 0);
});

void test("PidSlotTable: an empty membership finds nothing; PIDs no batch can carry are left out", () => {
  assert.equal(new PidSlotTable(new Map()).get(1000), -1);
  const table = new PidSlotTable(new Map([[-1, 1], [2 ** 32, 2], [1.5, 3], [42, 4]]));
  assert.equal(table.get(42), 4);
  assert.equal(table.get(0xffff_ffff), -1);
  assert.equal(table.get(0), -1);
  assert.equal(table.get(1), -1);
});

void test("chargeCpuView charges through the PID table what ingestCpu charges through the Map, at 1,000 cages", () => {
  const specs = Array.from({ length: 1000 }, (_, c) => cage(`c${c}`));
  const members = Object.fromEntries(specs.map((s, c) => [s.name, { vm: [10_000 + c * 7, 10_001 + c * 7], ids: [10_002 + c * 7] }]));
  const viaMap = new CageAggregator(specs);
  const viaTable = new CageAggregator(specs);
  viaMap.setMembership(membership(members));
  viaTable.setMembership(membership(members));
  // Members, non-members between them and far away, in one window.
  const records: [number, number][] = Array.from({ length: 7500 }, (_, i) => [9_000 + i * 2, (i % 13) + 1]);
  const batch = cpuBatch(0, 100, records);
  const fromMap = viaMap.ingestCpu(batch, 0);
  const fromTable = viaTable.ingestCpuView(new CpuBatchView(encodeCpuBatch(batch)), 0);
  assert.deepEqual(fromTable, fromMap);
  assert.equal(viaTable.stats.unknownPidRecords, viaMap.stats.unknownPidRecords);
  assert.ok(viaMap.stats.unknownPidRecords > 0 && viaMap.stats.unknownPidRecords < records.length);
  for (const s of specs) for (const role of ["vm", "ids"] as const) assert.equal(viaTable.cpuSeconds(s.name, role), viaMap.cpuSeconds(s.name, role));
});

void test("windowAggregatesJson: byte for byte encodeCageAggregates(windowAggregates()), through membership, memory and empty windows", () => {
  const cages = [
    cage("web"),
    cage('n\u00e9 "q"', { cpu: { cap: 33.3, idsCap: null, weight: null }, memory: null }),
    qemuCage("q"),
    cage("cr3", { idsVms: [{ kind: "xen", domain: "ids-vm" }], idsCr3: [{ domain: "ids-vm", from: "helper" }] }),
  ];
  const agg = new CageAggregator(cages);
  const same = (what: string): void => {
    const json = agg.windowAggregatesJson();
    assert.equal(json.toString("utf8"), encodeCageAggregates(agg.windowAggregates()).toString("utf8"), what);
    assert.equal(agg.windowAggregatesJson(), json, `${what}: built once per window`);
  };
  same("before any window");
  agg.ingestCpu(cpuBatch(0, 100, [[1, 10]]), 1_700_000_000_000.5);
  same("no members yet");
  agg.setMembership(membership({ web: { vm: [1, 2], ids: [3] }, 'n\u00e9 "q"': { vm: [], ids: [4] }, q: { vm: [300], ids: [], vmThreads: QEMU_THREADS }, cr3: { vm: [5], ids: [6] } }), 50n * BigInt(MS));
  agg.ingestMemory({ sampledAtNs: 1n, processes: [1, 3, 4, 300].map((pid) => ({ pid, vmRssBytes: pid * 4096, rssAnonBytes: 0, rssFileBytes: 0, rssShmemBytes: 0, vmHwmBytes: 0 })) });
  // Windows charged in place, as the pipeline does, the JSON asked for before the objects.
  for (const [start, end, records] of [
    [100, 200, [[1, 33], [2, 7.25], [3, 1], [4, 99.9], [300, 80], [5, 1e-9], [6, 12]]],
    [200, 200, [[1, 5]]],
    [200, 300, [[3, 100], [301, 40], [302, 30]]],
  ] as [number, number, [number, number][]][]) {
    const batch = cpuBatch(start, end, records);
    batch.threads = [{ pid: 300, tid: 301, cpuNs: 40 * MS }, { pid: 300, tid: 302, cpuNs: 30 * MS }];
    agg.chargeCpuView(new CpuBatchView(encodeCpuBatch(batch)), 1_700_000_000_000.5);
    same(`window ${start}-${end}`);
  }
  agg.setMembership(membership({ web: { vm: [2], ids: [3, 7] } }), 400n * BigInt(MS));
  agg.ingestCpu(cpuBatch(300, 400, [[2, 50], [7, 25]]), 0);
  same("after a membership change");
});
