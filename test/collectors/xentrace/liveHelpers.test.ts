// Pure pieces of the live collector: xl list parsing (real output), arguments, the raw.xen payload, windows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseXentraceCollectorArgs } from "../../../collectors/xentrace/collectorArgs.js";
import type { RunTimeSnapshot } from "../../../collectors/xentrace/domainRunTime.js";
import { CR3_XENTRACE_ARGS, DEFAULT_XENTRACE_ARGS, WindowDiffer, toXenDomainCpu, xentraceArgv } from "../../../collectors/xentrace/liveWindow.js";
import { domainNamesFromXlList, parseXlList } from "../../../host/xen/xlList.js";
import { ProtocolError } from "../../../protocol/wireFormat.js";
import { decodeXenDomainCpu, encodeXenDomainCpu, type XenDomainCpu } from "../../../protocol/xenDomainCpu.js";
import { transcriptOutput } from "./fakeXen.js";

void test("parseXlList reads the real xl list table (TABs in the header, spaces in rows)", () => {
  const text = transcriptOutput("xl list", 2);
  assert.match(text, /^Name\s+ID\s+Mem VCPUs\tState\tTime\(s\)\n/);
  assert.deepEqual(parseXlList(text), [
    { name: "Domain-0", domain: 0, memMiB: 512, vcpus: 2, state: "r-----", cpuSeconds: 25.8 },
    { name: "domu1", domain: 1, memMiB: 128, vcpus: 1, state: "r-----", cpuSeconds: 20.3 },
  ]);
  assert.deepEqual([...domainNamesFromXlList(transcriptOutput("xl list", 0))], [[0, "Domain-0"]]);
  // A name longer than the 40-column field, and noise lines.
  const long = `${"a-very-long-domain-name-that-overflows-the-column".padEnd(40)} 17   256     4     -b----      0.0\nxl: warning\n\n`;
  assert.deepEqual(parseXlList(long).map((d) => [d.domain, d.name]), [[17, "a-very-long-domain-name-that-overflows-the-column"]]);
});

void test("collector arguments: defaults and every option", () => {
  assert.deepEqual(parseXentraceCollectorArgs(["--endpoint", "ipc:///run/x.sock"]), {
    endpoint: "ipc:///run/x.sock",
    cpuHz: undefined,
    windowMs: 1000,
    xentracePath: "xentrace",
    xlPath: "xl",
    domainNames: true,
    cr3: false,
  });
  assert.deepEqual(
    parseXentraceCollectorArgs(["--endpoint=tcp://127.0.0.1:5555", "--cpu-hz", "2596.149M", "--window-ms=250", "--xentrace", "/usr/sbin/xentrace", "--xl=/usr/sbin/xl", "--no-names", "--cr3"]),
    { endpoint: "tcp://127.0.0.1:5555", cpuHz: 2596149000, windowMs: 250, xentracePath: "/usr/sbin/xentrace", xlPath: "/usr/sbin/xl", domainNames: false, cr3: true },
  );
  assert.throws(() => parseXentraceCollectorArgs(["--endpoint", "ipc:///a", "--endpoint", "ipc:///b"]), /^UsageError: cage collector xentrace: --endpoint given twice$/);
  assert.throws(() => parseXentraceCollectorArgs(["--endpoint", "ipc:///a", "--cpu-hz", "fast"]), /^UsageError: cage collector xentrace: --cpu-hz: "fast" is not a rate/);
  assert.throws(() => parseXentraceCollectorArgs(["--endpoint", "ipc:///a", "--names"]), /^UsageError: cage collector xentrace: unknown option "--names"$/);
});

void test("xentrace argv: options, then the output file last (4.17 requires it)", () => {
  assert.deepEqual(xentraceArgv(DEFAULT_XENTRACE_ARGS, "/dev/stdout"), ["-D", "-e", "0x0002f000", "-S", "32", "/dev/stdout"]);
  assert.deepEqual(xentraceArgv(CR3_XENTRACE_ARGS, "/dev/stdout"), ["-D", "-e", "0x000af000", "-S", "1024", "/dev/stdout"]);
});

const sample: XenDomainCpu = {
  v: 1,
  windowSeconds: 1.0002,
  timeMs: 1_700_000_000_000,
  cpuHz: 2596149000,
  session: 1,
  final: false,
  domains: [
    { domain: 0, name: "Domain-0", runNs: 1_500_000_000, vcpus: [{ vcpu: 0, runNs: 700_000_000 }, { vcpu: 1, runNs: 800_000_000 }] },
    { domain: 1, runNs: 990_000_000, vcpus: [{ vcpu: 0, runNs: 990_000_000 }] },
  ],
  lostRecords: 0,
  corrupt: 0,
};

void test("raw.xen payload round-trips", () => {
  assert.deepEqual(decodeXenDomainCpu(encodeXenDomainCpu(sample)), sample);
});

