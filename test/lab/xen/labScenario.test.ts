// Xen lab, pure parts: scenario spec checks, cap compliance, balloon check, the
// files dom0 writes, and QEMU's command line. The lab itself runs in `npm run test:xen`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { actuatorProgress, balloonCheck, capCompliance, cr3CapVerdict, cr3IdsAgreement, freshCageWindows, DEFAULT_CR3_DOMU, cr3PaperGuestRuns, cr3PaperSegmentFigures, cr3PaperSegments, cr3PaperSeries, guestKthreadPct, guestPanic, guestRateSpread, parseGuestKthreads, parseGuestMmSpan, parseGuestSchedstat, procStatShares, traceLagS, type Cr3PaperGuestSample, type Cr3PaperWindow, validateScenarioSpec, windowTrace, type CageWindow, type GuestSchedstat, type LabScenarioSpec } from "../../../lab/xen/labScenario.js";
import { parseHostCpuTicks } from "../../../host/proc/hostCpu.js";
import { aideConfig, cageDocument, CR3_IDS_HOLD_MS, CR3_RESOLVE_MS, cr3DomuConfig, cr3IdsCageDocument, domuConfig, idsScript, idsVmConfig, IDS_TAG, LAB_DOMU, LAB_IDS_VM } from "../../../lab/xen/dom0/labFiles.js";
import { qemuArgs, xenCommandLine, type LabImages } from "../../../lab/xen/xenLab.js";
import { parseConfigText } from "../../../config/loadConfig.js";

const spec: LabScenarioSpec = { phases: ["cpu-off", "cpu-on"], scheduler: "credit", capPct: 50, idsCapPct: 25, durationS: 20, ids: "aide", domuMemMiB: 256, balloonStepMiB: 24, balloonSteps: 4 };

void test("validateScenarioSpec accepts a good spec and names the bad field", () => {
  validateScenarioSpec(spec);
  const bad: [Partial<LabScenarioSpec>, RegExp][] = [
    [{ phases: [] }, /phases must be a non-empty list/],
    [{ phases: ["smoke", "cpu-off"] }, /smoke runs alone/],
    [{ phases: ["cpu-of" as "cpu-off"] }, /phases must be/],
    [{ scheduler: "rtds" as "credit" }, /scheduler must be credit or credit2, got "rtds"/],
    [{ capPct: 0 }, /capPct must be in \(0, 200\], got 0/],
    [{ idsCapPct: 60 }, /idsCapPct must be in \(0, capPct\], got 60/],
    [{ durationS: 2.5 }, /durationS must be an integer 3..600, got 2.5/],
    [{ ids: "tripwire" as "aide" }, /ids must be aide or burn/],
    [{ domuMemMiB: 32 }, /domuMemMiB must be an integer 64..1024, got 32/],
    [{ balloonStepMiB: 0 }, /balloonStepMiB/],
    [{ balloonSteps: 21 }, /balloonSteps/],
    [{ balloonStepMiB: 64, balloonSteps: 3 }, /at most half of domuMemMiB .*got 192 of 256/],
    [{ phases: ["cr3-trace", "cpu-off"] }, /cr3-trace runs alone/],
    [{ phases: ["cr3-ids", "cpu-on"] }, /cr3-ids runs alone or as cr3-ids,cr3-paper/],
    [{ phases: ["cr3-paper"] }, /cr3-ids runs alone or as cr3-ids,cr3-paper, got \["cr3-paper"\]/],
    [{ phases: ["cr3-paper", "cr3-ids"] }, /cr3-ids runs alone or as cr3-ids,cr3-paper/],
    [{ phases: ["cr3-ids", "cr3-paper", "cr3-paper"] }, /cr3-ids runs alone or as cr3-ids,cr3-paper/],
    [{ cr3Domu: { hap: 1 as unknown as boolean, monitor: true, cpuid: "" } }, /cr3Domu\.hap must be a boolean, got 1/],
    [{ cr3Domu: { hap: true, monitor: "on" as unknown as boolean, cpuid: "" } }, /cr3Domu\.monitor must be a boolean, got "on"/],
    [{ cr3Domu: { hap: true, monitor: true, cpuid: 'host"\nkernel="x' } }, /cr3Domu\.cpuid must be an xl cpuid string/],
  ];
  for (const [patch, re] of bad) assert.throws(() => validateScenarioSpec({ ...spec, ...patch }), re);
  validateScenarioSpec({ ...spec, phases: ["cr3-trace"], cr3Domu: DEFAULT_CR3_DOMU });
  validateScenarioSpec({ ...spec, phases: ["cr3-ids", "cr3-paper"], cr3Domu: DEFAULT_CR3_DOMU });
});

