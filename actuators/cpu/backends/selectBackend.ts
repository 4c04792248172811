/**
 * Which back end controls a cage's VM: an explicit `cpu.backend` virsh → virsh, a Xen VM → xl,
 * a libvirt VM → virsh on its domain;
 * every other VM goes where the cgroup plan (host/cgroup/cagePlan.ts) puts it: cpu.backend's
 * cgroup, the VM's systemd unit (units.vm: CPUQuota, CPUWeight), a cgroup VM's own cgroup, or
 * for a process or QEMU VM the agent's own group (v1 `<cpu>/offloadcage/<cage>/vm`, v2
 * `<delegated subtree>/cages/<cage>/vm`) with the VM's PIDs moved in.
 */
import type { Logger } from "pino";
import type { CageSpec } from "../../../config/cageConfig.js";
import type { CgroupMounts } from "../../../host/cgroup/cgroupMounts.js";
import { planCage, type CgroupLayout } from "../../../host/cgroup/cagePlan.js";
import { systemctlClient, type UnitClient } from "../../../host/systemd/unitProperties.js";
import { cpuBackendForTarget, readLayout } from "../../common/cgroupCpuBackend.js";
import type { CpuBackend } from "../../common/cpuBackend.js";
import { VirshCpuBackend } from "../../common/virshCpuBackend.js";
import { XlCpuBackend } from "../../common/xlCpuBackend.js";

export interface BackendPrograms {
  xl?: string;
  virsh?: string;
  /** systemctl for units.vm (default: the real one). */
  units?: () => UnitClient;
}

/** `logger` receives the own cgroup's reports of skipped moves (reused PIDs). */
export function backendForCage(cage: CageSpec, mounts: CgroupMounts, programs: BackendPrograms = {}, layout: CgroupLayout = readLayout(mounts), logger?: Logger): CpuBackend {
  const explicit = cage.cpu.backend;
  if (explicit?.kind === "virsh") return new VirshCpuBackend(explicit.domain, explicit.uri, cage.cpu.weight, programs.virsh);
  if (explicit === undefined && cage.vm.kind === "xen") return new XlCpuBackend(cage.vm.domain, programs.xl);
  // libvirt owns the domain's cgroup: capped through schedinfo global_quota (virshCpuBackend.ts).
  if (explicit === undefined && cage.vm.kind === "libvirt") return new VirshCpuBackend(cage.vm.domain, cage.vm.uri, cage.cpu.weight, programs.virsh);
  return cpuBackendForTarget(planCage(cage, layout).vmCpu, layout, programs.units ?? (() => systemctlClient()), logger);
}
