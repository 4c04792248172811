// Turns cumulative run-time snapshots into per-window raw.xen payloads. Pure.
//
// DomainRunTimeAccounting.snapshot() counts a running vCPU up to the latest TSC seen. Nearly always
// the next snapshot is larger, but not quite always: at the end of a trace each pCPU's running vCPU
// is charged only up to that pCPU's own last TSC (as xenalyze does), and a span the accounting finds
// inconsistent is dropped after the fact. A window never reports negative time: a vCPU whose total
// went down reports 0 and the shortfall is taken out of its next windows, so the sum over windows
// equals the largest total reached (the final total, to within that end-of-trace overshoot).

import type { RunTimeSnapshot } from "./domainRunTime.js";
import type { XenDomainCpu, XenDomainCpuEntry, XenVcpuCpu } from "../../protocol/xenDomainCpu.js";

export interface WindowCycles {
  /** TSC span (relative cycles) the window covers; 0 if time did not advance. */
  spanCycles: number;
  /** Cycles per domain and vCPU run in the window (domains with no time are left out). */
  domains: { domain: number; runCycles: number; cr3Tracked: boolean; vcpus: VcpuWindowCycles[] }[];
  /** Cycles in address spaces the accounting's full CR3 table could not take, in this window. */
  cr3OverflowCycles: number;
}

export interface VcpuWindowCycles {
  vcpu: number;
  runCycles: number;
  /** Cycles per address space in the window (only those with time). */
  cr3s: { cr3: string; runCycles: number }[];
}

/** Per-session differ: one per xentrace run (a new run has a new TSC base and fresh accounting). */
export class WindowDiffer {
  private readonly reported = new Map<number, number>();
  /** Cycles reported so far per "domain:vcpu:cr3". */
  private readonly reportedCr3 = new Map<string, number>();
  private reportedCr3Overflow = 0;
  private lastAtTsc = NaN;

  /**
   * The window since the previous call. `startTsc` is where the first window starts (the first
   * record's TSC); later windows start where the previous one ended.
   */
  next(snapshot: RunTimeSnapshot, startTsc: number): WindowCycles {
    const from = Number.isFinite(this.lastAtTsc) ? this.lastAtTsc : startTsc;
    const at = snapshot.atTsc;
    const spanCycles = Number.isFinite(at) && Number.isFinite(from) && at > from ? at - from : 0;
    if (Number.isFinite(at) && !(at <= this.lastAtTsc)) this.lastAtTsc = at;
    const cr3ByVcpu = new Map<number, { cr3: string; runCycles: number }[]>();
    for (const c of snapshot.cr3) {
      const key = c.domain * 65536 + c.vcpu;
      let list = cr3ByVcpu.get(key);
      if (list === undefined) cr3ByVcpu.set(key, (list = []));
      list.push({ cr3: c.cr3, runCycles: c.runCycles });
    }
    const cr3Domains = new Set(snapshot.cr3.map((c) => c.domain));
    const domains: WindowCycles["domains"] = [];
    for (const d of snapshot.domains) {
      const vcpus: VcpuWindowCycles[] = [];
      let total = 0;
      for (const v of d.vcpus) {
        const key = d.domain * 65536 + v.vcpu;
        const before = this.reported.get(key) ?? 0;
        const delta = v.runCycles - before;
        if (delta > 0) {
          this.reported.set(key, v.runCycles);
          vcpus.push({ vcpu: v.vcpu, runCycles: delta, cr3s: this.cr3Deltas(d.domain, v.vcpu, cr3ByVcpu.get(key)) });
          total += delta;
        }
      }
      if (vcpus.length > 0) domains.push({ domain: d.domain, runCycles: total, cr3Tracked: cr3Domains.has(d.domain), vcpus });
    }
    const cr3OverflowCycles = Math.max(0, snapshot.cr3OverflowCycles - this.reportedCr3Overflow);
    if (snapshot.cr3OverflowCycles > this.reportedCr3Overflow) this.reportedCr3Overflow = snapshot.cr3OverflowCycles;
    return { spanCycles, domains, cr3OverflowCycles };
  }