void test("the cr3-trace domU: PVH, the paging mode and CPUID under test, lab=cr3 for its init", () => {
  const cfg = cr3DomuConfig(spec, DEFAULT_CR3_DOMU);
  assert.match(cfg, /^name = "domu1"\ntype = "pvh"\n/);
  assert.match(cfg, /\nextra = "console=hvc0 lab=cr3"\n/);
  assert.match(cfg, /\nhap = 1\ncpuid = "host,rdtscp=0,xsave=0"\n/);
  const shadow = cr3DomuConfig(spec, { hap: false, monitor: false, cpuid: "" });
  assert.match(shadow, /\nhap = 0\n/);
  assert.doesNotMatch(shadow, /cpuid/);
});

void test("capCompliance counts windows within cap + tolerance", () => {
  const w = (vm: number, ids: number): CageWindow => ({ timeMs: 0, windowSeconds: 1, vmPct: vm, idsPct: ids, totalPct: vm + ids, capPct: 50 });
  const c = capCompliance([w(30, 20), w(33, 20), w(34, 20), w(100, 90)], 3);
  assert.equal(c.windows, 4);
  assert.equal(c.within, 2); // 50 and 53 are within 53; 54 and 190 are not
  assert.equal(c.fractionWithin, 0.5);
  assert.equal(c.maxTotalPct, 190);
  assert.equal(c.meanVmPct, (30 + 33 + 34 + 100) / 4);
  assert.equal(c.idsWindows, 4);
  assert.equal(capCompliance([w(40, 0), w(30, 5)], 3).idsWindows, 1);
  assert.equal(capCompliance([], 3).fractionWithin, 0);
});

void test("balloonCheck: domU shrink and dom0 growth must match within 2%", () => {
  const ok = balloonCheck([
    { idsBytes: 0, domuMiB: 256, dom0MiB: 1024 },
    { idsBytes: 96 * 2 ** 20, domuMiB: 160, dom0MiB: 1121 },
  ]);
  assert.deepEqual([ok.domuShrinkMiB, ok.dom0GrowMiB, ok.ok], [96, 97, true]);
  const off = balloonCheck([
    { idsBytes: 0, domuMiB: 256, dom0MiB: 1024 },
    { idsBytes: 96 * 2 ** 20, domuMiB: 160, dom0MiB: 1024 },
  ]);
  assert.equal(off.ok, false);
  assert.equal(off.mismatch, 1);
  assert.equal(balloonCheck([{ idsBytes: 0, domuMiB: 256, dom0MiB: 1024 }]).ok, false);
  assert.equal(balloonCheck([{ idsBytes: 0, domuMiB: 256, dom0MiB: 1024 }, { idsBytes: 0, domuMiB: 256, dom0MiB: 1024 }]).ok, false);
});