void test("raw.xen decode throws ProtocolError naming the bad field", () => {
  const bad = (patch: (o: Record<string, unknown>) => void): Buffer => {
    const o = JSON.parse(JSON.stringify(sample)) as Record<string, unknown>;
    patch(o);
    return Buffer.from(JSON.stringify(o));
  };
  const cases: [Buffer, string][] = [
    [Buffer.from("{"), "frame 2 (xen domain cpu)"],
    [Buffer.from("[]"), "frame 2 (xen domain cpu)"],
    [bad((o) => (o.v = 2)), "frame 2 (xen domain cpu) field v"],
    [bad((o) => (o.windowSeconds = -1)), "frame 2 (xen domain cpu) field windowSeconds"],
    [bad((o) => (o.cpuHz = "fast")), "frame 2 (xen domain cpu) field cpuHz"],
    [bad((o) => (o.session = 0)), "frame 2 (xen domain cpu) field session"],
    [bad((o) => delete o.final), "frame 2 (xen domain cpu) field final"],
    [bad((o) => (o.lostRecords = 1.5)), "frame 2 (xen domain cpu) field lostRecords"],
    [bad((o) => (o.domains = {})), "frame 2 (xen domain cpu) field domains"],
    [bad((o) => ((o.domains as Record<string, unknown>[])[1]!.domain = 70000)), "frame 2 (xen domain cpu) field domains[1].domain"],
    [bad((o) => ((o.domains as Record<string, unknown>[])[0]!.name = 5)), "frame 2 (xen domain cpu) field domains[0].name"],
    [bad((o) => (((o.domains as Record<string, unknown>[])[0]!.vcpus as Record<string, unknown>[])[1]!.runNs = null)), "frame 2 (xen domain cpu) field domains[0].vcpus[1].runNs"],
  ];
  for (const [payload, where] of cases) {
    assert.throws(
      () => decodeXenDomainCpu(payload),
      (err: unknown) => err instanceof ProtocolError && err.where === where,
      where,
    );
  }
});

function snap(atTsc: number, vcpus: [number, number, number][], cr3: RunTimeSnapshot["cr3"] = [], cr3OverflowCycles = 0): RunTimeSnapshot {
  const byDomain = new Map<number, { vcpu: number; runCycles: number }[]>();
  for (const [d, v, c] of vcpus) byDomain.set(d, [...(byDomain.get(d) ?? []), { vcpu: v, runCycles: c }]);
  return {
    source: "runstate",
    atTsc,
    domains: [...byDomain].map(([domain, vs]) => ({ domain, runCycles: vs.reduce((s, v) => s + v.runCycles, 0), vcpus: vs })),
    cr3,
    runstateRecords: 1,
    switchRecords: 0,
    cr3Writes: 0,
    anomalies: 0,
    tscSkewEvents: 0,
    overflowed: 0,
    cr3OverflowCycles,
  };
}

void test("WindowDiffer: per-window deltas, never negative, shortfall taken from later windows", () => {
  const d = new WindowDiffer();
  const w1 = d.next(snap(1000, [[0, 0, 400], [0, 1, 300]]), 0);
  assert.deepEqual(w1, {
    spanCycles: 1000,
    domains: [{ domain: 0, runCycles: 700, cr3Tracked: false, vcpus: [{ vcpu: 0, runCycles: 400, cr3s: [] }, { vcpu: 1, runCycles: 300, cr3s: [] }] }],
    cr3OverflowCycles: 0,
  });
  // v1's total drops to 250 (end-of-trace truncation): it reports nothing, not -50.
  const w2 = d.next(snap(1500, [[0, 0, 900], [0, 1, 250], [1, 0, 100]]), 0);
  assert.deepEqual(w2.domains, [
    { domain: 0, runCycles: 500, cr3Tracked: false, vcpus: [{ vcpu: 0, runCycles: 500, cr3s: [] }] },
    { domain: 1, runCycles: 100, cr3Tracked: false, vcpus: [{ vcpu: 0, runCycles: 100, cr3s: [] }] },
  ]);
  assert.equal(w2.spanCycles, 500);
  // Then it rises to 320: only the 20 above what was already reported.
  const w3 = d.next(snap(1500, [[0, 0, 900], [0, 1, 320], [1, 0, 100]]), 0);
  assert.deepEqual(w3, { spanCycles: 0, domains: [{ domain: 0, runCycles: 20, cr3Tracked: false, vcpus: [{ vcpu: 1, runCycles: 20, cr3s: [] }] }], cr3OverflowCycles: 0 });

  const msg = toXenDomainCpu(w1, { cpuHz: 1e9, timeMs: 5, session: 2, final: true, lostRecords: 3, corrupt: 1, names: new Map([[0, "Domain-0"]]), maxCr3Entries: 256 });
  assert.deepEqual(msg, {
    v: 1,
    windowSeconds: 1e-6,
    timeMs: 5,
    cpuHz: 1e9,
    session: 2,
    final: true,
    domains: [{ domain: 0, name: "Domain-0", runNs: 700, vcpus: [{ vcpu: 0, runNs: 400 }, { vcpu: 1, runNs: 300 }] }],
    lostRecords: 3,
    corrupt: 1,
  });
});

