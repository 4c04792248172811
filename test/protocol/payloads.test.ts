import { test } from "node:test";
import assert from "node:assert/strict";
import { protocolError } from "./protocolAssertions.js";
import type { ProtocolError } from "../../protocol/wireFormat.js";
import {
  CpuBatchView,
  decodeCpuBatch,
  decodeMemoryBatch,
  decodePageCacheBatch,
  encodeCpuBatch,
  encodeMemoryBatch,
  encodePageCacheBatch,
  type CpuBatch,
  type MemoryBatch,
  type PageCacheBatch,
} from "../../protocol/rawBatches.js";
import { PID_MAX } from "../../protocol/jsonFields.js";
import { decodeCageAggregate, decodeCageAggregates, decodeCageIdsMemoryUpdate, decodeCollectorStatus, encodeCageAggregates, encodeCageIdsMemoryUpdate, encodeJson, processesOf, type CageAggregate, type CollectorStatus } from "../../protocol/cageAggregate.js";


const cpu: CpuBatch = {
  windowStartNs: 123_456_789_000n,
  windowEndNs: 123_556_789_000n,
  processes: [
    { pid: 1, cpuNs: 0 },
    { pid: 4_194_304, cpuNs: 2 ** 53 - 1 },
    { pid: 77, cpuNs: 12_345_678 },
  ],
  threads: [
    { pid: 77, tid: 77, cpuNs: 10_000_000 },
    { pid: 77, tid: 78, cpuNs: 2_345_678 },
  ],
};

const mem: MemoryBatch = {
  sampledAtNs: 99_000_000_000n,
  processes: [
    { pid: 10, vmRssBytes: 1 << 20, rssAnonBytes: 3 << 18, rssFileBytes: 1 << 18, rssShmemBytes: 0, vmHwmBytes: 2 << 20 },
    { pid: 11, vmRssBytes: 2 ** 40, rssAnonBytes: 2 ** 39, rssFileBytes: 2 ** 38, rssShmemBytes: 2 ** 38, vmHwmBytes: 2 ** 41 },
  ],
};

void test("CpuBatch round-trips, including u64 values up to 2^53 - 1", () => {
  const b = encodeCpuBatch(cpu);
  assert.equal(b.length, 24 + 3 * 12 + 2 * 16);
  assert.deepEqual(decodeCpuBatch(b), cpu);
});

void test("CpuBatchView reads the records in place, as decodeCpuBatch does", () => {
  const v = new CpuBatchView(encodeCpuBatch(cpu));
  assert.equal(v.windowStartNs, cpu.windowStartNs);
  assert.equal(v.windowEndNs, cpu.windowEndNs);
  assert.equal(v.processCount, cpu.processes.length);
  assert.equal(v.threadCount, cpu.threads.length);
  assert.deepEqual(
    Array.from({ length: v.processCount }, (_, i) => ({ pid: v.processPid(i), cpuNs: v.processCpuNs(i) })),
    cpu.processes,
  );
  assert.deepEqual(
    Array.from({ length: v.threadCount }, (_, i) => ({ pid: v.threadPid(i), tid: v.threadTid(i), cpuNs: v.threadCpuNs(i) })),
    cpu.threads,
  );
  // A frame at an odd offset inside a larger buffer (as a socket may hand it over) reads the same.
  const shifted = Buffer.concat([Buffer.alloc(3), encodeCpuBatch(cpu)]).subarray(3);
  assert.deepEqual(decodeCpuBatch(shifted), cpu);
  assert.equal(protocolError(() => new CpuBatchView(Buffer.alloc(23))).where, "frame 2 (cpu batch)");
});

void test("CpuBatchView reads the same at every byte offset: 32-bit words when aligned, DataView otherwise", () => {
  const frame = encodeCpuBatch(cpu);
  for (let offset = 0; offset < 4; offset++) {
    // A fresh ArrayBuffer, so byteOffset % 4 is `offset` and both read paths are exercised.
    const b = Buffer.from(new ArrayBuffer(frame.length + offset), offset, frame.length);
    frame.copy(b);
    assert.equal(b.byteOffset % 4, offset);
    assert.deepEqual(decodeCpuBatch(b), cpu, `offset ${offset}`);
  }
});

