// Turns cumulative run-time snapshots into per-window raw.xen payloads. Pure.
//
// DomainRunTimeAccounting.snapshot() counts a running vCPU up to the latest TSC seen. Nearly always
// the next snapshot is larger, but not quite always: at the end of a trace each pCPU's running vCPU
// is charged only up to that pCPU's own last TSC (as xenalyze does), and a span the accounting finds
// inconsistent is dropped after the fact. A window never reports negative time: a vCPU whose total
// went down reports 0 and the shortfall is taken out of its next windows, so the sum over windows
// equals the largest total reached (the final total, to within that end-of-trace overshoot).

import type { RunTimeSnapshot } from "./domainRunTime.js";
import type { XenDomainCpu, XenDomainCpuEntry } from "../../protocol/xenDomainCpu.js";

export interface WindowCycles {
  /** TSC span (relative cycles) the window covers; 0 if time did not advance. */
  spanCycles: number;
  /** Cycles per domain and vCPU run in the window (domains with no time are left out). */
  domains: { domain: number; runCycles: number; vcpus: { vcpu: number; runCycles: number }[] }[];
}

/** Per-session differ: one per xentrace run (a new run has a new TSC base and fresh accounting). */
export class WindowDiffer {
  private readonly reported = new Map<number, number>();
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
    const domains: WindowCycles["domains"] = [];
    for (const d of snapshot.domains) {
      const vcpus: { vcpu: number; runCycles: number }[] = [];
      let total = 0;
      for (const v of d.vcpus) {
        const key = d.domain * 65536 + v.vcpu;
        const before = this.reported.get(key) ?? 0;
        const delta = v.runCycles - before;
        if (delta > 0) {
          this.reported.set(key, v.runCycles);
          vcpus.push({ vcpu: v.vcpu, runCycles: delta });
          total += delta;
        }
      }
      if (vcpus.length > 0) domains.push({ domain: d.domain, runCycles: total, vcpus });
    }
    return { spanCycles, domains };
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
}

/** Cycles to the raw.xen payload (nanoseconds, rounded; domain names where known). */
export function toXenDomainCpu(window: WindowCycles, ctx: WindowContext): XenDomainCpu {
  const ns = (cycles: number): number => Math.round((cycles * 1e9) / ctx.cpuHz);
  const domains = window.domains.map((d): XenDomainCpuEntry => {
    const vcpus = d.vcpus.map((v) => ({ vcpu: v.vcpu, runNs: ns(v.runCycles) }));
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
  };
}

/** The argv for xentrace: the configured options, then the output file (required in 4.17, last). */
export function xentraceArgv(args: readonly string[], outputPath: string): string[] {
  return [...args, outputPath];
}

export const DEFAULT_XENTRACE_ARGS: readonly string[] = ["-D", "-e", "0x0002f000", "-S", "32"];
