import { test } from "node:test";
import assert from "node:assert/strict";
import { DomainRunTimeAccounting, cr3ByDomain, diffSnapshots, summarizeRunTime } from "../../../collectors/xentrace/domainRunTime.js";
import { XentraceParser, type TraceRecord } from "../../../collectors/xentrace/traceRecords.js";
import { accountChunks, dv, encodeWindow, fixtureNames, readFixture, runstate, type SynthRecord } from "./fixtures.js";

const S = 1_000_000_000n; // 1 GHz: one second = 1e9 cycles
const BASE = 5n * S;

function rs(oldState: number, newState: number, dom: number, vcpu: number, seconds: number): SynthRecord {
  return { event: runstate(oldState, newState), tsc: BASE + BigInt(Math.round(seconds * 1e9)), extra: [dv(dom, vcpu)] };
}

function cycles(snapshot: ReturnType<DomainRunTimeAccounting["snapshot"]>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of snapshot.domains) for (const v of d.vcpus) out[`d${d.domain}v${v.vcpu}`] = v.runCycles;
  return out;
}

void test("two pCPUs: d1v0 runs 2 s, d1v1 1 s, d2v0 1 s (the platform-facts hand-built case)", () => {
  const trace = Buffer.concat([
    encodeWindow(0, [rs(1, 0, 1, 0, 1), rs(0, 2, 1, 0, 3)]),
    encodeWindow(1, [rs(1, 0, 1, 1, 1), rs(0, 1, 1, 1, 2), rs(1, 0, 2, 0, 2), rs(0, 2, 2, 0, 3)]),
  ]);
  const { snapshot } = accountChunks([trace]);
  assert.deepEqual(cycles(snapshot), { d1v0: 2e9, d1v1: 1e9, d2v0: 1e9 });
  const summary = summarizeRunTime(snapshot, 1e9);
  assert.deepEqual(summary.domains.map((d) => [d.domain, d.runSeconds]), [[1, 3], [2, 1]]);
  assert.equal(summary.source, "runstate");
  assert.equal(snapshot.anomalies, 0);
});

void test("start of day follows xenalyze's vcpu_start: continue-running counts from the CPU's first TSC", () => {
  const trace = Buffer.concat([
    encodeWindow(0, [
      { event: 0x00028004, tsc: BASE, extra: [0, 0] },
      { event: 0x00021002, tsc: BASE + 15n * S / 10n, extra: [dv(0, 0)] }, // continue running
      rs(0, 1, 0, 0, 2.5),
    ]),
    encodeWindow(1, [
      { event: 0x00028004, tsc: BASE, extra: [0, 0] },
      rs(0, 1, 0, 1, 1), // descheduled before it was seen running: stays INIT, time not counted
      rs(1, 0, 0, 1, 2),
      rs(0, 2, 0, 1, 2.5),
    ]),
  ]);
  const { snapshot } = accountChunks([trace]);
  assert.deepEqual(cycles(snapshot), { d0v0: 2.5e9, d0v1: 0.5e9 });
  assert.equal(snapshot.anomalies, 0);
});

void test("lost records: the vCPU is lost from first_tsc until the record, then running again", () => {
  const lost: SynthRecord = { event: 0x0001f001, tsc: BASE + 25n * S / 10n, extra: [9, 0x00000001, Number((BASE + 2n * S) & 0xffffffffn), Number((BASE + 2n * S) >> 32n)] };
  const trace = Buffer.concat([
    encodeWindow(0, [rs(1, 0, 1, 0, 1), lost, rs(0, 2, 1, 0, 3)]),
    encodeWindow(1, [rs(1, 0, 2, 0, 1), rs(0, 2, 2, 0, 3.5)]),
  ]);
  const { snapshot, stats } = accountChunks([trace]);
  assert.equal(stats.lostRecords, 9);
  assert.equal(cycles(snapshot).d1v0, 1.5e9);
  assert.equal(cycles(snapshot).d2v0, 2.5e9);
});