void test("an empty CpuBatch is 24 bytes and round-trips", () => {
  const empty: CpuBatch = { windowStartNs: 5n, windowEndNs: 5n, processes: [], threads: [] };
  assert.equal(encodeCpuBatch(empty).length, 24);
  assert.deepEqual(decodeCpuBatch(encodeCpuBatch(empty)), empty);
});

void test("CpuBatch layout matches docs/protocol.md", () => {
  const b = encodeCpuBatch({ windowStartNs: 1n, windowEndNs: 2n, processes: [{ pid: 3, cpuNs: 4 }], threads: [{ pid: 5, tid: 6, cpuNs: 7 }] });
  assert.equal(b.readBigUInt64LE(0), 1n);
  assert.equal(b.readBigUInt64LE(8), 2n);
  assert.equal(b.readUInt32LE(16), 1);
  assert.equal(b.readUInt32LE(20), 1);
  assert.equal(b.readUInt32LE(24), 3);
  assert.equal(b.readBigUInt64LE(28), 4n);
  assert.equal(b.readUInt32LE(36), 5);
  assert.equal(b.readUInt32LE(40), 6);
  assert.equal(b.readBigUInt64LE(44), 7n);
});

void test("a CpuBatch shorter than its fixed header names frame 2", () => {
  const e = protocolError(() => decodeCpuBatch(Buffer.alloc(23)));
  assert.equal(e.where, "frame 2 (cpu batch)");
  assert.match(e.reason, /at least 24 bytes, got 23/);
});

void test("CpuBatch counts that disagree with the length name byte 16", () => {
  const b = encodeCpuBatch(cpu);
  for (const bad of [b.subarray(0, b.length - 1), Buffer.concat([b, Buffer.alloc(1)])]) {
    const e = protocolError(() => decodeCpuBatch(bad));
    assert.equal(e.where, "frame 2 (cpu batch) byte 16");
    assert.match(e.reason, /counts say 3 processes \+ 2 threads = 92 bytes/);
  }
  const lying = Buffer.from(b);
  lying.writeUInt32LE(0xffff_ffff, 16);
  assert.equal(protocolError(() => decodeCpuBatch(lying)).where, "frame 2 (cpu batch) byte 16");
});

void test("a CpuBatch window that ends before it starts names byte 8", () => {
  const e = protocolError(() => decodeCpuBatch(encodeCpuBatch({ ...cpu, windowStartNs: 10n, windowEndNs: 9n })));
  assert.equal(e.where, "frame 2 (cpu batch) byte 8");
  assert.match(e.reason, /ends \(9\) before it starts \(10\)/);
});

void test("MemoryBatch round-trips", () => {
  const b = encodeMemoryBatch(mem);
  assert.equal(b.length, 12 + 2 * 44);
  assert.deepEqual(decodeMemoryBatch(b), mem);
});

void test("MemoryBatch layout matches docs/protocol.md", () => {
  const b = encodeMemoryBatch({ sampledAtNs: 9n, processes: [{ pid: 1, vmRssBytes: 2, rssAnonBytes: 3, rssFileBytes: 4, rssShmemBytes: 5, vmHwmBytes: 6 }] });
  assert.equal(b.readBigUInt64LE(0), 9n);
  assert.equal(b.readUInt32LE(8), 1);
  assert.deepEqual([b.readUInt32LE(12), ...[16, 24, 32, 40, 48].map((o) => Number(b.readBigUInt64LE(o)))], [1, 2, 3, 4, 5, 6]);
});

void test("malformed MemoryBatches name frame 2 and the byte", () => {
  const short = protocolError(() => decodeMemoryBatch(Buffer.alloc(11)));
  assert.equal(short.where, "frame 2 (memory batch)");
  assert.match(short.reason, /at least 12 bytes, got 11/);
  const b = encodeMemoryBatch(mem);
  const e = protocolError(() => decodeMemoryBatch(b.subarray(0, b.length - 44)));
  assert.equal(e.where, "frame 2 (memory batch) byte 8");
  assert.match(e.reason, /count says 2 processes = 100 bytes, frame has 56/);
});