void test("the files dom0 writes: domU config, AIDE config, IDS loop, and a cage file the loader accepts", () => {
  assert.match(domuConfig(spec), /^name = "domu1"\ntype = "pv"\n[\s\S]*memory = 256\nmaxmem = 256\nvcpus = 1\n/);
  assert.match(aideConfig("/mnt/d", "/run/lab/aide.db"), /^database_out=file:\/run\/lab\/aide\.db\n[\s\S]*\n\/mnt\/d LabRule\n$/);
  const two = idsScript("aide", ["/run/lab/aide-1.conf", "/run/lab/aide-2.conf"]);
  assert.match(two, /aide --config="\$1" --init/);
  assert.match(two, /echo "\$\(cut -d" " -f1 \/proc\/uptime\) start \$1"; aide /);
  assert.match(two, /\nscan \/run\/lab\/aide-1\.conf &\nsleep 20\nscan \/run\/lab\/aide-2\.conf\n$/);
  assert.match(idsScript("burn", []), /while :; do\n {2}:\ndone/);
  assert.throws(() => idsScript("aide", []), /at least one config/);
  const doc = cageDocument(spec, null);
  const cfg = parseConfigText(JSON.stringify(doc), "lab-cage.json");
  const cage = cfg.cages[0];
  assert.ok(cage);
  assert.deepEqual(cage.vm, { kind: "xen", domain: "domu1" });
  assert.equal(cage.cpu.cap, 50);
  assert.equal(cage.memory?.baseBytes, 256 * 2 ** 20);
  assert.equal(cage.memory?.floorBytes, 128 * 2 ** 20);
  assert.ok(new RegExp(cage.ids[0]?.cmdline ?? "^$").test(`sh /run/lab/${IDS_TAG}.sh`));
  assert.equal(cage.cpu.idsCap, 25);
  const on = parseConfigText(JSON.stringify(cageDocument(spec, "cpu")), "lab-cage-cpu.json");
  assert.equal(on.agent.actuators?.cpu?.hostCapacityPct, 200);
  assert.equal(on.agent.actuators?.limiter?.mode, "cgroup");
});

void test("QEMU and Xen command lines: TCG, both schedulers, smap/smep off, eager FPU, disks in dom0's order", () => {
  assert.match(xenCommandLine("credit"), /sched=credit .*smap=0 smep=0/);
  // Lazy FPU switching crashed dom0's processes under TCG (docs/xen-lab.md): it must stay eager.
  assert.match(xenCommandLine("credit"), / spec-ctrl=eager-fpu( |$)/);
  assert.match(xenCommandLine("credit2"), /sched=credit2 /);
  const images: LabImages = { dir: "/c", xen: "/c/xen", vmlinuz: "/c/vmlinuz", dom0Initrd: "/c/i.gz", dom0Root: "/c/r.ext2", domuDisk: "/c/d.ext2" };
  const a = qemuArgs({ images, scheduler: "credit2", projectTar: "/t/p.tar", resultsImage: "/t/r.img" });
  assert.equal(a[a.indexOf("-accel") + 1], "tcg,thread=multi");
  assert.equal(a[a.indexOf("-initrd") + 1], "/c/vmlinuz console=hvc0 earlyprintk=xen rdinit=/init,/c/i.gz");
  const drives = a.filter((_, i) => a[i - 1] === "-drive");
  assert.deepEqual(drives, [
    "file=/c/r.ext2,format=raw,if=virtio,readonly=on",
    "file=/t/p.tar,format=raw,if=virtio,readonly=on",
    "file=/t/r.img,format=raw,if=virtio",
    "file=/c/d.ext2,format=raw,if=virtio,readonly=on",
  ]);
});

void test("windowTrace lists each window as vm/ids/total in whole percent", () => {
  const w = (vmPct: number, idsPct: number): CageWindow => ({ timeMs: 0, windowSeconds: 1, vmPct, idsPct, totalPct: vmPct + idsPct, capPct: 50 });
  assert.equal(windowTrace([w(24.6, 25.1), w(52, 24.4)]), "25/25/50 52/24/76");
  assert.equal(windowTrace([]), "");
});

void test("actuatorProgress counts one actuator's states, applied and failed decisions, and skips others and non-JSON", () => {
  const state = (actuator: string) => ({ topic: "act.state", payload: JSON.stringify({ v: 1, actuator, cage: "lab", timeMs: 1, mode: "active", backend: "xl-credit", values: {} }) });
  const decision = (actuator: string, error?: string) => ({ topic: "act.decision", payload: JSON.stringify({ v: 1, actuator, cage: "lab", timeMs: 1, setting: "vm.cpu.cap", from: null, to: 25, reason: "r", dryRun: false, ...(error ? { error } : {}) }) });
  const msgs = [state("limiter"), decision("limiter"), state("cpu"), decision("cpu", "xl sched-credit: killed after the 10000 ms timeout"), decision("cpu"), { topic: "act.state", payload: "not json" }];
  assert.deepEqual(actuatorProgress(msgs, "cpu"), { states: 1, applied: 1, failed: 1, lastError: "xl sched-credit: killed after the 10000 ms timeout" });
  assert.deepEqual(actuatorProgress(msgs, "limiter"), { states: 1, applied: 1, failed: 0 });
  // Only the limiter up: the cpu-on phase must not start recording yet.
  assert.equal(actuatorProgress(msgs.slice(0, 2), "cpu").applied, 0);
});

