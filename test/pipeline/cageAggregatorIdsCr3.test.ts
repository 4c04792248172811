// CR3-charged IDS-VMs (`ids[]: { vm: { kind: xen }, cr3From: helper }`) in the aggregator, driven by
// a real trace from the Xen lab (test/fixtures/xentrace/cr3-pvh-monitor: a PVH domU, domain 1, under
// Xen's CR3-write monitor) cut into raw.xen windows the way the live collector cuts them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import type { CageSpec } from "../../config/cageConfig.js";
import { cr3ByDomain, DomainRunTimeAccounting } from "../../collectors/xentrace/domainRunTime.js";
import { toXenDomainCpu, WindowDiffer } from "../../collectors/xentrace/liveWindow.js";
import { XentraceParser } from "../../collectors/xentrace/traceRecords.js";
import { cpuHzFromXlInfo } from "../../collectors/xentrace/summarizeCommand.js";
import { helperSnapshotFromLs, IDS_HELPER_DIR } from "../../host/xen/idsHelperEntries.js";
import { CageAggregator, HELPER_CR3_UNSEEN_WINDOWS } from "../../pipeline/cageAggregator.js";
import type { XenDomainCpu } from "../../protocol/xenDomainCpu.js";

const fixture = (ext: string): URL => new URL(`../../../test/fixtures/xentrace/cr3-pvh-monitor.${ext}`, import.meta.url);
const CPU_HZ = cpuHzFromXlInfo(readFileSync(fixture("xl-info.txt"), "utf8"));
const GUEST = 1;
const WINDOW_S = 0.5;

/** The fixture cut into WINDOW_S raw.xen windows, and the whole trace's run time per CR3 of the guest (ns). */
function fixtureWindows(): { windows: XenDomainCpu[]; cr3TotalNs: Map<string, number>; guestTotalNs: number } {
  const accounting = new DomainRunTimeAccounting();
  const differ = new WindowDiffer();
  const windows: XenDomainCpu[] = [];
  const step = WINDOW_S * CPU_HZ;
  let next = step;
  const cut = (atTsc: number | undefined, final: boolean): void => {
    const w = differ.next(accounting.snapshot(atTsc), 0);
    windows.push(toXenDomainCpu(w, { cpuHz: CPU_HZ, timeMs: 1_000 + windows.length * WINDOW_S * 1000, session: 1, final, lostRecords: 0, corrupt: 0, names: new Map([[GUEST, "ids-vm"]]), maxCr3Entries: 256 }));
  };
  const parser = new XentraceParser({
    onRecordView: (r) => {
      while (r.hasTsc && r.tsc >= next) {
        cut(next, false);
        next += step;
      }
      accounting.recordView(r);
    },
    onCpuEnd: (cpu, tsc) => accounting.endCpu(cpu, tsc),
  });
  parser.write(gunzipSync(readFileSync(fixture("bin.gz"))));
  parser.end();
  cut(undefined, true);
  const final = accounting.snapshot();
  const cr3TotalNs = new Map(cr3ByDomain(final.cr3).filter((c) => c.domain === GUEST).map((c) => [c.cr3, (c.runCycles * 1e9) / CPU_HZ]));
  const guestTotalNs = ((final.domains.find((d) => d.domain === GUEST)?.vcpus ?? []).reduce((s, v) => s + v.runCycles, 0) * 1e9) / CPU_HZ;
  return { windows, cr3TotalNs, guestTotalNs };
}

function cage(name: string, extra: Partial<CageSpec>): CageSpec {
  return { name, vm: { kind: "xen", domain: "web" }, ids: [], cpu: { cap: 50, idsCap: 25, weight: null }, memory: null, ...extra };
}

const helperLs = (domain: number, name: string, entries: Record<string, string>): string =>
  [`/local/domain/${domain}/name = "${name}"`, ...Object.entries(entries).map(([k, v]) => `/local/domain/${domain}/${IDS_HELPER_DIR}/${k} = "${v}"`)].join("\n");