void test("PageCacheBatch round-trips and its layout matches docs/protocol.md", () => {
  const batch: PageCacheBatch = {
    sampledAtNs: 42n,
    untrackedInserts: 3,
    processes: [
      { pid: 7, insertedBytes: 1 << 20, residentBytes: 1 << 19 },
      { pid: 8, insertedBytes: 2 ** 45, residentBytes: 0 },
    ],
  };
  const b = encodePageCacheBatch(batch);
  assert.equal(b.length, 20 + 2 * 20);
  assert.deepEqual(decodePageCacheBatch(b), batch);
  assert.equal(b.readBigUInt64LE(0), 42n);
  assert.equal(b.readBigUInt64LE(8), 3n);
  assert.equal(b.readUInt32LE(16), 2);
  assert.equal(b.readUInt32LE(20), 7);
  assert.equal(b.readBigUInt64LE(24), 1n << 20n);
  assert.equal(b.readBigUInt64LE(32), 1n << 19n);
  assert.equal(decodePageCacheBatch(encodePageCacheBatch({ ...batch, processes: [{ pid: 1, insertedBytes: 5, residentBytes: -3 }] })).processes[0]?.residentBytes, 0, "negative resident clamps to 0");
});

void test("malformed PageCacheBatches name frame 2 and the byte", () => {
  assert.equal(protocolError(() => decodePageCacheBatch(Buffer.alloc(19))).where, "frame 2 (page cache batch)");
  const b = encodePageCacheBatch({ sampledAtNs: 1n, untrackedInserts: 0, processes: [{ pid: 1, insertedBytes: 1, residentBytes: 1 }] });
  const e = protocolError(() => decodePageCacheBatch(b.subarray(0, 39)));
  assert.equal(e.where, "frame 2 (page cache batch) byte 16");
  assert.match(e.reason, /count says 1 processes = 40 bytes, frame has 39/);
});

const aggregate: CageAggregate = {
  v: 1,
  cage: "web",
  timeMs: 1_700_000_000_000,
  windowSeconds: 0.1,
  vm: { cpuPct: 50, pids: [10, 11], startTimes: [5000, 5001], rssBytes: 1 << 30 },
  ids: { cpuPct: 20, pids: [20], startTimes: [7000], rssBytes: 1 << 26, pageCacheBytes: 3 << 20 },
  totalPct: 70,
  capPct: 150,
  idsCapPct: null,
  weight: 3,
  memory: { baseBytes: 4 * 2 ** 30, floorBytes: null },
};

void test("agg.memory round-trips; a bad element is dropped alone, a bad envelope rejects the message, each error named", () => {
  const web = { cage: "web", ids: { rssBytes: 125829120, pageCacheBytes: 4096 } };
  const db = { cage: "db", ids: { rssBytes: 0, pageCacheBytes: 0 } };
  assert.deepEqual(decodeCageIdsMemoryUpdate(encodeCageIdsMemoryUpdate({ v: 1, timeMs: 17.5, cages: [web, db] })), { timeMs: 17.5, cages: [web, db], rejected: [] });
  const decoded = decodeCageIdsMemoryUpdate(encodeJson({ v: 1, timeMs: 1, cages: [web, { cage: "mail", ids: { rssBytes: -1, pageCacheBytes: 0 } }, "db", { cage: "x", ids: { rssBytes: 1 } }, { ...web }, db] }));
  assert.deepEqual(decoded.cages, [web, db]);
  assert.deepEqual(
    decoded.rejected.map((e) => e.where),
    ["frame 2 (cage IDS memory[1]) field ids.rssBytes", "frame 2 (cage IDS memory[2])", "frame 2 (cage IDS memory[3]) field ids.pageCacheBytes", "frame 2 (cage IDS memory[4]) field cage"],
  );
  assert.equal(protocolError(() => decodeCageIdsMemoryUpdate(encodeJson({ v: 2, timeMs: 1, cages: [] }))).where, "frame 2 (cage IDS memory) field v");
  assert.equal(protocolError(() => decodeCageIdsMemoryUpdate(encodeJson({ v: 1, cages: [] }))).where, "frame 2 (cage IDS memory) field timeMs");
  assert.equal(protocolError(() => decodeCageIdsMemoryUpdate(encodeJson({ v: 1, timeMs: 1, cages: { web } }))).where, "frame 2 (cage IDS memory) field cages");
  assert.equal(protocolError(() => decodeCageIdsMemoryUpdate(Buffer.from("[]"))).where, "frame 2 (cage IDS memory)");
});

