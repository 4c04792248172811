/**
 * libvirt back end: `virsh [-c URI] schedinfo DOM --live --set global_quota=Q` (and
 * `cpu_shares=S`), one parameter per call so it works whatever virsh version parses `--set`.
 * The whole domain is capped (global_*): the cage's cap is one budget for everything the VM costs
 * the host, and global_quota bounds libvirt's domain cgroup, which holds the vCPU, emulator and
 * I/O threads (and vhost workers, QEMU threads since Linux 6.4). vcpu_quota would bound each vCPU
 * separately and leave the emulator free; emulator_quota the reverse. cpu_shares is scaled from the value
 * found by the ratio weight'/weight, so it does not matter whether this libvirt writes it to v1
 * cpu.shares (1024 scale) or v2 cpu.weight (100 scale).
 */
import type { RestoreAction } from "./guardianProtocol.js";
import { runCommand } from "../../host/commandRunner.js";
import type { CpuTarget } from "./cpuBackend.js";
import type { ProcessIdentity } from "../../host/proc/processIdentity.js";
import { MIN_QUOTA_US, quotaUsFor } from "../../host/cgroup/cgroupCpuFiles.js";
import { CpuBackendError, type CpuBackend } from "./cpuBackend.js";
import { isUnlimitedQuota, parseVirshSchedinfo } from "./virshSchedinfo.js";

const DOMAIN = /^[A-Za-z0-9_][A-Za-z0-9._:+-]{0,127}$/;
const URI = /^[a-z][a-z0-9+]*:\/\/[^\s]*$/;

interface Original {
  shares: number;
  periodUs: number;
  quotaUs: number;
}

export class VirshCpuBackend implements CpuBackend {
  readonly kind = "virsh";
  readonly target: string;
  private original: Original | null = null;
  /** The target the last successful apply() set, set again when the domain restarts. */
  private lastApplied: CpuTarget | null = null;
  /** The domain's QEMU process (pid@startTime) when last seen running. */
  private membersKey: string | null = null;
  private applying: Promise<void> = Promise.resolve();

  constructor(
    private readonly domain: string,
    private readonly uri: string | null,
    /** The cage's configured weight: the shares found stand for it. */
    private readonly configWeight: number | null,
    private readonly program = "virsh",
  ) {
    if (!DOMAIN.test(domain)) throw new CpuBackendError(`libvirt domain ${JSON.stringify(domain)}: must match ${DOMAIN.source}`);
    if (uri !== null && !URI.test(uri)) throw new CpuBackendError(`libvirt URI ${JSON.stringify(uri)}: must look like qemu:///system`);
    this.target = `libvirt domain ${domain}`;
  }

  private base(): string[] {
    return this.uri === null ? [] : ["-c", this.uri];
  }

  /** argv (after the program) that sets one scheduler parameter of the running domain. */
  setArgs(name: string, value: number): string[] {
    return [...this.base(), "schedinfo", this.domain, "--live", "--set", `${name}=${value}`];
  }

  async open(): Promise<void> {
    const args = [...this.base(), "schedinfo", this.domain, "--live"];
    const out = await runCommand(this.program, args);
    const info = parseVirshSchedinfo(out.stdout, `virsh ${args.join(" ")}`);
    const get = (name: string): number => {
      const v = info.params.get(name);
      if (v === undefined) throw new CpuBackendError(`virsh schedinfo ${this.domain}: no ${name} (scheduler ${info.scheduler}; global_period/global_quota need libvirt >= 1.3.3 and the QEMU driver)`);
      return v;
    };
    const periodUs = get("global_period");
    this.original = { shares: get("cpu_shares"), periodUs: periodUs > 0 ? periodUs : 100000, quotaUs: isUnlimitedQuota(get("global_quota")) ? -1 : get("global_quota") };
  }

  async prepare(): Promise<void> {
    if (this.original === null) await this.open();
  }

  private requireOriginal(): Original {
    if (this.original === null) throw new CpuBackendError(`${this.target}: not opened`);
    return this.original;
  }

  restoreActions(failsafeCapPct?: number): RestoreAction[] {
    const original = this.requireOriginal();
    const key = `virsh:${this.domain.replace(/[^A-Za-z0-9:._-]/g, "_")}`;
    const failsafe = failsafeCapPct === undefined ? {} : { failsafeArgv: [this.program, ...this.setArgs("global_quota", Math.max(MIN_QUOTA_US, quotaUsFor(failsafeCapPct, original.periodUs)))] };
    return [
      { op: "exec", key: `${key}:quota`, argv: [this.program, ...this.setArgs("global_quota", original.quotaUs)], ...failsafe },
      { op: "exec", key: `${key}:shares`, argv: [this.program, ...this.setArgs("cpu_shares", original.shares)] },
    ];
  }

  /** The argv lists apply() runs for a target, in order. */
  applyCommands(t: CpuTarget): string[][] {
    const original = this.requireOriginal();
    const cmds = [this.setArgs("global_quota", t.capPct === null ? original.quotaUs : Math.max(MIN_QUOTA_US, quotaUsFor(t.capPct, original.periodUs)))];
    if (t.weight !== null && this.configWeight !== null) cmds.push(this.setArgs("cpu_shares", Math.max(2, Math.round((original.shares * t.weight) / this.configWeight))));
    return cmds;
  }

  async apply(t: CpuTarget): Promise<void> {
    // One change at a time: a re-apply after a restart never lands after a newer target.
    const run = this.applying.then(async () => {
      for (const args of this.applyCommands(t)) await runCommand(this.program, args);
      this.lastApplied = t;
    });
    this.applying = run.catch(() => undefined);
    await run;
  }

  /**
   * libvirt keeps the domain's processes in its own cgroup: nothing to move. A new QEMU process
   * means the domain was restarted, and it starts with the scheduler settings of its definition,
   * not the cage's: the last target applied is set again.
   */
  async adoptPids(members: readonly ProcessIdentity[]): Promise<void> {
    if (members.length === 0) return; // shut off: nothing to set until it runs again
    const key = members.map((p) => `${p.pid}@${p.startTime}`).join(",");
    const previous = this.membersKey;
    this.membersKey = key;
    if (previous === null || previous === key || this.lastApplied === null) return;
    try {
      await this.apply(this.lastApplied);
    } catch (err) {
      // Not adopted: the actuator calls again and this re-apply is retried.
      this.membersKey = previous;
      throw err;
    }
  }

  async restore(): Promise<void> {
    const original = this.original;
    if (original === null) return;
    await runCommand(this.program, this.setArgs("global_quota", original.quotaUs));
    await runCommand(this.program, this.setArgs("cpu_shares", original.shares));
  }
}
