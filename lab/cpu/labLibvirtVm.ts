/**
 * The VM of `cage lab cpu --vm libvirt`: the project's test guest (lab/common/qemuGuest.ts) as a
 * domain of a private libvirtd (lab/common/libvirtLab.ts), TCG, one vCPU, booted with an
 * initramfs whose /init keeps the vCPU busy. Its conventional cap is the domain's own
 * `global_quota` (the cage's cap), on a 5 ms `global_period` like the cgroup VM's (labCpuRun.ts
 * CFS_PERIOD_US); the period is also written to the definition so a restarted domain keeps it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { findQemuByUuid } from "../../host/libvirt/libvirtDomain.js";
import { quotaUsFor } from "../../host/cgroup/cgroupCpuFiles.js";
import { LibvirtLab } from "../common/libvirtLab.js";
import { buildQemuGuest, cpuBurnerInitrd } from "../common/qemuGuest.js";
import type { CleanupStack } from "./labHost.js";

/** TCG boots the guest in 10 to 40 s on this shared 2-CPU host; allow for a loaded one. */
const BOOT_TIMEOUT_MS = 180_000;
const GUEST_MIB = 256;

export interface LabLibvirtVm {
  domain: string;
  uri: string;
  uuid: string;
  description: string;
  /** The domain's QEMU process now, or null while it is not running. */
  qemuPid(): number | null;
  /** The v1 cpuacct directory of the domain's cgroup (libvirt's), or null while it is not running. */
  cpuacctDir(): string | null;
  /** `virsh schedinfo --live` global_quota, µs (-1 or huge: none). */
  globalQuotaUs(): Promise<number>;
  /** `virsh destroy` then `virsh start`; the wall-clock times each returned. */
  restart(): Promise<{ destroyedAtMs: number; startedAtMs: number }>;
}

/** The cpuacct path of a process from /proc/PID/cgroup (v1: "N:cpuacct:/path" or "N:cpu,cpuacct:/path"). */
export function cpuacctPathOf(cgroupFile: string): string | null {
  for (const line of cgroupFile.split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m && (m[1] as string).split(",").includes("cpuacct")) return m[2] as string;
  }
  return null;
}

/** `virsh schedinfo` "global_quota : N" → N. */
export function parseGlobalQuota(out: string, domain: string): number {
  const m = /^global_quota\s*:\s*(-?\d+)\s*$/m.exec(out);
  if (!m) throw new Error(`lab cpu: virsh schedinfo ${domain} printed no global_quota line:\n${out.trim()}`);
  return Number(m[1]);
}

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
  await guestConsole.waitUntilReady(BOOT_TIMEOUT_MS, () => (findQemuByUuid(uuid) === null ? `lab cpu: the QEMU process of domain ${domain} is gone (serial log ${lab.serialLog(domain)})` : null));
  // The conventional setup: the VM alone capped at the cage's cap (the actuator rewrites it when on).
  await lab.virsh("schedinfo", domain, "--live", "--set", `global_period=${periodUs}`);
  await lab.virsh("schedinfo", domain, "--live", "--set", `global_quota=${quotaUsFor(capPct, periodUs)}`);
  const qemuPid = (): number | null => findQemuByUuid(uuid)?.pid ?? null;
  return {
    domain,
    uri: lab.uri,
    uuid,
    description: `libvirt domain ${domain}: the test guest (TCG, 1 vCPU, ${GUEST_MIB} MiB) running \`while :; do :; done\`, capped through virsh schedinfo global_quota`,
    qemuPid,
    cpuacctDir() {
      const pid = qemuPid();
      if (pid === null) return null;
      try {
        const rel = cpuacctPathOf(readFileSync(`/proc/${pid}/cgroup`, "utf8"));
        // libvirt keeps QEMU's main thread in the domain's emulator/ group, beside vcpuN/: the domain is the parent.
        return rel === null ? null : join("/sys/fs/cgroup/cpuacct", rel.replace(/\/emulator$/, ""));
      } catch {
        return null; // gone meanwhile
      }
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