void test("a CageAggregate round-trips through JSON", () => {
  assert.deepEqual(decodeCageAggregate(encodeJson(aggregate)), aggregate);
});

void test("every cage's aggregates round-trip in one agg.window message; each is checked on its own", () => {
  const db: CageAggregate = { ...aggregate, cage: "db", totalPct: 10, vm: { ...aggregate.vm, cpuPct: 5 }, ids: { ...aggregate.ids, cpuPct: 5 } };
  assert.deepEqual(decodeCageAggregates(encodeCageAggregates([aggregate, db])), { aggregates: [aggregate, db], rejected: [] });
  assert.deepEqual(decodeCageAggregates(encodeCageAggregates([])), { aggregates: [], rejected: [] });
  const broken = { ...aggregate, cage: "mail", ids: { ...aggregate.ids, pids: [0] } };
  const decoded = decodeCageAggregates(encodeJson({ v: 1, aggregates: [aggregate, broken, 7, db, { ...db, totalPct: 1 }] }));
  assert.deepEqual(decoded.aggregates, [aggregate, db]);
  assert.deepEqual(
    decoded.rejected.map((e) => e.where),
    ["frame 2 (cage aggregates[1]) field ids.pids[0]", "frame 2 (cage aggregates[2])", "frame 2 (cage aggregates[4]) field cage"],
  );
  assert.match(decoded.rejected[2]!.reason, /cage "db" appears twice in one message/);
  // The envelope is all or nothing.
  assert.equal(protocolError(() => decodeCageAggregates(encodeJson({ v: 2, aggregates: [] }))).where, "frame 2 (cage aggregates) field v");
  assert.equal(protocolError(() => decodeCageAggregates(encodeJson({ v: 1, aggregates: { web: aggregate } }))).where, "frame 2 (cage aggregates) field aggregates");
  assert.equal(protocolError(() => decodeCageAggregates(encodeJson([aggregate]))).where, "frame 2 (cage aggregates)");
  assert.equal(protocolError(() => decodeCageAggregates(Buffer.from("{"))).where, "frame 2 (cage aggregates)");
});

void test("an aggregate without ids.pageCacheBytes (an older publisher) reads as 0; a non-number is rejected", () => {
  const old = JSON.parse(JSON.stringify(aggregate)) as { ids: Record<string, unknown> };
  delete old.ids.pageCacheBytes;
  assert.equal(decodeCageAggregate(encodeJson(old)).ids.pageCacheBytes, 0);
  old.ids.pageCacheBytes = "12";
  const e = protocolError(() => decodeCageAggregate(encodeJson(old)));
  assert.equal(e.where, "frame 2 (cage aggregate) field ids.pageCacheBytes");
});

void test("vm.cpuPctByKind: absent stays absent, present round-trips with every kind, extra keys are dropped", () => {
  assert.equal(decodeCageAggregate(encodeJson(aggregate)).vm.cpuPctByKind, undefined);
  const qemu: CageAggregate = { ...aggregate, vm: { ...aggregate.vm, cpuPctByKind: { vcpu: 40, emulator: 7.5, vhost: 2.5 } } };
  assert.deepEqual(decodeCageAggregate(encodeJson(qemu)), qemu);
  const withFutureKind = { ...qemu, vm: { ...qemu.vm, cpuPctByKind: { ...qemu.vm.cpuPctByKind, softirq: 1 } } };
  assert.deepEqual(decodeCageAggregate(encodeJson(withFutureKind)), qemu);
});

