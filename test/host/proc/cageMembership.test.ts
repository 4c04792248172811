import { test } from "node:test";
import assert from "node:assert/strict";
import type { CageSpec, ProcessMatcher } from "../../../config/cageConfig.js";
import { CageResolver, idsVmKey, inCgroup, parseCgroupDir, procFieldsFor, resolveCages, resolveCagesDetailed } from "../../../host/proc/cageMembership.js";
import type { ProcessCgroups, ProcessInfo } from "../../../host/proc/processTable.js";

const hostCgroups: ProcessCgroups = { v1: { cpu: "/", cpuacct: "/", memory: "/", pids: "/", "name=systemd": "/" }, v2: "/" };

function proc(pid: number, ppid: number, comm: string, extra: Partial<ProcessInfo> = {}): ProcessInfo {
  return { pid, ppid, startTime: pid * 10, comm, exe: `/usr/bin/${comm}`, cmdline: comm, cgroups: hostCgroups, uids: { real: 0, effective: 0 }, ...extra };
}

function cage(name: string, vmMatch: Partial<ProcessMatcher>[], ids: Partial<ProcessMatcher>[] = []): CageSpec {
  const m = (x: Partial<ProcessMatcher>): ProcessMatcher => ({ descendants: true, ...x });
  return { name, vm: { kind: "process", match: vmMatch.map(m) }, ids: ids.map(m), cpu: { cap: 100, idsCap: null, weight: null }, memory: null };
}

const pids = (list: ProcessInfo[] | undefined): number[] => (list ?? []).map((p) => p.pid);

//   1 init ─┬─ 10 qemu ─┬─ 11 qemu-worker
//           │           └─ 12 helper ── 13 grandchild
//           ├─ 20 tshark (-i veth1) ── 21 dumpcap
//           ├─ 30 tshark (-i veth2)
//           └─ 40 aide
const table: ProcessInfo[] = [
  proc(1, 0, "init"),
  proc(10, 1, "qemu", { cmdline: "qemu-system-x86_64 -name guest=web1" }),
  proc(11, 10, "qemu-worker"),
  proc(12, 10, "helper"),
  proc(13, 12, "grandchild"),
  proc(20, 1, "tshark", { cmdline: "tshark -i veth1" }),
  proc(21, 20, "dumpcap"),
  proc(30, 1, "tshark", { cmdline: "tshark -i veth2" }),
  proc(40, 1, "aide", { exe: "/usr/sbin/aide (deleted)" }),
];

void test("descendants follow ppid all the way down; descendants: false stops at the match", () => {
  const r = resolveCages([cage("a", [{ comm: "qemu" }]), cage("b", [{ comm: "helper", descendants: false }])], table);
  assert.deepEqual(pids(r.get("a")?.vm), [10, 11, 12, 13]);
  assert.deepEqual(pids(r.get("b")?.vm), []); // 12 already belongs to cage a
  const r2 = resolveCages([cage("b", [{ comm: "qemu", descendants: false }])], table);
  assert.deepEqual(pids(r2.get("b")?.vm), [10]);
});

void test("AND within one matcher, OR across the list; pid, exe (even deleted) and cmdline selectors", () => {
  const r = resolveCages(
    [cage("web1", [{ cmdline: "guest=web1$", descendants: false }], [{ comm: "tshark", cmdline: "-i veth1", descendants: false }, { exe: "/usr/sbin/aide" }, { pid: 13 }])],
    table,
  );
  assert.deepEqual(pids(r.get("web1")?.vm), [10]);
  assert.deepEqual(pids(r.get("web1")?.ids), [13, 20, 40]);
  const none = resolveCages([cage("x", [{ comm: "tshark", pid: 40 }])], table);
  assert.deepEqual(pids(none.get("x")?.vm), []);
});

void test("a process both VM and IDS of one cage is IDS only", () => {
  // The IDS runs inside the VM's process tree: 12 (and its child 13) are the VM's descendants too.
  const r = resolveCages([cage("web1", [{ comm: "qemu" }], [{ comm: "helper" }])], table);
  assert.deepEqual(pids(r.get("web1")?.vm), [10, 11]);
  assert.deepEqual(pids(r.get("web1")?.ids), [12, 13]);
});

