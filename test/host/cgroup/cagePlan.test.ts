// The cgroup plan, pure: which group is the IDS's and the VM's on a v2-only host under systemd,
// a v2 host without systemd, and a hybrid host (v1 cpu/memory, like this machine).
import { test } from "node:test";
import assert from "node:assert/strict";
import type { CageSpec } from "../../../config/cageConfig.js";
import type { CgroupMounts } from "../../../host/cgroup/cgroupMounts.js";
import { autoMemoryBackend, cgroupLayout, describeTarget, existingGroup, planCage, planCages } from "../../../host/cgroup/cagePlan.js";

const pureV2: CgroupMounts = { v2: "/sys/fs/cgroup", v1: new Map() };
const hybrid: CgroupMounts = { v2: "/sys/fs/cgroup/unified", v1: new Map([["cpu", "/sys/fs/cgroup/cpu"], ["cpuacct", "/sys/fs/cgroup/cpu"], ["memory", "/sys/fs/cgroup/memory"]]) };
const service = "/system.slice/offloadcage.service";

function cage(over: Partial<CageSpec> = {}): CageSpec {
  return { name: "web", vm: { kind: "process", match: [{ comm: "qemu", descendants: true }] }, ids: [{ comm: "aide", descendants: true }], cpu: { cap: 100, idsCap: 20, weight: null }, memory: null, ...over };
}

void test("layout: the service's group is the subtree, the agent lives in its leaf; in the v2 root it is /offloadcage", () => {
  assert.deepEqual(cgroupLayout(pureV2, service), { mounts: pureV2, v2Subtree: "/sys/fs/cgroup/system.slice/offloadcage.service", v2AgentLeaf: "/sys/fs/cgroup/system.slice/offloadcage.service/agent" });
  // Once moved into its leaf, an agent process still names the same subtree.
  assert.equal(cgroupLayout(pureV2, `${service}/agent`).v2Subtree, "/sys/fs/cgroup/system.slice/offloadcage.service");
  assert.deepEqual(cgroupLayout(hybrid, "/"), { mounts: hybrid, v2Subtree: "/sys/fs/cgroup/unified/offloadcage", v2AgentLeaf: null });
  assert.deepEqual(cgroupLayout({ v2: null, v1: hybrid.v1 }, null), { mounts: { v2: null, v1: hybrid.v1 }, v2Subtree: null, v2AgentLeaf: null });
});

void test("v2 under systemd: the limiter's group and page cache's group are one group, in the agent's subtree", () => {
  const plan = planCage(cage(), cgroupLayout(pureV2, service));
  const ids = { kind: "cgroup", dir: "/sys/fs/cgroup/system.slice/offloadcage.service/cages/web/ids", version: 2, own: true };
  assert.deepEqual(plan.idsCpu, ids);
  assert.deepEqual(plan.idsV2, ids);
  assert.deepEqual(plan.vmCpu, { kind: "cgroup", dir: "/sys/fs/cgroup/system.slice/offloadcage.service/cages/web/vm", version: 2, own: true });
  assert.deepEqual(plan.vmMemory, { kind: "none", reason: "cage web: no memory section" });
});

void test("hybrid: cpu limits in v1 groups, every IDS tracked in the agent's one v2 group (v2 has no controllers here)", () => {
  const plan = planCage(cage(), cgroupLayout(hybrid, "/"));
  assert.deepEqual(plan.idsCpu, { kind: "cgroup", dir: "/sys/fs/cgroup/cpu/offloadcage/web/ids", version: 1, own: true });
  assert.deepEqual(plan.idsV2, { kind: "cgroup", dir: "/sys/fs/cgroup/unified/offloadcage/ids", version: 2, own: true });
  assert.deepEqual(planCage(cage(), cgroupLayout(hybrid, service)).idsV2, { kind: "cgroup", dir: "/sys/fs/cgroup/unified/system.slice/offloadcage.service/ids", version: 2, own: true });
  assert.deepEqual(plan.vmCpu, { kind: "cgroup", dir: "/sys/fs/cgroup/cpu/offloadcage/web/vm", version: 1, own: true });
});

void test("units: the IDS's and the VM's units are used as they are, for cpu, page cache and the balloon", () => {
  const memory = { baseBytes: 1 << 30, floorBytes: 1 << 28, failsafeBytes: 1 << 30, balloon: { backend: "auto", libvirtDomain: null, cgroup: null, cgroupV2File: "memory.high" } } as const;
  const c = cage({ units: { ids: "aide.service", vm: "machine-qemu\\x2d1\\x2dvm.scope" }, vm: { kind: "cgroup", path: "/sys/fs/cgroup/machine.slice/machine-qemu\\x2d1\\x2dvm.scope" }, memory: { ...memory, balloon: { ...memory.balloon } } });
  const plan = planCage(c, cgroupLayout(pureV2, service));
  assert.deepEqual(plan.idsCpu, { kind: "unit", unit: "aide.service" });
  assert.deepEqual(plan.idsV2, { kind: "unit", unit: "aide.service" });
  assert.deepEqual(plan.vmCpu, { kind: "unit", unit: "machine-qemu\\x2d1\\x2dvm.scope" });
  assert.deepEqual(plan.vmMemory, { kind: "unit", unit: "machine-qemu\\x2d1\\x2dvm.scope" });
  assert.equal(autoMemoryBackend(c), "systemd");
  // An explicit cgroup back end still wins over the unit for CPU.
  const explicit = planCage({ ...c, cpu: { ...c.cpu, backend: { kind: "cgroup", path: "/sys/fs/cgroup/machine.slice" } } }, cgroupLayout(pureV2, service));
  assert.deepEqual(explicit.vmCpu, { kind: "cgroup", dir: "/sys/fs/cgroup/machine.slice", version: 2, own: false });
});

