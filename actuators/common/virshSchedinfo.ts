/**
 * `virsh schedinfo DOM --live` output, pure and strict:
 *   Scheduler      : posix
 *   cpu_shares     : 1024
 *   vcpu_period    : 100000
 *   vcpu_quota     : -1
 *   emulator_period: 100000
 *   ...
 *   global_period  : 100000
 *   global_quota   : -1
 * (libvirt's QEMU driver, "posix" scheduler). global_period/global_quota bound the whole domain
 * (all vCPUs together, libvirt >= 1.3.3); vcpu_quota would bound each vCPU separately.
 */
import { CpuBackendError } from "./cpuBackend.js";

export interface VirshSchedinfo {
  scheduler: string;
  params: Map<string, number>;
}

export function parseVirshSchedinfo(text: string, command: string): VirshSchedinfo {
  let scheduler: string | null = null;
  const params = new Map<string, number>();
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const m = /^([A-Za-z_]+)\s*:\s*(\S+)\s*$/.exec(line);
    if (!m) throw new CpuBackendError(`${command}: line ${i + 1} is not "name : value": ${JSON.stringify(line.slice(0, 80))}`);
    const [, name, value] = m as unknown as [string, string, string];
    if (name === "Scheduler") {
      scheduler = value;
      return;
    }
    if (!/^-?[0-9]+$/.test(value)) throw new CpuBackendError(`${command}: line ${i + 1}: ${name} is not an integer: ${JSON.stringify(value)}`);
    params.set(name, Number(value));
  });
  if (scheduler === null) throw new CpuBackendError(`${command}: no "Scheduler" line`);
  return { scheduler, params };
}

/** libvirt shows an unlimited quota as -1, or (cgroup v2 hosts) as a huge number; both mean "no cap". */
export const VIRSH_QUOTA_UNLIMITED_FROM = 17592186044415;

export function isUnlimitedQuota(q: number): boolean {
  return q < 0 || q >= VIRSH_QUOTA_UNLIMITED_FROM;
}