  private cr3Deltas(domain: number, vcpu: number, totals: { cr3: string; runCycles: number }[] | undefined): { cr3: string; runCycles: number }[] {
    const deltas: { cr3: string; runCycles: number }[] = [];
    for (const t of totals ?? []) {
      const key = `${domain}:${vcpu}:${t.cr3}`;
      const delta = t.runCycles - (this.reportedCr3.get(key) ?? 0);
      if (delta > 0) {
        this.reportedCr3.set(key, t.runCycles);
        deltas.push({ cr3: t.cr3, runCycles: delta });
      }
    }
    return deltas;
  }
}

export interface WindowContext {
  cpuHz: number;
  timeMs: number;
  session: number;
  final: boolean;
  lostRecords: number;
  corrupt: number;
  names: ReadonlyMap<number, string>;
  /** Most (vCPU, CR3) entries one payload carries; the smallest beyond it go into `cr3OtherNs`. */
  maxCr3Entries: number;
}

/** Default bound on (vCPU, CR3) entries per raw.xen payload: far above the address spaces a guest switches between in a window. */
export const DEFAULT_MAX_CR3_ENTRIES = 256;

/** Cycles to the raw.xen payload (nanoseconds, rounded; domain names where known). */
export function toXenDomainCpu(window: WindowCycles, ctx: WindowContext): XenDomainCpu {
  const ns = (cycles: number): number => Math.round((cycles * 1e9) / ctx.cpuHz);
  // The largest (vCPU, CR3) entries of the whole payload are kept.
  const entries = window.domains.flatMap((d) => d.vcpus.flatMap((v) => v.cr3s.map((c) => ({ v, c }))));
  const kept = new Set(entries.sort((a, b) => b.c.runCycles - a.c.runCycles).slice(0, Math.max(0, ctx.maxCr3Entries)).map((e) => e.c));
  const domains = window.domains.map((d): XenDomainCpuEntry => {
    const vcpus = d.vcpus.map((v): XenVcpuCpu => {
      const runNs = ns(v.runCycles);
      if (!d.cr3Tracked) return { vcpu: v.vcpu, runNs };
      const cr3s = v.cr3s.filter((c) => kept.has(c)).map((c) => ({ cr3: c.cr3, runNs: ns(c.runCycles) }));
      const cr3OtherNs = ns(v.cr3s.filter((c) => !kept.has(c)).reduce((sum, c) => sum + c.runCycles, 0));
      const charged = cr3s.reduce((sum, c) => sum + c.runNs, 0) + cr3OtherNs;
      return { vcpu: v.vcpu, runNs, cr3s, cr3OtherNs, cr3UnknownNs: Math.max(0, runNs - charged) };
    });
    const name = ctx.names.get(d.domain);
    return {
      domain: d.domain,
      ...(name !== undefined ? { name } : {}),
      runNs: vcpus.reduce((sum, v) => sum + v.runNs, 0),
      vcpus,
    };
  });
  return {
    v: 1,
    windowSeconds: window.spanCycles / ctx.cpuHz,
    timeMs: ctx.timeMs,
    cpuHz: ctx.cpuHz,
    session: ctx.session,
    final: ctx.final,
    domains,
    lostRecords: ctx.lostRecords,
    corrupt: ctx.corrupt,
    ...(window.cr3OverflowCycles > 0 || window.domains.some((d) => d.cr3Tracked) ? { cr3TableFullNs: ns(window.cr3OverflowCycles) } : {}),
  };
}

/** The argv for xentrace: the configured options, then the output file (required in 4.17, last). */
export function xentraceArgv(args: readonly string[], outputPath: string): string[] {
  return [...args, outputPath];
}

export const DEFAULT_XENTRACE_ARGS: readonly string[] = ["-D", "-e", "0x0002f000", "-S", "32"];
/**
 * With CR3s: the HVM class as well (VMEXIT/VMENTRY and CR writes, 0x00080000), and 1024 pages
 * (4 MiB) of buffer per pCPU: an HVM guest's exits are many more records than the scheduler's, and
 * with 256 pages a dom0 held on one pCPU under TCG lost a quarter to half of them.
 */
export const CR3_XENTRACE_ARGS: readonly string[] = ["-D", "-e", "0x000af000", "-S", "1024"];