void test("a process matched by two cages belongs to the first; the conflict is reported", () => {
  const { members, conflicts } = resolveCagesDetailed(
    [cage("first", [{ comm: "qemu", descendants: false }], [{ comm: "tshark" }]), cage("second", [{ cmdline: "veth2" }], [{ comm: "qemu" }])],
    table,
  );
  assert.deepEqual(pids(members.get("first")?.ids), [20, 21, 30]);
  assert.deepEqual(pids(members.get("first")?.vm), [10]);
  assert.deepEqual(pids(members.get("second")?.vm), []);
  assert.deepEqual(pids(members.get("second")?.ids), [11, 12, 13]);
  assert.deepEqual(
    conflicts.map((c) => [c.pid, c.cage, c.role, c.otherCage, c.otherRole]),
    [
      [10, "first", "vm", "second", "ids"],
      [30, "first", "ids", "second", "vm"],
    ],
  );
  assert.equal(conflicts[0]?.message, 'process 10 (qemu) matches cage "first" (vm) and cage "second" (ids); it counts for "first", the first in the file');
});

void test("every cage is in the result, including xen cages, which have no processes", () => {
  const xen: CageSpec = { name: "dom", vm: { kind: "xen", domain: "legacy" }, ids: [{ comm: "aide", descendants: true }], cpu: { cap: 50, idsCap: null, weight: null }, memory: null };
  const r = resolveCages([cage("empty", [{ comm: "nothing" }]), xen], table);
  assert.deepEqual([...r.keys()], ["empty", "dom"]);
  assert.deepEqual(r.get("empty"), { vm: [], ids: [] });
  assert.deepEqual(pids(r.get("dom")?.vm), []);
  assert.deepEqual(pids(r.get("dom")?.ids), [40]);
});

void test("cgroup matching: v1 per controller, v2 unified on a hybrid host, pure v2, at or below the directory", () => {
  const inV1 = proc(50, 1, "a", { cgroups: { v1: { ...hostCgroups.v1, memory: "/ids1/sub" }, v2: "/" } });
  const inV1Sibling = proc(51, 1, "b", { cgroups: { v1: { ...hostCgroups.v1, memory: "/ids10" }, v2: "/" } });
  const inV2 = proc(52, 1, "c", { cgroups: { v1: hostCgroups.v1, v2: "/ids1" } });
  const comounted = proc(53, 1, "d", { cgroups: { v1: { cpu: "/vm", cpuacct: "/vm", "name=systemd": "/sys.slice" }, v2: "/" } });
  const pureV2 = proc(54, 1, "e", { cgroups: { v1: {}, v2: "/machine.slice/vm1" } });
  const t = [inV1, inV1Sibling, inV2, comounted, pureV2];
  const matching = (dir: string): number[] => t.filter((p) => inCgroup(p, parseCgroupDir(dir))).map((p) => p.pid);

  assert.deepEqual(matching("/sys/fs/cgroup/memory/ids1"), [50]);
  assert.deepEqual(matching("/sys/fs/cgroup/memory/ids1/sub"), [50]);
  assert.deepEqual(matching("/sys/fs/cgroup/memory/ids10"), [51]);
  assert.deepEqual(matching("/sys/fs/cgroup/memory"), [50, 51, 52]); // the root holds everyone with a memory line
  assert.deepEqual(matching("/sys/fs/cgroup/unified/ids1"), [52]);
  assert.deepEqual(matching("/sys/fs/cgroup/cpu,cpuacct/vm"), [53]);
  assert.deepEqual(matching("/sys/fs/cgroup/cpuacct/vm"), [53]);
  assert.deepEqual(matching("/sys/fs/cgroup/systemd/sys.slice"), [53]);
  assert.deepEqual(matching("/sys/fs/cgroup/machine.slice"), [54]);

  const cgroupVm: CageSpec = { name: "c", vm: { kind: "cgroup", path: "/sys/fs/cgroup/memory/ids1" }, ids: [], cpu: { cap: 10, idsCap: null, weight: null }, memory: null };
  const child = proc(55, 50, "moved-out"); // a child of 50 that left the cgroup: not the VM's any more
  assert.deepEqual(pids(resolveCages([cgroupVm], [...t, child]).get("c")?.vm), [50]);
  const idsByCgroup = cage("i", [{ pid: 1, descendants: false }], [{ cgroup: "/sys/fs/cgroup/memory/ids1" }]);
  assert.deepEqual(pids(resolveCages([idsByCgroup], [...t, child]).get("i")?.ids), [50, 55]);
});

