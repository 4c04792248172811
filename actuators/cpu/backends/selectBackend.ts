/**
 * Which back end controls a cage's VM: an explicit `cpu.backend` virsh → virsh, a Xen VM → xl;
 * every other VM goes where the cgroup plan (host/cgroup/cagePlan.ts) puts it: cpu.backend's
 * cgroup, the VM's systemd unit (units.vm: CPUQuota, CPUWeight), a cgroup VM's own cgroup, or
 * for a process or QEMU VM the agent's own group (v1 `<cpu>/offloadcage/<cage>/vm`, v2
 * `<delegated subtree>/cages/<cage>/vm`) with the VM's PIDs moved in.
 */
import type { CageSpec } from "../../../config/cageConfig.js";
import type { CgroupMounts } from "../../../host/cgroup/cgroupMounts.js";
import { planCage, type CgroupLayout } from "../../../host/cgroup/cagePlan.js";
import { systemctlClient, type UnitClient } from "../../../host/systemd/unitProperties.js";
import { cpuBackendForTarget, readLayout } from "../../common/cgroupCpuBackend.js";
import type { CpuBackend } from "../../common/cpuBackend.js";
import { VirshCpuBackend } from "./virshCpuBackend.js";
import { XlCpuBackend } from "./xlCpuBackend.js";

export interface BackendPrograms {
  xl?: string;
  virsh?: string;
  /** systemctl for units.vm (default: the real one). */
  units?: () => UnitClient;
}

export function backendForCage(cage: CageSpec, mounts: CgroupMounts, programs: BackendPrograms = {}, layout: CgroupLayout = readLayout(mounts)): CpuBackend {
  const explicit = cage.cpu.backend;
  if (explicit?.kind === "virsh") return new VirshCpuBackend(explicit.domain, explicit.uri, cage.cpu.weight, programs.virsh);
  if (explicit === undefined && cage.vm.kind === "xen") return new XlCpuBackend(cage.vm.domain, programs.xl);
  return cpuBackendForTarget(planCage(cage, layout).vmCpu, layout, programs.units ?? (() => systemctlClient()));
}