void test("vm.cpuPctByKind: a missing, negative or non-number kind, a non-object, or a sum above vm.cpuPct is rejected by name", () => {
  const withKinds = (cpuPctByKind: unknown, cpuPct = 50): ProtocolError => protocolError(() => decodeCageAggregate(encodeJson({ ...aggregate, vm: { ...aggregate.vm, cpuPct, cpuPctByKind } })));
  assert.equal(withKinds({ vcpu: 40, emulator: 10 }).where, "frame 2 (cage aggregate) field vm.cpuPctByKind.vhost");
  assert.equal(withKinds({ vcpu: -1, emulator: 10, vhost: 0 }).where, "frame 2 (cage aggregate) field vm.cpuPctByKind.vcpu");
  assert.equal(withKinds({ vcpu: 1, emulator: "10", vhost: 0 }).where, "frame 2 (cage aggregate) field vm.cpuPctByKind.emulator");
  assert.equal(withKinds([40, 10, 0]).where, "frame 2 (cage aggregate) field vm.cpuPctByKind");
  assert.equal(withKinds(null).where, "frame 2 (cage aggregate) field vm.cpuPctByKind");
  const over = withKinds({ vcpu: 40, emulator: 10, vhost: 0.001 });
  assert.equal(over.where, "frame 2 (cage aggregate) field vm.cpuPctByKind");
  assert.match(over.reason, /sum to 50\.001, more than vm\.cpuPct 50/);
  // Rounding in the sum is not a reason to drop an aggregate.
  assert.doesNotThrow(() => decodeCageAggregate(encodeJson({ ...aggregate, vm: { ...aggregate.vm, cpuPct: 0.3, cpuPctByKind: { vcpu: 0.1, emulator: 0.2, vhost: 0 } } })));
});

void test("a CollectorStatus round-trips through JSON", () => {
  const status: CollectorStatus = { v: 1, collector: "cpu", state: "restarting", message: "bpftrace exited 1", counters: { restarts: 2, lost: 0 }, timeMs: 1 };
  assert.deepEqual(decodeCollectorStatus(encodeJson(status)), status);
});

void test("non-JSON and non-object payloads name frame 2", () => {
  for (const [payload, reason] of [
    [Buffer.from("{not json"), /not JSON/],
    [Buffer.from([0xff, 0x00, 0x01]), /not JSON/],
    [Buffer.from("[1,2]"), /must be a JSON object/],
    [Buffer.from("null"), /must be a JSON object/],
    [Buffer.from("42"), /must be a JSON object/],
  ] as const) {
    const a = protocolError(() => decodeCageAggregate(payload));
    assert.equal(a.where, "frame 2 (cage aggregate)");
    assert.match(a.reason, reason);
    const s = protocolError(() => decodeCollectorStatus(payload));
    assert.equal(s.where, "frame 2 (collector status)");
  }
});

void test("aggregate fields are checked and the bad field is named", () => {
  const bad = (patch: Record<string, unknown>): ProtocolError => protocolError(() => decodeCageAggregate(encodeJson({ ...aggregate, ...patch })));
  assert.equal(bad({ v: 2 }).where, "frame 2 (cage aggregate) field v");
  assert.equal(bad({ cage: "" }).where, "frame 2 (cage aggregate) field cage");
  assert.equal(bad({ cage: 7 }).where, "frame 2 (cage aggregate) field cage");
  assert.equal(bad({ timeMs: "now" }).where, "frame 2 (cage aggregate) field timeMs");
  assert.equal(bad({ totalPct: null }).where, "frame 2 (cage aggregate) field totalPct");
  assert.equal(bad({ vm: { cpuPct: 1, pids: [], startTimes: [] } }).where, "frame 2 (cage aggregate) field vm.rssBytes");
  assert.equal(bad({ ids: undefined }).where, "frame 2 (cage aggregate) field ids");
});