void test("cr3-ids: the IDS-VM's xl config and the cage file (a valid config: the IDS-VM charged by CR3)", () => {
  const cfg = idsVmConfig(spec, DEFAULT_CR3_DOMU, { pgd: 72, pid: 2416, comm: 2976 });
  assert.match(cfg, new RegExp(`^name = "${LAB_IDS_VM}"$`, "m"));
  assert.match(cfg, /^type = "pvh"$/m);
  assert.match(cfg, /^extra = "console=hvc0 nowatchdog rcutree\.jiffies_till_first_fqs=25 rcutree\.jiffies_till_next_fqs=25 lab=cr3ids oc_offsets=72,2416,2976"$/m);
  assert.match(cfg, /^cpus = "1"$/m);
  assert.match(cfg, /^hap = 1$/m);
  const off = parseConfigText(JSON.stringify(cr3IdsCageDocument(spec, null)), "cr3-ids.json");
  assert.deepEqual(off.cages[0]?.vm, { kind: "xen", domain: LAB_DOMU });
  assert.deepEqual(off.cages[0]?.idsCr3, [{ domain: LAB_IDS_VM, from: "helper" }]);
  assert.deepEqual(off.cages[0]?.ids, []);
  assert.equal(off.cages[0]?.memory, null);
  assert.equal(off.agent.actuators.cpu, null);
  assert.equal(off.agent.resolveMs, CR3_RESOLVE_MS);
  const on = parseConfigText(JSON.stringify(cr3IdsCageDocument(spec, "cpu")), "cr3-ids-cpu.json");
  assert.equal(on.agent.actuators.cpu?.idsHoldMs, CR3_IDS_HOLD_MS);
  assert.notEqual(on.agent.actuators.limiter, null);
  // The other phases' cages keep their own hold.
  assert.notEqual(parseConfigText(JSON.stringify(cageDocument(spec, "cpu")), "cpu.json").agent.actuators.cpu?.idsHoldMs, CR3_IDS_HOLD_MS);
});

void test("cr3-ids: the guest's schedstat lines, and dom0's CR3 figure against them", () => {
  const console = "domU: up, IDS-VM\ndomU: ids-loop pid 57\ndomU: ids-schedstat 10.50 57 1000000000 3\r\ngarbage\ndomU: ids-schedstat 31.50 57 11500000000 13\ndomU: ids-schedstat 32.50 57 11600000000\n";
  const samples = parseGuestSchedstat(console);
  assert.deepEqual(samples, [{ uptimeS: 10.5, runNs: 1e9, stealTicks: 3 }, { uptimeS: 31.5, runNs: 11.5e9, stealTicks: 13 }], "a line without the steal field is not one");
  // The guest saw 10.5 s in 21 s: 50%, with 0.1 s stolen (0.48%). dom0 traced the vCPU for 21 s of
  // 22 s (records lost for 1 s), 0.2 s of it in no known address space, and charged the IDS 10.296 s:
  // 49.5% of the 20.8 s known, 1% apart; 46.8% per trace second.
  const dom0 = { idsS: 10.296, vcpuRunS: 21, cr3UnknownS: 0.2, traceS: 22, windows: 22, lostRecords: 4000 };
  const ok = cr3IdsAgreement(samples[0]!, samples[1]!, dom0);
  assert.equal(ok.spanS, 21);
  assert.equal(ok.guestPct, 50);
  assert.ok(Math.abs(ok.guestStealPct - 0.1 / 21 * 100) < 1e-9);
  assert.ok(Math.abs(ok.dom0Pct - 49.5) < 1e-9);
  assert.ok(Math.abs(ok.dom0PerTracePct - 46.8) < 1e-9);
  assert.ok(Math.abs(ok.vcpuTracedPct - (21 / 22) * 100) < 1e-9);
  assert.equal(ok.lostRecords, 4000);
  assert.ok(Math.abs(ok.relError - 0.01) < 1e-9);
  assert.equal(ok.ok, true);
  assert.equal(cr3IdsAgreement(samples[0]!, samples[1]!, { ...dom0, idsS: 10.088 }).ok, false, "2.2% apart");
  assert.equal(cr3IdsAgreement(samples[0]!, { uptimeS: 20.5, runNs: 6e9, stealTicks: 3 }, { ...dom0, idsS: 5, vcpuRunS: 10, traceS: 10 }).ok, false, "a span under 20 s");
  assert.equal(cr3IdsAgreement(samples[0]!, samples[1]!, { idsS: 0, vcpuRunS: 0, cr3UnknownS: 0, traceS: 0, windows: 0, lostRecords: 0 }).ok, false, "no dom0 windows");
  assert.equal(cr3IdsAgreement(samples[0]!, { ...samples[1]!, stealTicks: 3 + 30 }, dom0).ok, false, "the vCPU stolen 1.4% of the span: the guest's rate is no share of its vCPU");
  assert.equal(cr3IdsAgreement(samples[0]!, samples[1]!, { ...dom0, vcpuRunS: 8, cr3UnknownS: 0, idsS: 3.96 }).ok, false, "under half the span traced");
});

