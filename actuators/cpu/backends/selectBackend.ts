/**
 * Which back end controls a cage's VM. An explicit `cpu.backend` wins; otherwise the VM kind
 * decides: a cgroup VM → its own cgroup (v1 or v2 from the path), a Xen VM → xl, a process or
 * QEMU VM → the actuator's own cgroup `offloadcage/<cage>/vm` in the cpu hierarchy, with the
 * VM's PIDs moved in.
 */
import type { Logger } from "pino";
import type { CageSpec } from "../../../config/cageConfig.js";
import type { CgroupMounts } from "../../../host/cgroup/cgroupMounts.js";
import { CgroupCpuBackend, cpuCgroupFor, ownCageCgroup, ownCpuRoot } from "../../common/cgroupCpuBackend.js";
import { CpuBackendError, type CpuBackend } from "../../common/cpuBackend.js";
import { VirshCpuBackend } from "./virshCpuBackend.js";
import { XlCpuBackend } from "./xlCpuBackend.js";

export interface BackendPrograms {
  xl?: string;
  virsh?: string;
}

/** `logger` receives the own cgroup's reports of skipped moves (reused PIDs). */
export function backendForCage(cage: CageSpec, mounts: CgroupMounts, programs: BackendPrograms = {}, logger?: Logger): CpuBackend {
  const explicit = cage.cpu.backend;
  if (explicit?.kind === "virsh") return new VirshCpuBackend(explicit.domain, explicit.uri, cage.cpu.weight, programs.virsh);
  if (explicit?.kind === "cgroup") {
    const c = cpuCgroupFor(explicit.path, mounts);
    return new CgroupCpuBackend({ path: c.path, version: c.version, own: false });
  }
  switch (cage.vm.kind) {
    case "xen":
      return new XlCpuBackend(cage.vm.domain, programs.xl);
    case "libvirt":
      // libvirt owns the domain's cgroup: capped through schedinfo global_quota (virshCpuBackend.ts).
      return new VirshCpuBackend(cage.vm.domain, cage.vm.uri, cage.cpu.weight, programs.virsh);
    case "cgroup": {
      const c = cpuCgroupFor(cage.vm.path, mounts);
      return new CgroupCpuBackend({ path: c.path, version: c.version, own: false });
    }
    case "process":
    case "qemu": {
      // Moving the VM's PIDs into our cgroup would take them out of a cpu cgroup a matcher selects them by.
      const { root } = ownCpuRoot(mounts);
      const clash = cage.vm.match.find((m) => m.cgroup !== undefined && (m.cgroup === root || m.cgroup.startsWith(`${root}/`)));
      if (clash) {
        throw new CpuBackendError(`cage ${cage.name}: vm.match selects by cgroup ${clash.cgroup}, in the cpu hierarchy; moving the VM into offloadcage/${cage.name}/vm would change what it matches: set cpu.backend {kind: cgroup, path: ${clash.cgroup}}`);
      }
      return ownCageCgroup(cage.name, "vm", mounts, logger);
    }
  }
}