void test("CR3 writes (no TSC, timed by the preceding VMEXIT) split a vCPU's on-CPU time per address space", () => {
  const at = (s: number): bigint => BASE + BigInt(Math.round(s * 1e9));
  const trace = Buffer.concat([
    encodeWindow(0, [
      rs(1, 0, 3, 0, 1),
      { event: 0x00081102, tsc: at(1.5), extra: [28, 0, 0] },
      { event: 0x00082109, extra: [3, 0x1234000, 0x1] },
      { event: 0x00081102, tsc: at(2.5), extra: [28, 0, 0] },
      { event: 0x00082009, extra: [3, 0x5678000] },
      { event: 0x00081102, tsc: at(2.6), extra: [28, 0, 0] },
      { event: 0x00082009, extra: [0, 0x80000011] }, // CR0: ignored
      rs(0, 2, 3, 0, 3),
    ]),
    encodeWindow(1, [rs(1, 0, 0, 0, 1)]),
  ]);
  const { snapshot } = accountChunks([trace]);
  assert.equal(snapshot.cr3Writes, 2);
  assert.deepEqual(snapshot.cr3, [
    { domain: 3, vcpu: 0, cr3: "0x101234000", runCycles: 1e9 },
    { domain: 3, vcpu: 0, cr3: "0x5678000", runCycles: 0.5e9 },
  ]);
  assert.equal(cycles(snapshot).d3v0, 2e9);
});

void test("lost records: a lost vCPU's address space is unknown until its next CR3 write", () => {
  const at = (s: number): bigint => BASE + BigInt(Math.round(s * 1e9));
  // Records lost from 2.0 s to 2.5 s on the pCPU running d3v0; whatever CR3 writes fell in there are gone.
  const lost: SynthRecord = { event: 0x0001f001, tsc: at(2.5), extra: [40, 0x00000003, Number(at(2) & 0xffffffffn), Number(at(2) >> 32n)] };
  const trace = Buffer.concat([
    encodeWindow(0, [
      rs(1, 0, 3, 0, 1),
      { event: 0x00081102, tsc: at(1.5), extra: [28, 0, 0] },
      { event: 0x00082009, extra: [3, 0xa000] },
      lost,
      { event: 0x00081102, tsc: at(2.8), extra: [28, 0, 0] },
      { event: 0x00082009, extra: [3, 0xb000] },
      rs(0, 1, 3, 0, 3.2),
    ]),
    encodeWindow(1, [rs(1, 0, 0, 0, 1), rs(0, 2, 0, 0, 3.5)]),
  ]);
  const { snapshot } = accountChunks([trace]);
  assert.equal(cycles(snapshot).d3v0, 1.7e9, "1 s before the loss, 0.7 s after");
  // 0xa000 until the loss (0.5 s), 0xb000 from its write (0.4 s); the 0.3 s between is in neither.
  assert.deepEqual(snapshot.cr3, [
    { domain: 3, vcpu: 0, cr3: "0xa000", runCycles: 0.5e9 },
    { domain: 3, vcpu: 0, cr3: "0xb000", runCycles: 0.4e9 },
  ]);
});

void test("without runstate records, scheduler-switch records drive the accounting", () => {
  const sw = (s: number, pd: number, pv: number, nd: number, nv: number): SynthRecord => ({
    event: 0x0002800a,
    tsc: BASE + BigInt(Math.round(s * 1e9)),
    extra: [pd, pv, nd, nv],
  });
  const trace = Buffer.concat([
    encodeWindow(0, [sw(1, 32767, 0, 1, 0), sw(3, 1, 0, 32767, 0)]),
    encodeWindow(1, [sw(0.5, 32767, 1, 2, 0), sw(1, 2, 0, 1, 1), sw(2, 1, 1, 32767, 1)]),
  ]);
  const { snapshot } = accountChunks([trace]);
  assert.equal(snapshot.source, "switch");
  // CPU 1's stream ends with its switch to idle at 2 s: like a running vCPU, its idle unit stops at
  // the CPU's last TSC, so it has no time (CPU 0 running on to 3 s does not extend CPU 1).
  assert.deepEqual(cycles(snapshot), { d1v0: 2e9, d1v1: 1e9, d2v0: 0.5e9 });
});

void test("snapshots count running vCPUs up to the given TSC, and windows are differences of snapshots", () => {
  const acc = new DomainRunTimeAccounting();
  const rec = (cpu: number, event: number, tsc: number, extra: number[]): TraceRecord => ({ cpu, event, hasTsc: true, tsc, orderTsc: tsc, extra, offset: 0 });
  acc.record(rec(0, runstate(1, 0), 100, [dv(1, 0)]));
  const first = acc.snapshot(600);
  assert.deepEqual(cycles(first), { d1v0: 500 });
  acc.record(rec(0, runstate(0, 2), 1100, [dv(1, 0)]));
  const second = acc.snapshot(2000);
  assert.deepEqual(cycles(second), { d1v0: 1000 });
  assert.deepEqual(diffSnapshots(first, second), [{ domain: 1, runCycles: 500, vcpus: [{ vcpu: 0, runCycles: 500 }] }]);
  // Snapshots do not change state.
  assert.deepEqual(cycles(acc.snapshot(2000)), { d1v0: 1000 });
});

