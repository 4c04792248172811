/**
 * Which balloon back end a cage uses (pure), and building it. `auto` picks as the cgroup plan
 * does (host/cgroup/cagePlan.ts autoMemoryBackend): qemu → QMP on vm.qmpSocket, xen → xl on
 * vm.domain, libvirt → virsh on the domain, a VM with units.vm → its unit's MemoryHigh (systemd),
 * cgroup → the VM's own cgroup;
 * a process VM needs memory.cgroup (the memory cgroup its processes run in) or units.vm.
 */
import type { BalloonActuatorSpec, CageSpec } from "../../config/cageConfig.js";
import type { BalloonBackend } from "./balloonBackend.js";
import { CgroupBalloonBackend } from "./cgroupBalloonBackend.js";
import { VirshBalloonBackend, XlBalloonBackend } from "./commandBackends.js";
import { QmpBalloonBackend } from "./qmpBalloonBackend.js";
import { SystemdBalloonBackend } from "./systemdBalloonBackend.js";
import { autoMemoryBackend } from "../../host/cgroup/cagePlan.js";
import { systemctlClient } from "../../host/systemd/unitProperties.js";

export type BackendChoice =
  | { kind: "qmp"; socket: string }
  | { kind: "xl"; domain: string | number }
  | { kind: "virsh"; domain: string; uri: string | null }
  | { kind: "cgroup"; path: string; v2File: "memory.max" | "memory.high" }
  | { kind: "systemd"; unit: string; property: "MemoryHigh" | "MemoryMax" };

export type ChoiceResult = { ok: true; choice: BackendChoice } | { ok: false; error: string };

export function chooseBackend(cage: CageSpec): ChoiceResult {
  const memory = cage.memory;
  if (memory === null) return { ok: false, error: `cage ${cage.name}: no memory section (base, floor), nothing to balloon` };
  const b = memory.balloon;
  const vm = cage.vm;
  const fail = (why: string): ChoiceResult => ({ ok: false, error: `cage ${cage.name}: memory.backend ${b.backend}: ${why}` });
  const backend = b.backend === "auto" ? autoMemoryBackend(cage) : b.backend;
  switch (backend) {
    case "qmp":
      return vm.kind === "qemu" ? { ok: true, choice: { kind: "qmp", socket: vm.qmpSocket } } : fail(`needs a qemu VM, this one is ${vm.kind}`);
    case "xl":
      return vm.kind === "xen" ? { ok: true, choice: { kind: "xl", domain: vm.domain } } : fail(`needs a xen VM, this one is ${vm.kind}`);
    case "virsh":
      if (vm.kind === "libvirt") return { ok: true, choice: { kind: "virsh", domain: b.libvirtDomain ?? vm.domain, uri: vm.uri } };
      return b.libvirtDomain !== null ? { ok: true, choice: { kind: "virsh", domain: b.libvirtDomain, uri: null } } : fail("needs memory.libvirtDomain or a libvirt VM");
    case "cgroup": {
      const path = b.cgroup ?? (vm.kind === "cgroup" ? vm.path : null);
      return path !== null ? { ok: true, choice: { kind: "cgroup", path, v2File: b.cgroupV2File } } : fail("needs memory.cgroup (or a cgroup VM)");
    }
    case "systemd": {
      const unit = cage.units?.vm ?? null;
      // memory.high throttles and reclaims; memory.max OOM-kills: the same choice as cgroupV2File.
      return unit !== null ? { ok: true, choice: { kind: "systemd", unit, property: b.cgroupV2File === "memory.high" ? "MemoryHigh" : "MemoryMax" } } : fail("needs units.vm (the VM's systemd unit)");
    }
    case null:
      return { ok: false, error: `cage ${cage.name}: a ${vm.kind} VM has no balloon; set memory.cgroup (its memory cgroup), units.vm or memory.backend` };
  }
}

export function createBackend(choice: BackendChoice, spec: BalloonActuatorSpec, onProtocolError?: (message: string) => void): BalloonBackend {
  switch (choice.kind) {
    case "qmp":
      return new QmpBalloonBackend(choice.socket, { commandTimeoutMs: spec.commandTimeoutMs, ...(onProtocolError ? { onProtocolError } : {}) });
    case "xl":
      return new XlBalloonBackend(choice.domain, { commandPath: spec.xlPath, timeoutMs: spec.commandTimeoutMs });
    case "virsh":
      return new VirshBalloonBackend(choice.domain, { commandPath: spec.virshPath, timeoutMs: spec.commandTimeoutMs, uri: choice.uri });
    case "cgroup":
      return new CgroupBalloonBackend(choice.path, choice.v2File);
    case "systemd":
      return new SystemdBalloonBackend(choice.unit, choice.property, systemctlClient(undefined, spec.commandTimeoutMs));
  }
}
