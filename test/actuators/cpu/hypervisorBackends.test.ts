// The Xen (xl) and libvirt (virsh) back ends: command lines checked here against a FAKE xl (no Xen
// on this host) that records argv and replays real xl output, and a FAKE virsh only where a test
// needs a libvirt this host's cannot be (an old one without global_quota, a failing one); the
// virsh back end against a real libvirtd is virshCpuBackend.e2e.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { XlCpuBackend, xenCapFor } from "../../../actuators/common/xlCpuBackend.js";
import { findDomainRow, parseXlInfo, parseXlSchedTable, xenSchedulerOf } from "../../../actuators/common/xlSchedOutput.js";
import { VirshCpuBackend } from "../../../actuators/common/virshCpuBackend.js";
import { parseVirshSchedinfo } from "../../../actuators/common/virshSchedinfo.js";
import { REAL_SCHED_CREDIT, REAL_XL_INFO, RENDERED_SCHED_CREDIT2, VIRSH_SCHEDINFO, VIRSH_SCHEDINFO_OLD, fakeVirsh, fakeXl, withPath } from "./fakeHypervisorTools.js";
import { transcriptOutput } from "../../collectors/xentrace/fakeXen.js";

void test("xl output parsers read the real captures strictly", () => {
  assert.equal(xenSchedulerOf(parseXlInfo(REAL_XL_INFO)), "credit");
  assert.equal(parseXlInfo(REAL_XL_INFO).get("nr_cpus"), "2");
  assert.deepEqual(parseXlSchedTable(REAL_SCHED_CREDIT, "xl sched-credit"), [
    { name: "Domain-0", id: 0, weight: 256, cap: 0 },
    { name: "domu1", id: 1, weight: 256, cap: 0 },
  ]);
  // After `xl sched-credit -d 0 -c 50 -w 512` (real):
  assert.deepEqual(parseXlSchedTable(transcriptOutput("xl sched-credit", 1), "xl sched-credit"), [{ name: "Domain-0", id: 0, weight: 512, cap: 50 }]);
  assert.deepEqual(findDomainRow(parseXlSchedTable(transcriptOutput("xl sched-credit", 3), "x"), "domu1", "x"), { name: "domu1", id: 1, weight: 256, cap: 20 });
  assert.equal(parseXlSchedTable(RENDERED_SCHED_CREDIT2, "xl sched-credit2").length, 2);
  assert.throws(() => parseXlSchedTable(`${REAL_SCHED_CREDIT}garbage line\n`, "xl sched-credit"), /xl sched-credit: unexpected line 5: "garbage line"/);
  assert.throws(() => parseXlSchedTable("Domain-0 0 256 0\n", "xl sched-credit"), /unexpected line 1/); // a row before any header
  assert.throws(() => parseXlSchedTable("", "xl sched-credit"), /no domain rows/);
  assert.throws(() => xenSchedulerOf(parseXlInfo("xen_scheduler          : rtds\n")), /only credit and credit2/);
  assert.throws(() => parseXlInfo("not a key value line\n"), /xl info: line 1 is not "key : value"/);
  assert.throws(() => findDomainRow(parseXlSchedTable(REAL_SCHED_CREDIT, "x"), "web9", "xl sched-credit"), /domain "web9" is not listed \(Domain-0, domu1\)/);
  assert.equal(xenCapFor(0.2), 1); // 0 would mean "no cap" to Xen
});

void test("xl credit1 (fake xl replaying the real transcript): sets cap and weight, restores what it found", async () => {
  const xl = fakeXl("credit");
  try {
    await withPath(xl.dir, async () => {
      const b = new XlCpuBackend("domu1");
      await b.open();
      assert.equal(b.kind, "xl-credit");
      await b.apply({ capPct: 27.6, weight: 25 });
      await b.apply({ capPct: 40, weight: null });
      assert.deepEqual(b.restoreActions(), [{ op: "exec", key: "xl:domu1", argv: ["xl", "sched-credit", "-d", "domu1", "-c", "0", "-w", "256"] }]);
      await b.restore();
    });
    assert.deepEqual(xl.calls(), [
      ["info"],
      ["sched-credit"],
      ["sched-credit", "-d", "domu1", "-c", "28", "-w", "64"],
      ["sched-credit", "-d", "domu1", "-c", "40"],
      ["sched-credit", "-d", "domu1", "-c", "0", "-w", "256"],
    ]);
  } finally {
    xl.cleanup();
  }
});

void test("xl credit2 (fake xl): detected from xl info, driven with xl sched-credit2; a domain id works", async () => {
  const xl = fakeXl("credit2");
  try {
    await withPath(xl.dir, async () => {
      const b = new XlCpuBackend(1);
      await b.open();
      assert.equal(b.kind, "xl-credit2");
      await b.apply({ capPct: 50, weight: 100 });
    });
    assert.deepEqual(xl.calls(), [["info"], ["sched-credit2"], ["sched-credit2", "-d", "1", "-c", "50", "-w", "256"]]);
  } finally {
    xl.cleanup();
  }
});

void test("xl: a refused setting is an error naming the command line and xl's message", async () => {
  const xl = fakeXl("credit", { setFails: true });
  try {
    await withPath(xl.dir, async () => {
      const b = new XlCpuBackend("domu1");
      await b.open();
      await assert.rejects(b.apply({ capPct: 500, weight: null }), /`xl sched-credit -d domu1 -c 500` exited 1: libxl: error: Cpu cap out of range/);
    });
  } finally {
    xl.cleanup();
  }
  assert.throws(() => new XlCpuBackend("-c"), /xen domain name "-c": must match/);
  assert.throws(() => new XlCpuBackend(-1), /domain id must be an integer/);
});

void test("xl missing from PATH: a clear error", async () => {
  await withPath("/nonexistent-oc", async () => {
    const saved = process.env.PATH;
    process.env.PATH = "/nonexistent-oc";
    try {
      await assert.rejects(new XlCpuBackend("domu1").open(), /`xl info`: xl not found on PATH/);
    } finally {
      process.env.PATH = saved;
    }
  });
});

void test("virsh schedinfo parser: strict, names the line", () => {
  const info = parseVirshSchedinfo(VIRSH_SCHEDINFO, "virsh schedinfo web1");
  assert.equal(info.scheduler, "posix");
  assert.equal(info.params.get("cpu_shares"), 1024);
  assert.equal(info.params.get("global_quota"), -1);
  assert.throws(() => parseVirshSchedinfo("Scheduler : posix\ncpu_shares : lots\n", "virsh schedinfo x"), /line 2: cpu_shares is not an integer/);
  assert.throws(() => parseVirshSchedinfo("cpu_shares : 1\n", "virsh schedinfo x"), /no "Scheduler" line/);
  assert.throws(() => parseVirshSchedinfo("what\n", "virsh schedinfo x"), /line 1 is not "name : value"/);
});

void test("virsh (FAKE virsh): an older libvirt without global_quota, a failing virsh; bad names", async () => {
  const old = fakeVirsh(VIRSH_SCHEDINFO_OLD);
  try {
    await withPath(old.dir, async () => {
      await assert.rejects(new VirshCpuBackend("web1", null, null).open(), /no global_period .*libvirt >= 1.3.3/);
      await assert.rejects(new VirshCpuBackend("nope", null, null).open(), /`virsh schedinfo nope --live` exited 1: error: failed to get domain 'nope'/);
    });
  } finally {
    old.cleanup();
  }
  assert.throws(() => new VirshCpuBackend("--help", null, null), /libvirt domain "--help": must match/);
  assert.throws(() => new VirshCpuBackend("web1", "not a uri", null), /libvirt URI/);
});