void test("WindowDiffer and toXenDomainCpu: per-window time per (domain, vCPU, CR3), bounded, the rest counted", () => {
  const d = new WindowDiffer();
  const cr3 = (vcpu: number, value: string, runCycles: number): RunTimeSnapshot["cr3"][number] => ({ domain: 3, vcpu, cr3: value, runCycles });
  const w1 = d.next(snap(1000, [[0, 0, 500], [3, 0, 900], [3, 1, 400]], [cr3(0, "0x1000", 600), cr3(0, "0x2000", 200), cr3(1, "0x1000", 50)], 30), 0);
  assert.deepEqual(w1.domains[0], { domain: 0, runCycles: 500, cr3Tracked: false, vcpus: [{ vcpu: 0, runCycles: 500, cr3s: [] }] });
  assert.deepEqual(w1.domains[1]?.vcpus, [
    { vcpu: 0, runCycles: 900, cr3s: [{ cr3: "0x1000", runCycles: 600 }, { cr3: "0x2000", runCycles: 200 }] },
    { vcpu: 1, runCycles: 400, cr3s: [{ cr3: "0x1000", runCycles: 50 }] },
  ]);
  assert.equal(w1.cr3OverflowCycles, 30);
  // Two entries fit: the smallest (vCPU 1's 50) goes into its cr3OtherNs.
  const msg = toXenDomainCpu(w1, { cpuHz: 1e9, timeMs: 5, session: 1, final: false, lostRecords: 0, corrupt: 0, names: new Map(), maxCr3Entries: 2 });
  assert.deepEqual(msg.domains[0]?.vcpus, [{ vcpu: 0, runNs: 500 }]);
  assert.deepEqual(msg.domains[1]?.vcpus, [
    { vcpu: 0, runNs: 900, cr3s: [{ cr3: "0x1000", runNs: 600 }, { cr3: "0x2000", runNs: 200 }], cr3OtherNs: 0, cr3UnknownNs: 100 },
    { vcpu: 1, runNs: 400, cr3s: [], cr3OtherNs: 50, cr3UnknownNs: 350 },
  ]);
  assert.equal(msg.cr3TableFullNs, 30);
  assert.deepEqual(decodeXenDomainCpu(encodeXenDomainCpu(msg)), msg);
  // The next window carries only what is new per CR3.
  const w2 = d.next(snap(2000, [[3, 0, 1900]], [cr3(0, "0x1000", 600), cr3(0, "0x2000", 1150)], 30), 0);
  assert.deepEqual(w2.domains, [{ domain: 3, runCycles: 1000, cr3Tracked: true, vcpus: [{ vcpu: 0, runCycles: 1000, cr3s: [{ cr3: "0x2000", runCycles: 950 }] }] }]);
  assert.equal(w2.cr3OverflowCycles, 0);
});

void test("decodeXenDomainCpu checks the CR3 fields", () => {
  const base = { v: 1, windowSeconds: 1, timeMs: 1, cpuHz: 1e9, session: 1, final: false, lostRecords: 0, corrupt: 0 };
  const withVcpu = (vcpu: Record<string, unknown>, extra: Record<string, unknown> = {}): Buffer =>
    Buffer.from(JSON.stringify({ ...base, ...extra, domains: [{ domain: 3, runNs: 10, vcpus: [{ vcpu: 0, runNs: 10, ...vcpu }] }] }));
  const cases: [Buffer, string][] = [
    [withVcpu({ cr3s: {} }), "frame 2 (xen domain cpu) field domains[0].vcpus[0].cr3s"],
    [withVcpu({ cr3s: [{ cr3: "1000", runNs: 1 }] }), "frame 2 (xen domain cpu) field domains[0].vcpus[0].cr3s[0].cr3"],
    [withVcpu({ cr3s: [{ cr3: "0x1ABC", runNs: 1 }] }), "frame 2 (xen domain cpu) field domains[0].vcpus[0].cr3s[0].cr3"],
    [withVcpu({ cr3s: [{ cr3: "0x1000", runNs: -1 }] }), "frame 2 (xen domain cpu) field domains[0].vcpus[0].cr3s[0].runNs"],
    [withVcpu({ cr3OtherNs: "1" }), "frame 2 (xen domain cpu) field domains[0].vcpus[0].cr3OtherNs"],
    [withVcpu({ cr3UnknownNs: Infinity }), "frame 2 (xen domain cpu) field domains[0].vcpus[0].cr3UnknownNs"],
    [withVcpu({}, { cr3TableFullNs: -5 }), "frame 2 (xen domain cpu) field cr3TableFullNs"],
  ];
  for (const [payload, where] of cases) {
    assert.throws(
      () => decodeXenDomainCpu(payload),
      (err: unknown) => err instanceof ProtocolError && err.where === where,
      where,
    );
  }
  const many = Array.from({ length: 65537 }, (_, i) => ({ cr3: `0x${i.toString(16)}`, runNs: 0 }));
  assert.throws(() => decodeXenDomainCpu(withVcpu({ cr3s: many })), /more than 65536 CR3 entries/);
});