void test("cr3-ids: the guest's rate over a shifted span, and its kernel threads' share", () => {
  // 1 s samples: the IDS at 25% for 10 s, then 35% for the last 3.
  const samples: GuestSchedstat[] = [];
  let run = 0;
  for (let i = 0; i <= 13; i++) {
    samples.push({ uptimeS: 100 + i, runNs: run, stealTicks: 0 });
    run += (i < 10 ? 0.25 : 0.35) * 1e9;
  }
  const [min, max] = guestRateSpread(samples, 3, 10, 3);
  // [3, 10] is 25% flat; moved right by 3 it takes in three 35% seconds: 25 + 3 × 10 / 7.
  assert.ok(Math.abs(min - 25) < 1e-9, `min ${min}`);
  assert.ok(Math.abs(max - (25 + 30 / 7)) < 1e-9, `max ${max}`);
  const whole = ((10 * 0.25 + 3 * 0.35) / 13) * 100;
  assert.deepEqual(guestRateSpread(samples, 0, 13, 3), [whole, whole], "no shift fits in the samples: the span itself");
  assert.throws(() => guestRateSpread(samples, 5, 5), /guestRateSpread: span \[5, 5\] is not within the 14 samples/);
  const kt = parseGuestKthreads("domU: ids-kthreads 95.00 1000000000\ndomU: ids-kthreads 100.00 1100000000\r\ndomU: ids-kthreads 110.00 1300000000\ndomU: ids-kthreads 120.00 2000000000\n");
  assert.equal(kt.length, 4);
  // Inside [99, 111]: 0.2 s in 10 s.
  assert.ok(Math.abs(guestKthreadPct(kt, 99, 111) - 2) < 1e-9);
  assert.equal(guestKthreadPct(kt, 101, 109), 0, "no two samples inside");
});