void test("CageResolver: successive tables give what a fresh resolution gives, whatever changed in between", () => {
  const cages = [cage("web1", [{ cmdline: "guest=web1" }], [{ cmdline: "veth1$" }]), cage("other", [{ comm: "aide" }], [{ cmdline: "^tshark -i veth2$", descendants: false }])];
  const resolver = new CageResolver(cages);
  const same = (t: ProcessInfo[]): void => assert.deepEqual(resolver.resolve(t), resolveCagesDetailed(cages, t));
  same(table);
  same(table);
  // A new command line for the same process (same PID and start time) is matched again.
  const renamed = table.map((p) => (p.pid === 30 ? { ...p, cmdline: "tshark -i veth1" } : p));
  same(renamed);
  assert.deepEqual(pids(resolver.resolve(renamed).members.get("web1")?.ids), [20, 21, 30]);
  // PID 20 reused by another program (new start time): no longer the IDS, though its PID is remembered.
  const reused = renamed.map((p) => (p.pid === 20 ? { ...p, startTime: 999, comm: "bash", cmdline: "bash" } : p));
  same(reused);
  assert.deepEqual(pids(resolver.resolve(reused).members.get("web1")?.ids), [30]);
  // The same process changing its owner (setuid) is matched again.
  const owned = [cage("o", [{ comm: "qemu" }], [{ cmdline: "veth2", uids: [0], descendants: false }])];
  const ownerResolver = new CageResolver(owned);
  assert.deepEqual(pids(ownerResolver.resolve(table).members.get("o")?.ids), [30]);
  const dropped = table.map((p) => (p.pid === 30 ? { ...p, uids: { real: 65534, effective: 65534 } } : p));
  assert.deepEqual(pids(ownerResolver.resolve(dropped).members.get("o")?.ids), []);
  // Gone and back: a process absent from one table is forgotten, and matched afresh when it returns.
  same(reused.filter((p) => p.pid !== 30));
  same(table);
  assert.deepEqual(pids(resolver.resolve(table).members.get("web1")?.ids), [20, 21]);
});

void test("a libvirt VM is the QEMU process the watcher saw, PID and start time; none when not running", () => {
  const lv: CageSpec = { name: "lv", vm: { kind: "libvirt", domain: "web1", uri: "qemu:///system" }, ids: [{ comm: "aide", descendants: true }], cpu: { cap: 100, idsCap: null, weight: null }, memory: null };
  const running = new Map([["lv", { state: "running" as const, name: "web1", uuid: "u", pid: 10, startTime: 100 }]]);
  assert.deepEqual(pids(resolveCages([lv], table, running).get("lv")?.vm), [10]);
  assert.deepEqual(pids(resolveCages([lv], table, running).get("lv")?.ids), [40]);
  // The PID reused by another process (other start time): a stale PID matches nothing.
  const stale = new Map([["lv", { state: "running" as const, name: "web1", uuid: "u", pid: 10, startTime: 99 }]]);
  assert.deepEqual(pids(resolveCages([lv], table, stale).get("lv")?.vm), []);
  const off = new Map([["lv", { state: "shut-off" as const, name: "web1", uuid: "u", detail: "shut off" as const }]]);
  assert.deepEqual(pids(resolveCages([lv], table, off).get("lv")?.vm), []);
  assert.deepEqual(pids(resolveCages([lv], table).get("lv")?.vm), []);
});