void test("malformed-but-decodable PIDs are rejected at decode, naming the field and element", () => {
  const withVmPids = (pids: unknown): ProtocolError => protocolError(() => decodeCageAggregate(encodeJson({ ...aggregate, vm: { ...aggregate.vm, pids } })));
  const withIdsPids = (pids: unknown): ProtocolError => protocolError(() => decodeCageAggregate(encodeJson({ ...aggregate, ids: { ...aggregate.ids, pids } })));
  assert.equal(withVmPids(null).where, "frame 2 (cage aggregate) field vm.pids");
  assert.equal(withVmPids("1").where, "frame 2 (cage aggregate) field vm.pids");
  assert.equal(withVmPids(undefined).where, "frame 2 (cage aggregate) field vm.pids");
  assert.equal(withVmPids(1e308).where, "frame 2 (cage aggregate) field vm.pids");
  assert.equal(withIdsPids(-1e308).where, "frame 2 (cage aggregate) field ids.pids");
  assert.equal(withIdsPids(["1"]).where, "frame 2 (cage aggregate) field ids.pids[0]");
  assert.equal(withIdsPids([5, 1e308]).where, "frame 2 (cage aggregate) field ids.pids[1]");
  assert.equal(withIdsPids([5, -1e308]).where, "frame 2 (cage aggregate) field ids.pids[1]");
  assert.equal(withIdsPids([0]).where, "frame 2 (cage aggregate) field ids.pids[0]");
  assert.equal(withIdsPids([1.5]).where, "frame 2 (cage aggregate) field ids.pids[0]");
  assert.equal(withIdsPids([null]).where, "frame 2 (cage aggregate) field ids.pids[0]");
  assert.equal(withIdsPids([PID_MAX + 1]).where, "frame 2 (cage aggregate) field ids.pids[0]");
  assert.match(withIdsPids([PID_MAX + 1]).reason, /integer PID in \[1, 4194304\], got 4194305/);
  assert.deepEqual(decodeCageAggregate(encodeJson({ ...aggregate, ids: { ...aggregate.ids, pids: [1, PID_MAX], startTimes: [0, 9] } })).ids.pids, [1, PID_MAX]);
});

void test("start times: one non-negative integer per PID, required, and no PID twice", () => {
  const withVm = (vm: Record<string, unknown>): ProtocolError => protocolError(() => decodeCageAggregate(encodeJson({ ...aggregate, vm: { ...aggregate.vm, ...vm } })));
  const withIds = (ids: Record<string, unknown>): ProtocolError => protocolError(() => decodeCageAggregate(encodeJson({ ...aggregate, ids: { ...aggregate.ids, ...ids } })));
  // An aggregate from a publisher that sends no start times cannot be acted on: rejected.
  const old = JSON.parse(JSON.stringify(aggregate)) as { vm: Record<string, unknown> };
  delete old.vm.startTimes;
  const missing = protocolError(() => decodeCageAggregate(encodeJson(old)));
  assert.equal(missing.where, "frame 2 (cage aggregate) field vm.startTimes");
  assert.match(missing.reason, /must be an array of start times \(one per PID\), got undefined/);
  const short = withVm({ startTimes: [5000] });
  assert.equal(short.where, "frame 2 (cage aggregate) field vm.startTimes");
  assert.match(short.reason, /one start time per PID: 1 start times for 2 PIDs/);
  assert.equal(withIds({ startTimes: [7000, 7001] }).where, "frame 2 (cage aggregate) field ids.startTimes");
  for (const t of [-1, 1.5, "7000", null, 1e308, Number.MAX_SAFE_INTEGER + 2]) {
    const e = withIds({ startTimes: [t] });
    assert.equal(e.where, "frame 2 (cage aggregate) field ids.startTimes[0]", String(t));
    assert.match(e.reason, /must be a non-negative integer \(clock ticks since boot\)/);
  }
  const twice = withIds({ pids: [20, 20], startTimes: [7000, 7001] });
  assert.equal(twice.where, "frame 2 (cage aggregate) field ids.startTimes");
  assert.match(twice.reason, /PID 20 is listed twice/);
  // Publishers send PIDs ascending; any other order is checked the long way, and a repeat still caught.
  const unsortedTwice = withIds({ pids: [21, 20, 21], startTimes: [7000, 7001, 7002] });
  assert.equal(unsortedTwice.where, "frame 2 (cage aggregate) field ids.startTimes");
  assert.match(unsortedTwice.reason, /PID 21 is listed twice/);
  const unsorted = decodeCageAggregate(encodeJson({ ...aggregate, ids: { ...aggregate.ids, pids: [21, 20], startTimes: [7001, 7000] } }));
  assert.deepEqual(processesOf(unsorted.ids), [{ pid: 21, startTime: 7001 }, { pid: 20, startTime: 7000 }]);
  const decoded = decodeCageAggregate(encodeJson({ ...aggregate, ids: { ...aggregate.ids, pids: [20, 21], startTimes: [0, Number.MAX_SAFE_INTEGER] } }));
  assert.deepEqual(processesOf(decoded.ids), [{ pid: 20, startTime: 0 }, { pid: 21, startTime: Number.MAX_SAFE_INTEGER }]);
  assert.deepEqual(processesOf(decodeCageAggregate(encodeJson(aggregate)).vm), [{ pid: 10, startTime: 5000 }, { pid: 11, startTime: 5001 }]);
});