void test("the IDS-VM's address-space figures over the span dom0 asked for", () => {
  const console = [
    "domU: ids-mm on 95.01",
    "domU: ids-schedstat 96.5 77 10100000000 0 loop",
    "domU: ids-mm-span 96.5 146.5 10.000000 0.500000 0.010000 40000 0 95.012000 146.600000\r",
    "domU: ids-mm-others kworker/0:1=0.3000 khvcd=0.2000",
    "domU: ids-mm-span 96.5 200 10.000000 0.500000 0.010000 40000 0 95.012000 146.600000",
  ].join("\n");
  const span = parseGuestMmSpan(console, 96.5, 146.5);
  assert.equal(span.spanS, 50);
  assert.equal(span.ownPct.toFixed(4), "20.0000");
  assert.equal(span.othersPct.toFixed(4), "1.0000");
  assert.equal(span.mmLoadedPct.toFixed(4), "21.0000");
  assert.equal(span.idlePct.toFixed(4), "0.0200");
  assert.equal(span.events, 40000);
  assert.equal(span.overrun, 0);
  assert.throws(() => parseGuestMmSpan(console, 96.5, 200), /parseGuestMmSpan: the guest's recording \(95.012000 to 146.600000 s\) does not cover the span \[96.5, 200\]/);
  assert.throws(() => parseGuestMmSpan(console, 90, 146.5), /parseGuestMmSpan: no ids-mm-span line for \[90, 146.5\]/);
  assert.throws(() => parseGuestMmSpan("domU: ids-mm-span 1 2 0 0 0 0 0 none none", 1, 2), /does not cover the span \[1, 2\]/);
});

void test("cr3-paper: the loop then AIDE alone, then both beside the busy domU from half-way", () => {
  assert.deepEqual(cr3PaperSegments(20), [
    { step: "loop", busyVm: false, fromS: 0, toS: 20 },
    { step: "aide", busyVm: false, fromS: 20, toS: 40 },
    { step: "loop", busyVm: true, fromS: 40, toS: 60 },
    { step: "aide", busyVm: true, fromS: 60, toS: 80 },
  ]);
});

void test("cr3-paper: per-second series and per-segment figures, ratios of sums", () => {
  // Two windows arrive in second 1 (summed), none in second 2, one in second 3 outside its bin's data.
  const windows: Cr3PaperWindow[] = [
    { atS: 1.2, windowSeconds: 0.5, idsS: 0.1, idsVmRunS: 0.5, idsVmKnownS: 0.5, domuRunS: 0 },
    { atS: 1.9, windowSeconds: 1.5, idsS: 0.3, idsVmRunS: 1.5, idsVmKnownS: 1.0, domuRunS: 0 },
    { atS: 3.5, windowSeconds: 1, idsS: 0.1, idsVmRunS: 0.5, idsVmKnownS: 0.5, domuRunS: 0.5 },
  ];
  const guest: Cr3PaperGuestSample[] = [
    { atS: 0.5, runNs: 0 },
    { atS: 1.5, runNs: 0.2e9 },
    { atS: 3.5, runNs: 0.6e9 },
  ];
  const s = cr3PaperSeries(4, windows, guest);
  assert.deepEqual(s.x, [0, 1, 2, 3]);
  assert.deepEqual(s.dom0IdsPct.map((v) => (v === null ? null : Number(v.toFixed(4)))), [null, 20, null, 10]);
  assert.deepEqual(s.dom0IdsSharePct.map((v) => (v === null ? null : Number(v.toFixed(4)))), [null, 26.6667, null, 20]);
  assert.deepEqual(s.idsVmPct.map((v) => (v === null ? null : Number(v.toFixed(4)))), [null, 100, null, 50]);
  assert.deepEqual(s.domuPct.map((v) => (v === null ? null : Number(v.toFixed(4)))), [null, 0, null, 50]);
  assert.deepEqual(s.guestIdsPct.map((v) => (v === null ? null : Number(v.toFixed(4)))), [null, 20, null, 20]);

  const figures = cr3PaperSegmentFigures([{ step: "loop", busyVm: false, fromS: 0, toS: 2 }, { step: "aide", busyVm: true, fromS: 2, toS: 4 }], windows, guest, 1);
  assert.equal(figures[0]!.windows, 2);
  assert.equal(figures[0]!.traceS, 2);
  assert.equal(figures[0]!.dom0IdsPct!.toFixed(4), "20.0000");
  assert.equal(figures[0]!.dom0IdsSharePct!.toFixed(4), "26.6667");
  // Only one guest sample in [1, 2): no rate.
  assert.equal(figures[0]!.guestIdsPct, null);
  assert.equal(figures[0]!.relError, null);
  assert.equal(figures[1]!.windows, 1);
  assert.equal(figures[1]!.domuPct!.toFixed(4), "50.0000");
  const withGuest = cr3PaperSegmentFigures([{ step: "loop", busyVm: false, fromS: 0, toS: 4 }], windows, guest, 0)[0]!;
  assert.equal(withGuest.guestSpanS, 3);
  assert.equal(withGuest.guestIdsPct!.toFixed(4), "20.0000");
  assert.equal(withGuest.dom0IdsSharePct!.toFixed(4), "25.0000");
  assert.equal(withGuest.relError!.toFixed(4), "0.2500");
});

void test("cr3-paper: the guest's figures are cut on its own steps, not on dom0's clock", () => {
  // dom0 asks loop at 0, aide at 10, loop at 20; the guest takes aide 4 s late and loop 7 s late.
  const guest: Cr3PaperGuestSample[] = [];
  for (let t = 0; t <= 36; t++) {
    const step = t < 14 || t >= 27 ? "loop" : "aide";
    // The IDS runs 30% of each second under the loop, 60% under AIDE.
    const prev = guest[guest.length - 1];
    const runNs = prev === undefined ? 0 : prev.runNs + (step === "loop" ? 0.3e9 : 0.6e9);
    guest.push({ atS: t, runNs, step });
  }
  assert.deepEqual(cr3PaperGuestRuns(guest), [
    { step: "loop", fromS: 0, toS: 13 },
    { step: "aide", fromS: 14, toS: 26 },
    { step: "loop", fromS: 27, toS: 36 },
  ]);
  assert.deepEqual(cr3PaperGuestRuns([{ atS: 0, runNs: 0, step: "loop" }, { atS: 1, runNs: 1 }]), [], "a sample without its step: no runs");
  const segments = [{ step: "loop" as const, busyVm: false, fromS: 0, toS: 10 }, { step: "aide" as const, busyVm: true, fromS: 10, toS: 20 }, { step: "loop" as const, busyVm: true, fromS: 20, toS: 30 }];
  const f = cr3PaperSegmentFigures(segments, [], guest, 2);
  // On dom0's clock [12, 20) would mix two loop seconds into AIDE's figure; the guest's run does not.
  assert.deepEqual(f.map((x) => [x.guestFromS, x.guestToS, x.guestSpanS]), [[2, 13, 11], [16, 26, 10], [29, 36, 7]]);
  assert.deepEqual(f.map((x) => x.guestIdsPct!.toFixed(4)), ["30.0000", "60.0000", "30.0000"]);
  // A skipped step is no figure, not another segment's run.
  const skipped = guest.map((g) => ({ ...g, step: "loop" as const }));
  const g = cr3PaperSegmentFigures(segments, [], skipped, 2);
  assert.equal(g[1]!.guestIdsPct, null);
  assert.equal(g[1]!.guestFromS, null);
  assert.equal(g[2]!.guestIdsPct, null, "the loop run began before dom0's second loop step");
  // Samples without steps (an older init): dom0's clock, as before.
  const plain = guest.map((x) => ({ atS: x.atS, runNs: x.runNs }));
  assert.deepEqual(cr3PaperSegmentFigures(segments, [], plain, 2).map((x) => [x.guestFromS, x.guestToS]), [[2, 10], [12, 20], [22, 30]]);
});

void test("ids-schedstat lines with and without the IDS step the IDS-VM's init prints", () => {
  const samples = parseGuestSchedstat(["domU: ids-schedstat 10.5 77 100 3", "domU: ids-schedstat 11.5 80 200 3 aide\r", "domU: ids-schedstat 12.5 80 300 3 tripwire"].join("\n"));
  assert.deepEqual(samples, [
    { uptimeS: 10.5, runNs: 100, stealTicks: 3 },
    { uptimeS: 11.5, runNs: 200, stealTicks: 3, step: "aide" },
  ]);
});

void test("freshCageWindows keeps the first cage window at or after each raw.xen window, once", () => {
  const cw = (timeMs: number, totalPct: number): CageWindow => ({ timeMs, windowSeconds: 1, vmPct: totalPct, idsPct: 0, totalPct, capPct: 50 });
  const cage = [cw(1000, 10), cw(2000, 20), cw(3000, 30), cw(4000, 40), cw(5000, 50)];
  // Two raw.xen windows before the same cage window count once; one after the last cage window counts none.
  const fresh = freshCageWindows(cage, [1500, 1600, 3000, 4100, 9000]);
  assert.deepEqual(fresh.map((w) => w.timeMs), [2000, 3000, 5000]);
  assert.deepEqual(freshCageWindows(cage, []), []);
  assert.deepEqual(freshCageWindows([], [1000]), []);
});

void test("cr3CapVerdict fails on too few fresh windows even when all are within, below 90%, and without the IDS charged", () => {
  const w = (totalPct: number, idsPct = 20): CageWindow => ({ timeMs: 0, windowSeconds: 1, vmPct: totalPct - idsPct, idsPct, totalPct, capPct: 50 });
  const two = cr3CapVerdict(capCompliance([w(40), w(45)], 3));
  assert.equal(two.ok, false);
  assert.match(two.message, /2 of 2 fresh windows within cap \+ 3 .*fewer than 15 fresh windows/);
  // All within, but the IDS charged in only 17 of 20: the cap held was the domU's alone.
  const unreported = cr3CapVerdict(capCompliance(Array.from({ length: 20 }, (_, i) => w(45, i < 3 ? 0 : 20)), 3));
  assert.equal(unreported.ok, false);
  assert.match(unreported.message, /20 of 20 .*IDS charged in 17, .*the IDS charged by CR3 in under 90% of them/);
  const many = (n: number, over: number): CageWindow[] => Array.from({ length: n }, (_, i) => w(i < over ? 60 : 49));
  assert.equal(cr3CapVerdict(capCompliance(many(20, 2), 3)).ok, true);
  const low = cr3CapVerdict(capCompliance(many(20, 3), 3));
  assert.equal(low.ok, false);
  assert.match(low.message, /17 of 20 .*under 90%/);
  assert.equal(cr3CapVerdict(capCompliance(many(15, 0), 3)).ok, true);
});

void test("traceLagS: wall time since the session's first window minus the trace time after it, per session", () => {
  const w = (arrivalMs: number, windowSeconds: number, session = 1) => ({ arrivalMs, windowSeconds, session, lostRecords: 0 });
  // In step, then a 3 s stall (no window), then a window covering the stalled trace, then a new session.
  const lag = traceLagS([w(1000, 0.8), w(2000, 1), w(3000, 1), w(7000, 1), w(8000, 5), w(9000, 0.5, 2), w(11000, 1, 2)]);
  assert.deepEqual(lag.map((x) => Math.round(x * 1000) / 1000), [0, 0, 0, 3, -1, 0, 1]);
  assert.deepEqual(traceLagS([]), []);
});

void test("procStatShares: busy, idle and steal between two /proc/stat samples", () => {
  const a = parseHostCpuTicks("cpu  100 0 50 800 10 5 5 30 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n");
  const b = parseHostCpuTicks("cpu  150 0 70 850 10 5 5 80 0 0\n");
  const s = procStatShares(a, b);
  assert.ok(Math.abs(s.busyPct - (70 / 170) * 100) < 1e-9);
  assert.ok(Math.abs(s.idlePct - (50 / 170) * 100) < 1e-9);
  assert.ok(Math.abs(s.stealPct - (50 / 170) * 100) < 1e-9);
  assert.deepEqual(procStatShares(a, a), { busyPct: 0, idlePct: 0, stealPct: 0 });
});

void test("guestPanic: null without a panic; else the lines that say where, at most six", () => {
  assert.equal(guestPanic("domU: ids-schedstat 10.5 77 100 3\n[   15.3] RIP: 0010:fixup_exception+0x2f3/0x310\n"), null, "an oops alone is not a panic");
  // From a real IDS-VM console (the first cr3-ids boot in CI), CRs kept as the console has them.
  const console = [
    "[   15.323756] RIP: 0010:fixup_exception+0x2f3/0x310\r",
    "[   15.330000] Call Trace:\r",
    "[   15.343607] RIP: 0010:restore_fpregs_from_fpstate+0x45/0x90\r",
    "[   15.356065] RIP: 0033:0x4bfde3\r",
    "[   15.506901] traps: init[1] trap invalid opcode ip:4093c0 sp:7ffc2d146538 error:0 in busybox[401000+184000]\r",
    "[   15.525387] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000004\r",
    "[   15.532721] RIP: 0033:0x4093c0\r",
    "[   15.540000] BUG: one line too many\r",
  ].join("\n");
  const p = guestPanic(console);
  assert.ok(p !== null);
  const parts = p.split(" | ");
  assert.equal(parts.length, 6);
  assert.match(parts[0]!, /RIP: 0010:fixup_exception/);
  assert.match(parts[3]!, /traps: init\[1\] trap invalid opcode/);
  assert.match(parts[4]!, /Kernel panic - not syncing/);
  assert.ok(!p.includes("Call Trace"));
});