void test("an owner matches when the real and the effective UID are both in it; exe ignores the deleted suffix", () => {
  const table = [
    proc(10, 1, "qemu"),
    proc(20, 1, "aide", { exe: "/usr/bin/aide" }),
    proc(21, 1, "aide", { exe: "/usr/bin/aide", uids: { real: 65534, effective: 65534 }, cmdline: "aide --check" }),
    // A setuid-root binary started by nobody: effective root, but not root's process.
    proc(22, 1, "aide", { exe: "/usr/bin/aide", uids: { real: 65534, effective: 0 } }),
    // A root daemon that switched its effective UID to nobody.
    proc(23, 1, "aide", { exe: "/usr/bin/aide", uids: { real: 0, effective: 65534 } }),
    proc(24, 1, "aide", { exe: "/usr/bin/aide (deleted)" }),
    proc(25, 1, "aide", { exe: "/tmp/aide" }),
  ];
  const byRoot = resolveCages([cage("c", [{ comm: "qemu" }], [{ comm: "aide", uids: [0], exe: "/usr/bin/aide", descendants: false }])], table);
  assert.deepEqual(pids(byRoot.get("c")?.ids), [20, 24]);
  const byNobody = resolveCages([cage("c", [{ comm: "qemu" }], [{ comm: "aide", uids: [65534], descendants: false }])], table);
  assert.deepEqual(pids(byNobody.get("c")?.ids), [21]);
  const either = resolveCages([cage("c", [{ comm: "qemu" }], [{ cmdline: "^aide", uids: [0, 65534], descendants: false }])], table);
  assert.deepEqual(pids(either.get("c")?.ids), [20, 21, 22, 23, 24, 25]);
  const anyone = resolveCages([cage("c", [{ comm: "qemu" }], [{ comm: "aide", descendants: false }])], table);
  assert.deepEqual(pids(anyone.get("c")?.ids), [20, 21, 22, 23, 24, 25]);
});

void test("procFieldsFor: cgroups only for a cgroup matcher or VM, exe only for an exe matcher", () => {
  assert.deepEqual(procFieldsFor([cage("a", [{ cmdline: "qemu" }], [{ comm: "aide", uids: [0] }]), cage("b", [{ pid: 4 }])]), { cgroups: false, exe: false });
  assert.deepEqual(procFieldsFor([cage("a", [{ comm: "qemu" }]), cage("b", [{ comm: "x" }], [{ exe: "/usr/bin/aide", uids: [0] }])]), { cgroups: false, exe: true });
  assert.deepEqual(procFieldsFor([cage("a", [{ cgroup: "/sys/fs/cgroup/unified/vm" }])]), { cgroups: true, exe: false });
  const cgroupVm: CageSpec = { ...cage("c", []), vm: { kind: "cgroup", path: "/sys/fs/cgroup/unified/batch.slice" } };
  assert.deepEqual(procFieldsFor([cgroupVm]), { cgroups: true, exe: false });
  // IDS-VMs count like the cage's own VM.
  assert.deepEqual(procFieldsFor([{ ...cage("d", [{ comm: "qemu" }]), idsVms: [{ kind: "cgroup", path: "/sys/fs/cgroup/unified/ids.slice" }] }]), { cgroups: true, exe: false });
  assert.deepEqual(procFieldsFor([{ ...cage("e", [{ comm: "qemu" }]), idsVms: [{ kind: "qemu", qmpSocket: "/run/ids.qmp", match: [{ exe: "/usr/bin/qemu-system-x86_64", descendants: true }] }] }]), { cgroups: false, exe: true });
  // A cage resolved from a scan that skipped what procFieldsFor says it may skip gets the same members.
  const cages = [cage("web", [{ comm: "qemu" }], [{ cmdline: "-i veth1", uids: [0] }])];
  const bare = table.map((p) => ({ ...p, exe: null, cgroups: { v1: {}, v2: null } }));
  assert.deepEqual(procFieldsFor(cages), { cgroups: false, exe: false });
  const members = (t: ProcessInfo[]): [string, number[], number[]][] => [...resolveCages(cages, t)].map(([name, m]) => [name, pids(m.vm), pids(m.ids)]);
  assert.deepEqual(members(bare), members(table));
  assert.deepEqual(members(bare), [["web", [10, 11, 12, 13], [20, 21]]]);
});