void test("an IDS selected by its cgroup keeps it: that group is limited and tracked, nothing is moved", () => {
  const c = cage({ ids: [{ cgroup: "/sys/fs/cgroup/system.slice/aide.service", descendants: true }] });
  const plan = planCage(c, cgroupLayout(pureV2, service));
  assert.deepEqual(plan.idsCpu, { kind: "cgroup", dir: "/sys/fs/cgroup/system.slice/aide.service", version: 2, own: false });
  assert.deepEqual(plan.idsV2, plan.idsCpu);
  const two = planCage(cage({ ids: [{ cgroup: "/sys/fs/cgroup/a.service", descendants: true }, { cgroup: "/sys/fs/cgroup/b.service", descendants: true }] }), cgroupLayout(pureV2, service));
  assert.equal(two.idsCpu.kind, "none");
  assert.match(describeTarget(two.idsCpu), /cage web: ids selects by several cgroups \(\/sys\/fs\/cgroup\/a.service, \/sys\/fs\/cgroup\/b.service\)/);
  // Hybrid: a v1 memory cgroup matcher does not pin the cpu group; the IDS moves in the cpu hierarchy only.
  const v1mem = planCage(cage({ ids: [{ cgroup: "/sys/fs/cgroup/memory/ids1", descendants: true }] }), cgroupLayout(hybrid, "/"));
  assert.deepEqual(v1mem.idsCpu, { kind: "cgroup", dir: "/sys/fs/cgroup/cpu/offloadcage/web/ids", version: 1, own: true });
});

void test("the VM: xen and virsh have no cgroup; a VM matched by its cpu cgroup is not moved; the reasons say why", () => {
  const layout = cgroupLayout(pureV2, service);
  assert.deepEqual(planCage(cage({ vm: { kind: "xen", domain: "domu1" } }), layout).vmCpu, { kind: "none", reason: "cage web: a Xen domain (xl)" });
  assert.deepEqual(planCage(cage({ cpu: { cap: 100, idsCap: null, weight: null, backend: { kind: "virsh", domain: "vm1", uri: null } } }), layout).vmCpu, { kind: "none", reason: "cage web: cpu.backend virsh (libvirt domain vm1)" });
  const clash = planCage(cage({ vm: { kind: "process", match: [{ cgroup: "/sys/fs/cgroup/machine.slice/vm1.scope", descendants: true }] } }), layout).vmCpu;
  assert.equal(clash.kind, "none");
  assert.match(describeTarget(clash), /vm.match selects by cgroup \/sys\/fs\/cgroup\/machine.slice\/vm1.scope, in the cpu hierarchy; .*set cpu.backend \{kind: cgroup, path: .*\} or units.vm/);
  // No cgroup hierarchy at all: every target names why.
  const none = planCage(cage(), cgroupLayout({ v2: null, v1: new Map() }, null));
  assert.deepEqual(none.idsCpu, { kind: "none", reason: "cage web: no cgroup hierarchy with the cpu controller is mounted" });
  assert.deepEqual(none.idsV2, { kind: "none", reason: "cage web: no cgroup2 hierarchy is mounted" });
});

void test("balloon targets: memory.cgroup as found, systemd needs units.vm, a process VM without either has none", () => {
  const layout = cgroupLayout(hybrid, "/");
  const mem = (backend: "auto" | "cgroup" | "systemd", cgroup: string | null) => ({ baseBytes: 1, floorBytes: 1, failsafeBytes: 1, balloon: { backend, libvirtDomain: null, cgroup, cgroupV2File: "memory.max" as const } });
  assert.deepEqual(planCage(cage({ memory: mem("auto", "/sys/fs/cgroup/memory/vm1") }), layout).vmMemory, { kind: "cgroup", dir: "/sys/fs/cgroup/memory/vm1", version: 1, own: false });
  assert.match(describeTarget(planCage(cage({ memory: mem("systemd", null) }), layout).vmMemory), /memory.backend systemd needs units.vm/);
  assert.match(describeTarget(planCage(cage({ memory: mem("auto", null) }), layout).vmMemory), /a process VM has no balloon; set memory.cgroup .*units.vm/);
});

void test("existingGroup maps a path to the controller's hierarchy; planCages plans each cage by name", () => {
  assert.deepEqual(existingGroup("/sys/fs/cgroup/memory/a/vm1", hybrid, "cpu"), { kind: "cgroup", dir: "/sys/fs/cgroup/cpu/a/vm1", version: 1, own: false });
  assert.throws(() => existingGroup("/srv/x", hybrid, "cpu"), /\/srv\/x: not in any mounted cgroup hierarchy/);
  const plans = planCages([cage(), cage({ name: "db" })], cgroupLayout(pureV2, service));
  assert.deepEqual([...plans.keys()], ["web", "db"]);
  assert.equal((plans.get("db")?.idsCpu as { dir: string }).dir, "/sys/fs/cgroup/system.slice/offloadcage.service/cages/db/ids");
});