void test("a cr3From: helper IDS-VM charges the cage only its reported CR3s' run time (real trace); the rest is the IDS-VM's own", () => {
  const { windows, cr3TotalNs, guestTotalNs } = fixtureWindows();
  assert.ok(windows.length >= 12, `${windows.length} windows`);
  const [ids, other] = [...cr3TotalNs.entries()].sort((a, b) => b[1] - a[1]);
  assert.ok(ids !== undefined && other !== undefined);
  const agg = new CageAggregator([cage("web", { idsVms: [{ kind: "xen", domain: "ids-vm" }], idsCr3: [{ domain: "ids-vm", from: "helper" }] }), cage("whole", { idsVms: [{ kind: "xen", domain: GUEST }] })]);
  // The IDS process reports its CR3 with PCID bits set: the same page table, the same address space.
  const pcid = `0x${(BigInt(ids[0]) | 0x3n).toString(16)}`;
  const rejected = agg.setIdsHelpers(helperSnapshotFromLs(helperLs(GUEST, "ids-vm", { 412: `${pcid} 1234` })));
  assert.deepEqual(rejected, []);
  let idsPctSum = 0;
  let ownPctSum = 0;
  for (const [i, w] of windows.entries()) {
    agg.ingestXen(w);
    const [web, whole] = agg.ingestCpu({ windowStartNs: BigInt(i * 500e6), windowEndNs: BigInt((i + 1) * 500e6), processes: [], threads: [] }, w.timeMs - (i + 1) * 500);
    assert.ok(web !== undefined && whole !== undefined && web.ids.idsVmOwnCpuPct !== undefined);
    assert.equal(whole.ids.idsVmOwnCpuPct, undefined, "a whole IDS-VM has no own share");
    // Per window: the IDS's share and the IDS-VM's own add up to the whole domain.
    assert.ok(Math.abs(web.ids.cpuPct + web.ids.idsVmOwnCpuPct - whole.ids.cpuPct) < 1e-9, `window ${i}`);
    assert.equal(web.totalPct, web.vm.cpuPct + web.ids.cpuPct, "the IDS-VM's own time is not the cage's");
    idsPctSum += web.ids.cpuPct * w.windowSeconds * 1e7;
    ownPctSum += web.ids.idsVmOwnCpuPct * w.windowSeconds * 1e7;
  }
  // Against the whole trace's accounting: the windows lose at most a rounded ns each.
  const tolNs = windows.length * 2;
  assert.ok(Math.abs(agg.cpuSeconds("web", "ids") * 1e9 - ids[1]) <= tolNs, `${agg.cpuSeconds("web", "ids") * 1e9} vs ${ids[1]}`);
  assert.ok(Math.abs(agg.cpuSeconds("whole", "ids") * 1e9 - guestTotalNs) <= tolNs);
  assert.ok(Math.abs(idsPctSum - ids[1]) < 1e3 && Math.abs(ownPctSum - (guestTotalNs - ids[1])) < 1e3, `${idsPctSum} ${ownPctSum}`);
  assert.ok(ids[1] / guestTotalNs > 0.2 && ids[1] / guestTotalNs < 0.8, "the trace has other address spaces beside the IDS's");
  assert.deepEqual(agg.stats.helperUnseenCr3s, 0);
});

void test("bad helper input is counted once and never charged: malformed, forged from another domain, CR3s that never run", () => {
  const { windows, cr3TotalNs } = fixtureWindows();
  const [ids, other] = [...cr3TotalNs.entries()].sort((a, b) => b[1] - a[1]);
  assert.ok(ids !== undefined && other !== undefined);
  const agg = new CageAggregator([cage("web", { idsVms: [{ kind: "xen", domain: GUEST }], idsCr3: [{ domain: GUEST, from: "helper" }] })]);
  const ls = [
    '/local/domain/0/name = "Domain-0"',
    helperLs(GUEST, "ids-vm", { 412: `${ids[0]} 1234`, aide: `${other[0]} 9`, 77: "0x1234000 55", 78: `${other[0]}` }),
    // The protected VM (another domain) claims the guest's other address space as IDS: forged.
    helperLs(2, "web", { 501: `${other[0]} 3` }),
  ].join("\n");
  const first = agg.setIdsHelpers(helperSnapshotFromLs(ls));
  assert.deepEqual(first.map((r) => `${r.reason} ${r.domain}/${r.key}`).sort(), ["forged 2/501", "malformed 1/78", "malformed 1/aide"]);
  assert.equal(agg.stats.helperMalformed, 2);
  assert.equal(agg.stats.helperForged, 1);
  // The same entries read again are not counted again; a rewritten one is.
  assert.deepEqual(agg.setIdsHelpers(helperSnapshotFromLs(ls)), []);
  assert.deepEqual(agg.setIdsHelpers(helperSnapshotFromLs(ls.replace(`501 = "${other[0]} 3"`, `501 = "${other[0]} 4"`))).map((r) => r.key), ["501"]);
  assert.equal(agg.stats.helperForged, 2);
  assert.deepEqual(agg.reportedCr3s("web").map((c) => c.cr3).sort(), ["0x1234000", ids[0]].sort());
  windows.forEach((w, i) => {
    agg.ingestXen(w);
    assert.equal(agg.stats.helperUnseenCr3s, i + 1 >= HELPER_CR3_UNSEEN_WINDOWS ? 1 : 0, `after window ${i + 1}`);
  });
  // Only the reported CR3 that ran is charged: nothing of the malformed, forged or unseen ones.
  assert.ok(Math.abs(agg.cpuSeconds("web", "ids") * 1e9 - ids[1]) <= windows.length * 2);
  assert.equal(agg.stats.helperUnseenCr3s, 1);
});