void test("IDS-VMs: a QEMU IDS-VM's process tree and a libvirt IDS-VM's QEMU are IDS, taken from the VM; a Xen one has no processes", () => {
  // The protected VM is every qemu-ish process; the IDS-VM is the QEMU named web1 (10 and its tree).
  const q: CageSpec = {
    ...cage("q", [{ comm: "qemu" }, { comm: "tshark" }]),
    idsVms: [{ kind: "qemu", qmpSocket: "/run/ids.qmp", match: [{ cmdline: "guest=web1", descendants: true }] }],
  };
  const r = resolveCagesDetailed([q], table);
  assert.deepEqual(pids(r.members.get("q")?.ids), [10, 11, 12, 13]);
  assert.deepEqual(pids(r.members.get("q")?.vm), [20, 21, 30]);
  assert.deepEqual(r.conflicts, []);

  const lv: CageSpec = { ...cage("lv", [{ comm: "tshark" }]), idsVms: [{ kind: "xen", domain: "ids-dom" }, { kind: "libvirt", domain: "ids1", uri: "qemu:///system" }] };
  // The libvirt IDS-VM is index 1 of idsVms; under the cage's own name it would be the cage VM's state.
  const running = new Map([[idsVmKey("lv", 1), { state: "running" as const, name: "ids1", uuid: "u", pid: 40, startTime: 400 }]]);
  const resolver = new CageResolver([lv]);
  assert.deepEqual(pids(resolver.resolve(table, running).members.get("lv")?.ids), [40]);
  assert.deepEqual(pids(resolver.resolve(table, new Map([["lv", running.get(idsVmKey("lv", 1))!]])).members.get("lv")?.ids), []);
  const stale = new Map([[idsVmKey("lv", 1), { state: "running" as const, name: "ids1", uuid: "u", pid: 40, startTime: 399 }]]);
  assert.deepEqual(pids(resolver.resolve(table, stale).members.get("lv")?.ids), []);
  assert.deepEqual(pids(resolver.resolve(table, running).members.get("lv")?.vm), [20, 21, 30]);
});

void test("couldMatch: true for a process a matcher, a cgroup VM or a libvirt domain selects, or whose parent is a member; false when a resolution would leave it out", () => {
  const cgroupVm: CageSpec = { ...cage("c", []), vm: { kind: "cgroup", path: "/sys/fs/cgroup/memory/vm1" } };
  const libvirtVm: CageSpec = { ...cage("l", []), vm: { kind: "libvirt", domain: "guest", uri: "qemu:///system" } };
  const cages = [cage("a", [{ comm: "qemu" }], [{ cmdline: "^tshark -i veth1$", uids: [0] }]), cgroupVm, libvirtVm];
  const r = new CageResolver(cages);
  const none = new Set<number>();
  const libvirt = new Map([["l", { state: "running" as const, name: "guest", uuid: "u", pid: 77, startTime: 770 }]]);
  assert.equal(r.couldMatch(proc(50, 1, "qemu"), none), true, "comm matcher");
  assert.equal(r.couldMatch(proc(51, 1, "tshark", { cmdline: "tshark -i veth1" }), none), true, "cmdline matcher with its owner");
  assert.equal(r.couldMatch(proc(51, 1, "tshark", { cmdline: "tshark -i veth1", uids: { real: 1000, effective: 1000 } }), none), false, "another owner");
  assert.equal(r.couldMatch(proc(52, 1, "x", { cgroups: { v1: { memory: "/vm1/sub" }, v2: null } }), none), true, "in the cgroup VM");
  assert.equal(r.couldMatch(proc(77, 1, "qemu-kvm", { startTime: 770 }), none, libvirt), true, "the libvirt domain's QEMU");
  assert.equal(r.couldMatch(proc(77, 1, "qemu-kvm", { startTime: 771 }), none, libvirt), false, "a reused PID is not the domain's");
  assert.equal(r.couldMatch(proc(53, 40, "sha512"), new Set([40])), true, "a child of a member");
  assert.equal(r.couldMatch(proc(53, 40, "sha512"), none), false);
  // What couldMatch rules out, a resolution leaves out.
  for (const p of [proc(54, 1, "bash"), proc(55, 30, "ls")]) {
    assert.equal(r.couldMatch(p, none), false);
    const resolved = r.resolve([...table, p]);
    assert.ok(![...resolved.members.values()].some((m) => [...m.vm, ...m.ids].some((q) => q.pid === p.pid)));
  }
});
