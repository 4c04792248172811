/**
 * Xen back end: `xl sched-credit -d DOM -c CAP -w WEIGHT` on a credit1 host, `xl sched-credit2`
 * on a credit2 host (4.17's default); which one is read from `xl info`'s xen_scheduler. The
 * domain's cap and weight as found are restored on exit (and by the guardian if we die).
 */
import type { RestoreAction } from "./guardianProtocol.js";
import { runCommand } from "../../host/commandRunner.js";
import type { CpuTarget } from "./cpuBackend.js";
import { CpuBackendError, xenWeightFor, type CpuBackend } from "./cpuBackend.js";
import { findDomainRow, parseXlInfo, parseXlSchedTable, xenSchedulerOf, type XenScheduler } from "./xlSchedOutput.js";

const DOMAIN_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;

export function checkXenDomain(domain: string | number): string {
  if (typeof domain === "number") {
    if (!Number.isInteger(domain) || domain < 0 || domain > 32767) throw new CpuBackendError(`xen domain id must be an integer 0..32767, got ${domain}`);
    return String(domain);
  }
  if (!DOMAIN_NAME.test(domain)) throw new CpuBackendError(`xen domain name ${JSON.stringify(domain)}: must match ${DOMAIN_NAME.source}`);
  return domain;
}

/** A cap in % of one CPU as xl's integer cap: at least 1, because 0 means "no cap" to Xen. */
export function xenCapFor(capPct: number): number {
  return Math.max(1, Math.round(capPct));
}

export class XlCpuBackend implements CpuBackend {
  kind = "xl";
  readonly target: string;
  private readonly dom: string;
  private scheduler: XenScheduler | null = null;
  private original: { cap: number; weight: number } | null = null;

  constructor(
    private readonly domain: string | number,
    private readonly program = "xl",
  ) {
    this.dom = checkXenDomain(domain);
    this.target = `xen domain ${this.dom}`;
  }

  private get sub(): string {
    return this.scheduler === "credit2" ? "sched-credit2" : "sched-credit";
  }

  async open(): Promise<void> {
    const info = await runCommand(this.program, ["info"]);
    this.scheduler = xenSchedulerOf(parseXlInfo(info.stdout));
    this.kind = this.scheduler === "credit2" ? "xl-credit2" : "xl-credit";
    const listing = await runCommand(this.program, [this.sub]);
    const row = findDomainRow(parseXlSchedTable(listing.stdout, `xl ${this.sub}`), this.domain, `xl ${this.sub}`);
    this.original = { cap: row.cap, weight: row.weight };
  }

  async prepare(): Promise<void> {
    if (this.original === null) await this.open();
  }

  private setArgs(cap: number, weight: number | null): string[] {
    return [this.sub, "-d", this.dom, "-c", String(cap), ...(weight === null ? [] : ["-w", String(weight)])];
  }

  restoreActions(failsafeCapPct?: number): RestoreAction[] {
    const original = this.requireOriginal();
    const failsafe = failsafeCapPct === undefined ? {} : { failsafeArgv: [this.program, ...this.setArgs(xenCapFor(failsafeCapPct), original.weight)] };
    return [{ op: "exec", key: `xl:${this.dom}`, argv: [this.program, ...this.setArgs(original.cap, original.weight)], ...failsafe }];
  }

  private requireOriginal(): { cap: number; weight: number } {
    if (this.original === null) throw new CpuBackendError(`${this.target}: not opened`);
    return this.original;
  }

  /** The argv (after the program) that apply() runs for a target. */
  applyArgs(t: CpuTarget): string[] {
    const original = this.requireOriginal();
    return this.setArgs(t.capPct === null ? original.cap : xenCapFor(t.capPct), t.weight === null ? null : xenWeightFor(t.weight));
  }

  async apply(t: CpuTarget): Promise<void> {
    await runCommand(this.program, this.applyArgs(t));
  }

  async adoptPids(): Promise<void> {
    // A Xen domain has no PIDs on the host.
  }

  async restore(): Promise<void> {
    if (this.original === null) return;
    await runCommand(this.program, this.setArgs(this.original.cap, this.original.weight));
  }
}