void test("a withdrawn CR3 stops being charged at once; so do all when the reports cannot be read", () => {
  const { windows } = fixtureWindows();
  const agg = new CageAggregator([cage("web", { idsVms: [{ kind: "xen", domain: "ids-vm" }], idsCr3: [{ domain: "ids-vm", from: "helper" }] })]);
  const busiest = (w: XenDomainCpu): { cr3: string; runNs: number } => {
    const all = (w.domains.find((d) => d.domain === GUEST)?.vcpus ?? []).flatMap((v) => v.cr3s ?? []);
    return all.sort((a, b) => b.runNs - a.runNs)[0] ?? { cr3: "0x0", runNs: 0 };
  };
  const half = Math.floor(windows.length / 2);
  const reported = busiest(windows[0]!).cr3;
  agg.setIdsHelpers(helperSnapshotFromLs(helperLs(GUEST, "ids-vm", { 300: `${reported} 10` })));
  let expectedNs = 0;
  for (const w of windows.slice(0, half)) {
    agg.ingestXen(w);
    expectedNs += (w.domains.find((d) => d.domain === GUEST)?.vcpus ?? []).flatMap((v) => v.cr3s ?? []).filter((c) => c.cr3 === reported).reduce((s, c) => s + c.runNs, 0);
  }
  assert.ok(expectedNs > 0);
  assert.equal(agg.cpuSeconds("web", "ids"), expectedNs / 1e9);
  // The process exited: the helper removed its node. Its page table may be reused by anyone now.
  agg.setIdsHelpers(helperSnapshotFromLs(helperLs(GUEST, "ids-vm", {})));
  for (const w of windows.slice(half, half + 2)) agg.ingestXen(w);
  agg.setIdsHelpers(helperSnapshotFromLs(helperLs(GUEST, "ids-vm", { 300: `${reported} 10`, x: "bad" })));
  assert.equal(agg.stats.helperMalformed, 1);
  agg.dropIdsHelperReports();
  assert.deepEqual(agg.reportedCr3s("web"), []);
  // A read after a failed one does not count the same bad entry again.
  agg.setIdsHelpers(helperSnapshotFromLs(helperLs(GUEST, "ids-vm", { x: "bad" })));
  assert.equal(agg.stats.helperMalformed, 1);
  agg.setIdsHelpers({ domains: [] });
  for (const w of windows.slice(half + 2)) agg.ingestXen(w);
  assert.equal(agg.cpuSeconds("web", "ids"), expectedNs / 1e9);
  assert.deepEqual(agg.reportedCr3s("web"), []);
});

void test("a named IDS-VM is still charged when raw.xen windows carry no names (xl list failing): xenstore gave its ID", () => {
  const { windows, cr3TotalNs } = fixtureWindows();
  const [ids] = [...cr3TotalNs.entries()].sort((a, b) => b[1] - a[1]);
  assert.ok(ids !== undefined);
  const agg = new CageAggregator([cage("web", { idsVms: [{ kind: "xen", domain: "ids-vm" }], idsCr3: [{ domain: "ids-vm", from: "helper" }] })]);
  agg.setIdsHelpers(helperSnapshotFromLs(helperLs(GUEST, "ids-vm", { 412: `${ids[0]} 1234` })));
  for (const w of windows) agg.ingestXen({ ...w, domains: w.domains.map(({ name: _name, ...d }) => d) });
  assert.ok(Math.abs(agg.cpuSeconds("web", "ids") * 1e9 - ids[1]) <= windows.length * 2);
});
