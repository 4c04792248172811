import { test } from "node:test";
import assert from "node:assert/strict";
import { cagesProblems } from "../../../config/checks/cageChecks.js";
import { collect } from "./collect.js";

void test("duplicate names name the first, and each cage's sections are checked in file order", () => {
  const { report, lines } = collect();
  cagesProblems(
    [
      { name: "a", vm: { kind: "process", match: [{ descendants: true }] }, cpu: { cap: 10, idsCap: 20 } },
      "not a cage",
      { name: "a", vm: { kind: "qemu" }, cpu: { cap: 10 }, memory: { base: "1GiB", floor: "2GiB" }, ids: [{}] },
    ],
    report,
  );
  assert.deepEqual(lines, [
    "cages[0].cpu.idsCap: must be <= cap (20 > 10)",
    "cages[0].vm.match[0]: must have at least one selector (pid, comm, exe, cmdline, cgroup); descendants alone selects nothing",
    'cages[2].name: duplicate cage name "a" (also cages[0].name)',
    "cages[2].memory.floor: must be <= base (2GiB > 1GiB)",
    "cages[2].ids[0]: must have at least one selector (pid, comm, exe, cmdline, cgroup); descendants alone selects nothing",
    "cages[2].ids[0]: an IDS matcher without uid or user also selects other users' processes, so any user could pose as the IDS (and get the VM capped); add uid: 0 (or user: root), or the IDS's own user with allowNonRoot: true",
  ]);
});

void test("units: no units.vm on a Xen VM; memory.backend systemd needs units.vm", () => {
  const { report, lines } = collect();
  cagesProblems(
    [
      { name: "x", vm: { kind: "xen", domain: "domu1" }, cpu: { cap: 10 }, units: { vm: "domu1.scope" } },
      { name: "p", vm: { kind: "process", match: [{ comm: "qemu" }] }, cpu: { cap: 10 }, memory: { base: "1GiB", floor: "512MiB", backend: "systemd" }, units: { ids: "aide.service" } },
      { name: "ok", vm: { kind: "process", match: [{ comm: "qemu" }] }, cpu: { cap: 10 }, memory: { base: "1GiB", floor: "512MiB", backend: "systemd" }, units: { vm: "vm.scope" } },
    ],
    report,
  );
  assert.deepEqual(lines, [
    "cages[0].units.vm: a Xen domain is not a systemd unit: remove units.vm or change vm.kind",
    "cages[1].memory.backend: systemd needs units.vm (the VM's unit, whose MemoryHigh is set)",
  ]);
});

void test("IDS-VM entries: only `vm`, IDS matcher rules on vm.match, a libvirt or Xen IDS-VM alone and without units.ids", () => {
  const { report, lines } = collect();
  cagesProblems(
    [
      { name: "q", vm: { kind: "process", match: [{ comm: "app" }] }, cpu: { cap: 100, idsCap: 30 }, ids: [{ vm: { kind: "qemu", qmpSocket: "/run/q.sock", match: [{ comm: "qemu-system-x86" }] }, comm: "extra" }] },
      { name: "x", vm: { kind: "process", match: [{ comm: "app" }] }, cpu: { cap: 100, idsCap: 30 }, ids: [{ vm: { kind: "xen", domain: "ids-dom" } }, { comm: "aide", uid: 0 }], units: { ids: "aide.service" } },
      { name: "l", vm: { kind: "process", match: [{ comm: "app" }] }, cpu: { cap: 100, idsCap: 30 }, ids: [{ vm: { kind: "libvirt", domain: "ids1" } }] },
      { name: "ok", vm: { kind: "process", match: [{ comm: "app" }] }, cpu: { cap: 100, idsCap: 30 }, ids: [{ vm: { kind: "qemu", qmpSocket: "/run/q.sock", match: [{ comm: "qemu-system-x86", uid: 0 }] } }, { comm: "aide", uid: 0 }] },
    ],
    report,
  );
  assert.deepEqual(lines, [
    "cages[0].ids[0].comm: an IDS-VM entry has only `vm` (and `cr3From`); put process selectors in an entry of their own (or in vm.match)",
    "cages[0].ids[0].vm.match[0]: an IDS matcher without uid or user also selects other users' processes, so any user could pose as the IDS (and get the VM capped); add uid: 0 (or user: root), or the IDS's own user with allowNonRoot: true",
    "cages[1].ids[0].vm: a xen IDS-VM is capped at idsCap on its own by xl sched-credit: it must be the cage's only ids entry (give the other IDS its own cage)",
    "cages[1].units.ids: the cage's IDS is a xen IDS-VM (ids[0]); units.ids cannot also be capped at idsCap",
  ]);
});

void test("cr3From: only beside a xen IDS-VM; the error names the field and what was found", () => {
  const { report, lines } = collect();
  const base = { vm: { kind: "process", match: [{ comm: "app" }] }, cpu: { cap: 100, idsCap: 30 } };
  cagesProblems(
    [
      { name: "lv", ...base, ids: [{ vm: { kind: "libvirt", domain: "ids1" }, cr3From: "helper" }] },
      { name: "bare", ...base, ids: [{ cr3From: "helper" }] },
      { name: "ok", ...base, ids: [{ vm: { kind: "xen", domain: "ids-dom" }, cr3From: "helper" }] },
    ],
    report,
  );
  assert.deepEqual(lines, [
    "cages[0].ids[0].cr3From: cr3From needs vm.kind xen (CR3s come from xentrace); this IDS-VM is libvirt",
    "cages[1].ids[0].cr3From: cr3From needs vm.kind xen (CR3s come from xentrace); the entry has no vm: add vm: { kind: xen, domain: … }",
  ]);
});