void test("summarizeRunTime rejects a bad rate", () => {
  assert.throws(() => summarizeRunTime(new DomainRunTimeAccounting().snapshot(0), 0), /cpuHz must be a positive number, got 0/);
});

void test("record(TraceRecord) and recordView(view) account identically", () => {
  const viaRecord = (data: Buffer): ReturnType<DomainRunTimeAccounting["snapshot"]> => {
    const acc = new DomainRunTimeAccounting();
    const parser = new XentraceParser({ onRecord: (r) => acc.record(r), onCpuEnd: (cpu, tsc) => acc.endCpu(cpu, tsc) });
    parser.write(data);
    parser.end();
    return acc.snapshot();
  };
  const at = (s: number): bigint => BASE + BigInt(Math.round(s * 1e9));
  const sw = (s: number, pd: number, pv: number, nd: number, nv: number): SynthRecord => ({ event: 0x0002800a, tsc: at(s), extra: [pd, pv, nd, nv] });
  const synthetic: [string, Buffer][] = [
    [
      "CR3 writes on two vCPUs sharing an address space",
      Buffer.concat([
        encodeWindow(0, [
          rs(1, 0, 3, 0, 1),
          { event: 0x00081102, tsc: at(1.5), extra: [28, 0, 0] },
          { event: 0x00082109, extra: [3, 0x1234000, 0x80000000] },
          rs(0, 2, 3, 0, 3),
        ]),
        encodeWindow(1, [
          rs(1, 0, 3, 1, 1),
          { event: 0x00081102, tsc: at(2), extra: [28, 0, 0] },
          { event: 0x00082109, extra: [3, 0x1234000, 0x80000000] },
          rs(0, 2, 3, 1, 2.5),
        ]),
      ]),
    ],
    ["switch records", Buffer.concat([encodeWindow(0, [sw(1, 32767, 0, 1, 0), sw(3, 1, 0, 32767, 0)]), encodeWindow(1, [sw(0.5, 32767, 1, 2, 0), sw(2, 2, 0, 32767, 1)])])],
  ];
  const cases: [string, Buffer][] = [...fixtureNames().map((n): [string, Buffer] => [n, readFixture(n)]), ...synthetic];
  for (const [name, data] of cases) assert.deepEqual(accountChunks([data]).snapshot, viaRecord(data), name);
  const cr3 = accountChunks([synthetic[0]?.[1] as Buffer]).snapshot.cr3;
  assert.deepEqual(cr3, [
    { domain: 3, vcpu: 0, cr3: "0x8000000001234000", runCycles: 1.5e9 },
    { domain: 3, vcpu: 1, cr3: "0x8000000001234000", runCycles: 0.5e9 },
  ]);
  assert.deepEqual(cr3ByDomain(cr3), [{ domain: 3, cr3: "0x8000000001234000", runCycles: 2e9 }]);
});

void test("a full CR3 table counts the time it could not charge, and charges none of it", () => {
  const acc = new DomainRunTimeAccounting({ maxCr3Values: 1 });
  const rec = (event: number, tsc: number, extra: number[], hasTsc = true): TraceRecord => ({ cpu: 0, event, hasTsc, tsc, orderTsc: tsc, extra, offset: 0 });
  acc.record(rec(runstate(1, 0), 100, [dv(3, 0)]));
  acc.record(rec(0x00082009, 200, [3, 0x1000], false));
  acc.record(rec(0x00082009, 500, [3, 0x2000], false));
  acc.record(rec(0x00082009, 600, [3, 0x1000], false));
  const snapshot = acc.snapshot(1000);
  assert.deepEqual(snapshot.cr3, [{ domain: 3, vcpu: 0, cr3: "0x1000", runCycles: 300 + 400 }]);
  assert.equal(snapshot.cr3OverflowCycles, 100);
  assert.equal(snapshot.overflowed, 1);
  // Run time = CR3 time + time before the first CR3 write + what the table could not take.
  assert.equal(cycles(snapshot).d3v0, 700 + 100 + 100);
});