void test("aggregate ranges: negative figures, a zero window or cap, and non-null optional fields of the wrong type are rejected", () => {
  const bad = (patch: Record<string, unknown>): ProtocolError => protocolError(() => decodeCageAggregate(encodeJson({ ...aggregate, ...patch })));
  assert.equal(bad({ windowSeconds: 0 }).where, "frame 2 (cage aggregate) field windowSeconds");
  assert.equal(bad({ capPct: 0 }).where, "frame 2 (cage aggregate) field capPct");
  assert.equal(bad({ totalPct: -1 }).where, "frame 2 (cage aggregate) field totalPct");
  assert.equal(bad({ timeMs: -5 }).where, "frame 2 (cage aggregate) field timeMs");
  assert.equal(bad({ vm: { ...aggregate.vm, cpuPct: -0.5 } }).where, "frame 2 (cage aggregate) field vm.cpuPct");
  assert.equal(bad({ idsCapPct: "40" }).where, "frame 2 (cage aggregate) field idsCapPct");
  assert.equal(bad({ idsCapPct: undefined }).where, "frame 2 (cage aggregate) field idsCapPct");
  assert.equal(bad({ weight: 0 }).where, "frame 2 (cage aggregate) field weight");
  assert.equal(bad({ memory: null }).where, "frame 2 (cage aggregate) field memory");
  assert.equal(bad({ memory: { baseBytes: -1, floorBytes: null } }).where, "frame 2 (cage aggregate) field memory.baseBytes");
  assert.equal(bad({ ids: { ...aggregate.ids, pageCacheBytes: -1 } }).where, "frame 2 (cage aggregate) field ids.pageCacheBytes");
});

void test("a decoded aggregate holds only the documented fields", () => {
  const decoded = decodeCageAggregate(encodeJson({ ...aggregate, extra: { huge: "x".repeat(100) } }));
  assert.equal((decoded as unknown as Record<string, unknown>).extra, undefined);
  assert.deepEqual(decoded, aggregate);
});

void test("status fields are checked and the bad field is named", () => {
  const ok = { v: 1, collector: "cpu", state: "running", counters: {}, timeMs: 1 };
  const bad = (patch: Record<string, unknown>): ProtocolError => protocolError(() => decodeCollectorStatus(encodeJson({ ...ok, ...patch })));
  assert.equal(bad({ v: 0 }).where, "frame 2 (collector status) field v");
  assert.equal(bad({ collector: 1 }).where, "frame 2 (collector status) field collector");
  assert.equal(bad({ state: null }).where, "frame 2 (collector status) field state");
});
