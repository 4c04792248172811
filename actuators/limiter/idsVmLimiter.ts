/**
 * The IDS limiter for whole IDS-VMs the hypervisor runs (a cage's `ids: [{ vm: ... }]` of kind
 * libvirt or xen): idsCap goes on the domain itself, `virsh schedinfo --set global_quota` for a
 * libvirt domain, `xl sched-credit[2] -c` for a Xen domain, whatever the limiter's mode, because
 * no host process of ours can be stopped or moved for them (libvirt owns its domain's cgroup; a
 * Xen domain has no host process). QEMU, process and cgroup IDS-VMs need none of this: their
 * processes are IDS processes, limited by the cgroup or sigstop mode like any other.
 * The domain's cap as found is restored on stop, and by the guardian if we die (`failsafe: hold`
 * leaves idsCap in place instead).
 */
import type { Logger } from "pino";
import type { CageSpec, VmSpec } from "../../config/cageConfig.js";
import type { CpuBackend } from "../common/cpuBackend.js";
import type { GuardianClient } from "../common/guardianClient.js";
import type { RestoreAction } from "../common/guardianProtocol.js";
import type { OriginalSettings } from "../common/originalSettings.js";
import { restoreCageSettings } from "../common/restoreSteps.js";
import { VirshCpuBackend } from "../common/virshCpuBackend.js";
import { XlCpuBackend } from "../common/xlCpuBackend.js";

export interface HypervisorPrograms {
  /** Default "xl" from PATH. */
  xl?: string;
  /** Default "virsh" from PATH. */
  virsh?: string;
}

/** The hypervisor back end holding a cage's IDS-VM at idsCap, or null when the cage has no libvirt or Xen IDS-VM. */
export function idsVmBackendFor(cage: CageSpec, programs: HypervisorPrograms = {}): CpuBackend | null {
  const vm = (cage.idsVms ?? []).find((v): v is Extract<VmSpec, { kind: "libvirt" | "xen" }> => v.kind === "libvirt" || v.kind === "xen");
  if (vm === undefined) return null;
  return vm.kind === "xen" ? new XlCpuBackend(vm.domain, programs.xl) : new VirshCpuBackend(vm.domain, vm.uri, null, programs.virsh);
}

/** The key a cage's IDS-VM settings are recorded under (the cgroup mode records under the cage name). */
function originalsKey(cage: string): string {
  return `${cage}/ids-vm`;
}

interface VmState {
  backend: CpuBackend;
  /** idsCap: kept in place under `failsafe: hold` if the limiter dies. */
  failsafeCapPct: number | null;
  prepared: boolean;
  wanted: number | null;
  applied: number | null | undefined;
  /** A sync queued or running, so a tick every 100 ms does not queue another. */
  busy: boolean;
  chain: Promise<void>;
  error: string | null;
}

export interface IdsVmLimiterOptions {
  logger: Logger;
  dryRun: boolean;
  guardian: () => GuardianClient | null;
  originals: () => OriginalSettings | null;
  failsafe: "hold" | "release";
  cages: readonly CageSpec[];
  programs?: HypervisorPrograms;
}

export class IdsVmLimiter {
  private readonly vms = new Map<string, VmState>();

  constructor(private readonly options: IdsVmLimiterOptions) {
    for (const cage of options.cages) {
      const backend = idsVmBackendFor(cage, options.programs);
      if (backend !== null) this.vms.set(cage.name, { backend, failsafeCapPct: cage.cpu.idsCap, prepared: false, wanted: null, applied: undefined, busy: false, chain: Promise.resolve(), error: null });
    }
  }

  /** Whether this cage's IDS is a hypervisor IDS-VM (then the process limiters leave it alone). */
  has(cage: string): boolean {
    return this.vms.has(cage);
  }

  kindOf(cage: string): string | null {
    return this.vms.get(cage)?.backend.kind ?? null;
  }

  errorOf(cage: string): string | null {
    return this.vms.get(cage)?.error ?? null;
  }

  /** Holds the cage's IDS-VM at capPct (null: its cap as found). */
  setCage(name: string, capPct: number | null): void {
    const v = this.vms.get(name);
    if (v === undefined) return;
    v.wanted = capPct;
    if (capPct !== null) v.failsafeCapPct = capPct;
    if (this.options.dryRun || v.busy || v.applied === v.wanted) return;
    v.busy = true;
    v.chain = v.chain.then(() => this.sync(name, v)).finally(() => {
      v.busy = false;
    });
  }

  private async sync(name: string, v: VmState): Promise<void> {
    const want = v.wanted;
    try {
      if (!v.prepared) {
        if (want === null) return; // nothing to limit: do not touch the domain
        const g = this.options.guardian();
        if (g === null) throw new Error("no restore guardian running: not changing anything");
        await v.backend.prepare();
        for (const a of this.restoreActions(name, v)) await g.register(a);
        v.prepared = true;
      }
      await v.backend.apply({ capPct: want, weight: null });
      v.applied = want;
      if (v.error !== null) this.options.logger.info({ cage: name, target: v.backend.target }, "IDS-VM cap works again");
      v.error = null;
      this.options.logger.info({ cage: name, target: v.backend.target, capPct: want }, want === null ? "IDS-VM cap lifted" : "IDS-VM held at idsCap");
    } catch (err) {
      const message = `${v.backend.target}: ${(err as Error).message}`;
      if (v.error !== message) this.options.logger.error({ cage: name, err: message }, "IDS-VM cap failed");
      v.error = message;
    }
  }

  private restoreActions(name: string, v: VmState): RestoreAction[] {
    const fresh = v.backend.restoreActions(this.options.failsafe === "hold" ? (v.failsafeCapPct ?? undefined) : undefined);
    return this.options.originals()?.keep(originalsKey(name), fresh) ?? fresh;
  }

  /** Re-registers the restore actions with a new guardian. */
  async rearmAll(): Promise<void> {
    const g = this.options.guardian();
    if (g === null) return;
    for (const [name, v] of this.vms) {
      if (!v.prepared) continue;
      for (const a of this.restoreActions(name, v)) await g.register(a);
    }
  }

  /** Puts every IDS-VM's cap back as found. True when all went well. */
  async stop(): Promise<boolean> {
    let ok = true;
    for (const [name, v] of this.vms) {
      await v.chain;
      if (!v.prepared) continue;
      try {
        await restoreCageSettings(v.backend, this.options.originals(), originalsKey(name));
      } catch (err) {
        ok = false;
        this.options.logger.error({ cage: name, err: `${v.backend.target}: ${(err as Error).message}` }, "cannot restore the IDS-VM's cap");
      }
    }
    return ok;
  }
}
