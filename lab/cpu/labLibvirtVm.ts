/**
 * The VM of `cage lab cpu --vm libvirt`: the project's test guest (lab/common/qemuGuest.ts) as a
 * domain of a private libvirtd (lab/common/libvirtLab.ts), TCG, one vCPU, booted with an
 * initramfs whose /init keeps the vCPU busy. Its conventional cap is the domain's own
 * `global_quota` (the cage's cap), on a 5 ms `global_period` like the cgroup VM's (labCpuRun.ts
 * CFS_PERIOD_US); the period is also written to the definition so a restarted domain keeps it.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { findQemuByUuid } from "../../host/libvirt/libvirtDomain.js";
import { QemuThreadCpu } from "../../host/libvirt/qemuThreads.js";
import { quotaUsFor } from "../../host/cgroup/cgroupCpuFiles.js";
import { parseVirshSchedinfo } from "../../actuators/common/virshSchedinfo.js";
import { GUEST_BOOT_TIMEOUT_MS, LibvirtLab } from "../common/libvirtLab.js";
import { buildQemuGuest, cpuBurnerInitrd } from "../common/qemuGuest.js";
import type { CleanupStack } from "./labHost.js";

const GUEST_MIB = 256;

export interface LabLibvirtVm {
  domain: string;
  uri: string;
  uuid: string;
  description: string;
  /** The domain's QEMU process now, or null while it is not running. */
  qemuPid(): number | null;
  /**
   * The kernel's count of the domain's CPU: ns its QEMU threads spent on CPU (their own
   * /proc/PID/task/TID/schedstat, cumulative; from zero again after a restart), or null while
   * it is not running. libvirt here puts QEMU in a v1 cpu group but no cpuacct group.
   */
  kernelCpuNs(): number | null;
  /** `virsh schedinfo --live` global_quota, µs (-1 or huge: none). */
  globalQuotaUs(): Promise<number>;
  /** `virsh destroy` then `virsh start`; the wall-clock times each returned. */
  restart(): Promise<{ destroyedAtMs: number; startedAtMs: number }>;
}

/** A process's path in one v1 hierarchy from /proc/PID/cgroup ("N:cpu:/path" or "N:cpu,cpuacct:/path"). */
export function v1CgroupPathOf(cgroupFile: string, controller: string): string | null {
  for (const line of cgroupFile.split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m && (m[1] as string).split(",").includes(controller)) return m[2] as string;
  }
  return null;
}

/**
 * The lab gives its own groups large cpu.shares (labCpuRun.ts LAB_CPU_SHARES) so the shared host's
 * other work does not starve the experiment below its caps; libvirt's domain sits in machine/, a
 * sibling of those at the root: the domain (through virsh) and each of its ancestor groups get the
 * same shares, and the ancestors their old value back at the end.
 */
async function raiseShares(domain: string, pid: number | null, lab: LibvirtLab, cleanup: CleanupStack, progress: (line: string) => void): Promise<void> {
  if (pid === null) throw new Error(`lab cpu: domain ${domain} has no QEMU process after booting`);
  await lab.virsh("schedinfo", domain, "--live", "--set", `cpu_shares=${LAB_CPU_SHARES}`);
  const rel = v1CgroupPathOf(readFileSync(`/proc/${pid}/cgroup`, "utf8"), "cpu");
  if (rel === null) throw new Error(`lab cpu: QEMU ${pid} of domain ${domain} is in no v1 cpu group (/proc/${pid}/cgroup)`);
  const all = rel.split("/").filter((p) => p !== "");
  // libvirt may keep QEMU's main thread in the domain's emulator/ group, beside vcpuN/.
  const parts = all.at(-1) === "emulator" ? all.slice(0, -1) : all;
  // The ancestors of the domain's own group (libvirt's machine/ partition), outermost first.
  for (let i = 1; i < parts.length; i++) {
    const file = join("/sys/fs/cgroup/cpu", ...parts.slice(0, i), "cpu.shares");
    const before = readFileSync(file, "utf8").trim();
    writeFileSync(file, String(LAB_CPU_SHARES));
    cleanup.push(`cpu.shares of ${file}`, () => writeFileSync(file, before));
    progress(`cpu.shares of ${file}: ${before} -> ${LAB_CPU_SHARES} for the run`);
  }
}

/** `virsh schedinfo` "global_quota : N" → N (the CPU back end's parser). */
export function parseGlobalQuota(out: string, domain: string): number {
  const quota = parseVirshSchedinfo(out, `lab cpu: virsh schedinfo ${domain}`).params.get("global_quota");
  if (quota === undefined) throw new Error(`lab cpu: virsh schedinfo ${domain} printed no global_quota line:\n${out.trim()}`);
  return quota;
}

/** cpu.shares of the lab's groups (labCpuRun.ts). */
export const LAB_CPU_SHARES = 8192;

export async function startLabLibvirtVm(dir: string, capPct: number, periodUs: number, cleanup: CleanupStack, progress: (line: string) => void): Promise<LabLibvirtVm> {
  const lab = await LibvirtLab.start();
  cleanup.push(`private libvirtd ${lab.dir}`, () => lab.stop());
  const domain = `oc-labcpu-${process.pid}`;
  const image = await buildQemuGuest();
  const uuid = await lab.define(domain, { memoryMiB: GUEST_MIB, initrd: cpuBurnerInitrd(image, dir) });
  // In the definition too: a restarted domain gets its period from there, and the cage's quotas are computed on it.
  await lab.virsh("schedinfo", domain, "--config", "--set", `global_period=${periodUs}`);
  await lab.virsh("start", domain);
  progress(`VM: libvirt domain ${domain} (${lab.uri}) booting the test guest under TCG`);
  const guestConsole = lab.console(domain);
  await guestConsole.waitUntilReady(GUEST_BOOT_TIMEOUT_MS, () => (findQemuByUuid(uuid) === null ? `lab cpu: the QEMU process of domain ${domain} is gone (serial log ${lab.serialLog(domain)})` : null));
  // The conventional setup: the VM alone capped at the cage's cap (the actuator rewrites it when on).
  await lab.virsh("schedinfo", domain, "--live", "--set", `global_period=${periodUs}`);
  await lab.virsh("schedinfo", domain, "--live", "--set", `global_quota=${quotaUsFor(capPct, periodUs)}`);
  const qemuPid = (): number | null => findQemuByUuid(uuid)?.pid ?? null;
  const threadCpu = new QemuThreadCpu();
  await raiseShares(domain, qemuPid(), lab, cleanup, progress);
  return {
    domain,
    uri: lab.uri,
    uuid,
    description: `libvirt domain ${domain}: the test guest (TCG, 1 vCPU, ${GUEST_MIB} MiB) running \`while :; do :; done\`, capped through virsh schedinfo global_quota`,
    qemuPid,
    kernelCpuNs() {
      const pid = qemuPid();
      if (pid === null) return null;
      const s = threadCpu.sample(pid);
      return Math.round((s.vcpu + s.emulator + s.vhost) * 1e9);
    },
    async globalQuotaUs() {
      return parseGlobalQuota(await lab.virsh("schedinfo", domain, "--live"), domain);
    },
    async restart() {
      await lab.virsh("destroy", domain);
      const destroyedAtMs = Date.now();
      await lab.virsh("start", domain);
      return { destroyedAtMs, startedAtMs: Date.now() };
    },
  };
}
