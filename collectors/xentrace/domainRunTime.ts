// On-CPU time per domain, per vCPU and per guest CR3 from merged xentrace records. No I/O.
//
// The runstate logic follows xenalyze 4.17 (tools/xentrace/xenalyze.c: sched_runstate_process,
// vcpu_start, vcpu_prev_update, vcpu_next_update, runstate_update, process_lost_records*,
// deactivate_pcpu) so that per-vCPU "running" time agrees with `xenalyze --summary`. Where xenalyze
// would abort on an inconsistent trace, this code counts an anomaly and carries on.

import {
  DOMID_IDLE,
  LOST_RECORDS_END,
  RUNSTATE_RUNNING,
  TRC_HVM_CR_WRITE,
  TRC_HVM_CR_WRITE64,
  TRC_LOST_RECORDS,
  TRC_SCHED_MIN,
  TRC_SCHED_SWITCH,
} from "./traceFormat.js";
import type { TraceRecord } from "./traceRecords.js";

/** xenalyze's extra states beyond Xen's four (running, runnable, blocked, offline). */
const RUNSTATE_LOST = 4;
const RUNSTATE_QUEUED = 5;
const RUNSTATE_INIT = 6;
/** xenalyze charges time before the first scheduling record on a CPU to this hidden domain. */
const DEFAULT_DOMAIN = 32768;

interface VcpuState {
  readonly domain: number;
  readonly vcpu: number;
  state: number;
  /** When `state` was entered (relative cycles); NaN = unknown, so the next change is not timed (xenalyze's tsc 0). */
  since: number;
  pcpu: PcpuState | undefined;
  activated: boolean;
  runCycles: number;
  /** xenalyze's last_oldstate (TSC-skew detection); wrongOld === RUNSTATE_INIT means unset. */
  wrongOld: number;
  actualOld: number;
  cr3: string | undefined;
  cr3Since: number;
}

interface PcpuState {
  readonly cpu: number;
  current: VcpuState | undefined;
  readonly defaultVcpu: VcpuState;
  firstTsc: number;
  lastTsc: number;
  lostActive: boolean;
  lostTsc: number;
  lostDomainValid: boolean;
  lostDomain: number;
  lostVcpu: number;
  seenValidSchedule: boolean;
  ended: boolean;
  /** Fallback accounting from TRC_SCHED_SWITCH: who the switch records say is on this CPU, since when. */
  switchCurrent: string | undefined;
  switchSince: number;
}

export interface VcpuRunTime {
  vcpu: number;
  runCycles: number;
}

export interface DomainRunTime {
  domain: number;
  runCycles: number;
  vcpus: VcpuRunTime[];
}

export interface Cr3RunTime {
  domain: number;
  /** CR3 value as 0x-prefixed hex. */
  cr3: string;
  runCycles: number;
}

export interface RunTimeSnapshot {
  /** "runstate" when runstate records drove the numbers, "switch" when only TRC_SCHED_SWITCH did. */
  source: "runstate" | "switch" | "none";
  /** TSC (relative cycles) the snapshot was taken at; running vCPUs are counted up to it. */
  atTsc: number;
  domains: DomainRunTime[];
  cr3: Cr3RunTime[];
  runstateRecords: number;
  switchRecords: number;
  cr3Writes: number;
  /** Records that contradict the tracked state (xenalyze prints "Strange"/"FATAL" for these). */
  anomalies: number;
  /** Runstate changes that looked like TSC skew between CPUs (detected, not corrected). */
  tscSkewEvents: number;
  /** Records ignored because the vCPU/CR3 tables reached their bound. */
  overflowed: number;
}

export interface RunTimeAccountingOptions {
  /** Bound on distinct (domain, vCPU) pairs tracked. Default 65536. */
  maxVcpus?: number;
  /** Bound on distinct (domain, CR3) pairs tracked. Default 65536. */
  maxCr3Values?: number;
}

/** xenalyze ignores runstate records for vCPU ids above MAX_CPUS. */
const XENALYZE_MAX_CPUS = 256;

export class DomainRunTimeAccounting {
  private readonly vcpus = new Map<number, VcpuState>();
  private readonly pcpus = new Map<number, PcpuState>();
  private readonly cr3Cycles = new Map<string, number>();
  private readonly switchCycles = new Map<string, number>();
  private readonly maxVcpus: number;
  private readonly maxCr3: number;
  private lostCpus = 0;
  private lastTsc = NaN;
  private runstateRecords = 0;
  private switchRecords = 0;
  private cr3Writes = 0;
  private anomalies = 0;
  private tscSkewEvents = 0;
  private overflowed = 0;

  constructor(options: RunTimeAccountingOptions = {}) {
    this.maxVcpus = options.maxVcpus ?? 65536;
    this.maxCr3 = options.maxCr3Values ?? 65536;
  }

  /** Feed one record, in merged order (XentraceParser's onRecord). */
  record(r: TraceRecord): void {
    const p = this.pcpu(r.cpu);
    const tsc = r.tsc;
    if (r.hasTsc) {
      if (Number.isNaN(p.firstTsc)) p.firstTsc = tsc;
      p.lastTsc = tsc;
    }
    if (Number.isFinite(r.orderTsc) && !(r.orderTsc <= this.lastTsc)) this.lastTsc = r.orderTsc;
    if (Number.isNaN(tsc)) return; // no time yet on this CPU: nothing can be timed
    const event = r.event;
    if ((event & 0x0ffff000) === TRC_SCHED_MIN) this.runstateRecord(p, r);
    else if (event === TRC_SCHED_SWITCH) this.switchRecord(p, r);
    else if (event === TRC_LOST_RECORDS) this.lostRecordsStart(p, r);
    else if (event === LOST_RECORDS_END) this.lostRecordsEnd(p, r);
    else if (event === TRC_HVM_CR_WRITE || event === TRC_HVM_CR_WRITE64) this.crWrite(p, r);
  }

  /** The CPU's stream ended (XentraceParser's onCpuEnd): like xenalyze, its running vCPU becomes lost at the CPU's last TSC. */
  endCpu(cpu: number, lastTsc: number): void {
    const p = this.pcpu(cpu);
    if (p.ended) return;
    p.ended = true;
    const last = Number.isNaN(lastTsc) ? p.lastTsc : lastTsc;
    if (p.current !== undefined && !Number.isNaN(last)) this.runstateUpdate(p.current, RUNSTATE_LOST, last);
    p.current = undefined;
    this.closeSwitch(p, last);
  }

  /**
   * Totals so far. vCPUs still running are counted up to `atTsc` (default: the latest TSC seen)
   * without changing any state, so snapshots can be taken repeatedly and subtracted for windows.
   */
  snapshot(atTsc: number = this.lastTsc): RunTimeSnapshot {
    const useSwitch = this.runstateRecords === 0 && this.switchRecords > 0;
    const byDomain = new Map<number, Map<number, number>>();
    const add = (domain: number, vcpu: number, cycles: number): void => {
      let vs = byDomain.get(domain);
      if (vs === undefined) byDomain.set(domain, (vs = new Map<number, number>()));
      vs.set(vcpu, (vs.get(vcpu) ?? 0) + cycles);
    };
    const cr3 = new Map(this.cr3Cycles);
    if (useSwitch) {
      for (const [key, cycles] of this.switchCycles) {
        const [d, v] = key.split(":").map(Number) as [number, number];
        add(d, v, cycles);
      }
      for (const p of this.pcpus.values()) {
        if (p.switchCurrent !== undefined && p.switchSince < atTsc) {
          const [d, v] = p.switchCurrent.split(":").map(Number) as [number, number];
          add(d, v, atTsc - p.switchSince);
        }
      }
    } else {
      for (const v of this.vcpus.values()) {
        let cycles = v.runCycles;
        if (v.state === RUNSTATE_RUNNING && v.since < atTsc) {
          cycles += atTsc - v.since;
          if (v.cr3 !== undefined) {
            const from = Math.max(v.since, v.cr3Since);
            if (from < atTsc) cr3.set(`${v.domain}:${v.cr3}`, (cr3.get(`${v.domain}:${v.cr3}`) ?? 0) + atTsc - from);
          }
        }
        add(v.domain, v.vcpu, cycles);
      }
    }
    const domains: DomainRunTime[] = [...byDomain.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([domain, vs]) => {
        const vcpus = [...vs.entries()].sort((a, b) => a[0] - b[0]).map(([vcpu, runCycles]) => ({ vcpu, runCycles }));
        return { domain, runCycles: vcpus.reduce((sum, v) => sum + v.runCycles, 0), vcpus };
      });
    const cr3List: Cr3RunTime[] = [...cr3.entries()]
      .map(([key, runCycles]) => {
        const colon = key.indexOf(":");
        return { domain: Number(key.slice(0, colon)), cr3: key.slice(colon + 1), runCycles };
      })
      .sort((a, b) => a.domain - b.domain || b.runCycles - a.runCycles);
    return {
      source: useSwitch ? "switch" : this.runstateRecords > 0 ? "runstate" : "none",
      atTsc,
      domains,
      cr3: cr3List,
      runstateRecords: this.runstateRecords,
      switchRecords: this.switchRecords,
      cr3Writes: this.cr3Writes,
      anomalies: this.anomalies,
      tscSkewEvents: this.tscSkewEvents,
      overflowed: this.overflowed,
    };
  }

  // ---- state tables ----

  private pcpu(cpu: number): PcpuState {
    let p = this.pcpus.get(cpu);
    if (p === undefined) {
      // Until its first scheduling record a CPU runs xenalyze's hidden default domain.
      const defaultVcpu = newVcpu(DEFAULT_DOMAIN, cpu);
      defaultVcpu.state = RUNSTATE_RUNNING;
      defaultVcpu.activated = true;
      p = {
        cpu,
        current: defaultVcpu,
        defaultVcpu,
        firstTsc: NaN,
        lastTsc: NaN,
        lostActive: false,
        lostTsc: NaN,
        lostDomainValid: false,
        lostDomain: 0,
        lostVcpu: 0,
        seenValidSchedule: true,
        ended: false,
        switchCurrent: undefined,
        switchSince: NaN,
      };
      defaultVcpu.pcpu = p;
      this.pcpus.set(cpu, p);
    }
    return p;
  }

  private vcpu(domain: number, vcpu: number): VcpuState | undefined {
    const key = domain * 65536 + vcpu;
    let v = this.vcpus.get(key);
    if (v === undefined) {
      if (this.vcpus.size >= this.maxVcpus) {
        this.overflowed++;
        return undefined;
      }
      v = newVcpu(domain, vcpu);
      this.vcpus.set(key, v);
    }
    return v;
  }

  // ---- xenalyze's runstate machine ----

  private runstateUpdate(v: VcpuState, newState: number, tsc: number): void {
    if (v.since < tsc) {
      if (v.state === RUNSTATE_RUNNING) {
        v.runCycles += tsc - v.since;
        if (v.cr3 !== undefined) this.addCr3(v, Math.max(v.since, v.cr3Since), tsc);
      }
    }
    v.state = newState;
    v.since = tsc;
    if (newState === RUNSTATE_RUNNING) v.cr3Since = tsc;
  }

  private runstateRecord(p: PcpuState, r: TraceRecord): void {
    const kind = r.event & 0xf; // 1 = change, 2 = continue running
    if (kind !== 1 && kind !== 2) return;
    const word = r.extra[0];
    if (word === undefined) {
      this.anomalies++;
      return;
    }
    let oldState = RUNSTATE_RUNNING;
    let newState = RUNSTATE_RUNNING;
    if (kind === 1) {
      oldState = (r.event >>> 8) & 0xf;
      newState = (r.event >>> 4) & 0xf;
      if (oldState > 3 || newState > 3) {
        this.anomalies++;
        return;
      }
    }
    this.runstateRecords++;
    const vcpuId = word & 0xffff;
    const domain = word >>> 16;
    if (vcpuId > XENALYZE_MAX_CPUS) return;
    const v = this.vcpu(domain, vcpuId);
    if (v === undefined) return;
    const tsc = r.tsc;

    const wrongOld = v.wrongOld;
    const actualOld = v.actualOld;
    v.wrongOld = RUNSTATE_INIT;

    if (v.state === RUNSTATE_INIT) {
      this.vcpuStart(p, v, oldState, newState, tsc);
      return;
    }

    if (v.state !== oldState) {
      if (v.state === RUNSTATE_LOST) {
        if (newState !== RUNSTATE_RUNNING) return;
      } else if (wrongOld === newState && actualOld === oldState) {
        // The previous record about v (from another CPU) was out of step by this much: TSC skew.
        this.tscSkewEvents++;
        return;
      } else {
        v.wrongOld = oldState;
        v.actualOld = v.state;
        if (v.state === RUNSTATE_RUNNING) return;
      }
    }

    if (kind === 2) {
      if (v.state === RUNSTATE_LOST) {
        if (p.current !== undefined) this.vcpuPrevUpdate(p, p.current, tsc, RUNSTATE_LOST);
        this.vcpuNextUpdate(p, v, tsc);
      } else if (v.state !== RUNSTATE_RUNNING || v.pcpu !== p) {
        this.anomalies++; // xenalyze exits here
        return;
      }
      this.runstateUpdate(v, RUNSTATE_RUNNING, tsc);
    } else if (oldState === RUNSTATE_RUNNING || v.state === RUNSTATE_RUNNING) {
      if (oldState === RUNSTATE_RUNNING) {
        if (v.state !== RUNSTATE_RUNNING && v.state !== RUNSTATE_LOST) this.anomalies++;
        this.vcpuPrevUpdate(p, v, tsc, newState);
      } else if (v.pcpu !== undefined) {
        this.vcpuPrevUpdate(v.pcpu, v, tsc, newState);
      } else {
        this.anomalies++;
        v.since = NaN;
        this.runstateUpdate(v, newState, tsc);
      }
      if (this.lostCpus > 0 && v.domain !== DOMID_IDLE) this.runstateUpdate(v, RUNSTATE_LOST, tsc);
    } else if (newState === RUNSTATE_RUNNING) {
      this.vcpuNextUpdate(p, v, tsc);
    } else {
      this.runstateUpdate(v, newState, tsc);
    }
  }

  /** First record about a vCPU: it leaves INIT only once it is seen running somewhere. */
  private vcpuStart(p: PcpuState, v: VcpuState, oldState: number, newState: number, tsc: number): void {
    if (oldState === RUNSTATE_RUNNING) {
      if (p.current === p.defaultVcpu) {
        this.runstateUpdate(p.defaultVcpu, RUNSTATE_QUEUED, p.firstTsc);
        p.current = undefined;
      } else {
        this.anomalies++; // xenalyze: "Strange, p->current not default domain!" and exits
        return;
      }
    }
    if (newState !== RUNSTATE_RUNNING) return;
    // Running before the record: it has been running since the CPU's first TSC.
    const start = oldState === RUNSTATE_RUNNING ? p.firstTsc : tsc;
    this.runstateUpdate(v, RUNSTATE_RUNNING, start);
    p.current = v;
    v.pcpu = p;
  }

  private vcpuPrevUpdate(p: PcpuState, prev: VcpuState, tsc: number, newState: number): void {
    if (prev.pcpu !== p || p.current !== prev || prev.state !== RUNSTATE_RUNNING) {
      this.anomalies++;
      prev.since = NaN; // the span is untrustworthy: do not time it
    }
    p.current = undefined;
    this.runstateUpdate(prev, newState, tsc);
  }

  private vcpuNextUpdate(p: PcpuState, next: VcpuState, tsc: number): void {
    if (p.current !== undefined) {
      if (p.seenValidSchedule) this.anomalies++; // xenalyze exits on this one
      this.runstateUpdate(p.current, RUNSTATE_LOST, tsc);
      p.current = undefined;
    }
    if (next.activated) {
      if (next.state === RUNSTATE_RUNNING && next.domain !== DEFAULT_DOMAIN) {
        this.anomalies++; // already running elsewhere
        next.since = NaN;
      }
    } else {
      next.activated = true;
    }
    this.runstateUpdate(next, RUNSTATE_RUNNING, tsc);
    next.pcpu = p;
    p.current = next;
    p.seenValidSchedule = true;
  }

  // ---- lost records: the CPU's vCPU and every vCPU not running become "lost" until seen again ----

  private lostRecordsStart(p: PcpuState, r: TraceRecord): void {
    if (r.extra.length !== 4 || !r.hasTsc) {
      this.anomalies++;
      return;
    }
    const firstTsc = r.orderTsc;
    if (p.current !== undefined) this.vcpuPrevUpdate(p, p.current, firstTsc, RUNSTATE_LOST);
    if (!p.lostActive) this.lostCpus++;
    p.lostActive = true;
    p.lostTsc = firstTsc;
    for (const v of this.vcpus.values()) {
      if (v.state !== RUNSTATE_RUNNING) this.runstateUpdate(v, RUNSTATE_LOST, firstTsc);
    }
    const who = r.extra[1] as number;
    p.lostDomainValid = true;
    p.lostDomain = who & 0xffff;
    p.lostVcpu = who >>> 16;
  }

  private lostRecordsEnd(p: PcpuState, r: TraceRecord): void {
    if (!p.lostActive) {
      this.anomalies++;
      return;
    }
    if (!(r.tsc > p.lostTsc)) return;
    if (p.lostDomainValid) {
      if (p.current !== undefined) {
        this.anomalies++;
        return;
      }
      const v = this.vcpu(p.lostDomain, p.lostVcpu);
      if (v !== undefined) this.vcpuNextUpdate(p, v, r.tsc);
      p.lostDomainValid = false;
      p.seenValidSchedule = false;
    }
    p.lostActive = false;
    this.lostCpus--;
  }

  // ---- fallback: TRC_SCHED_SWITCH {prev dom, prev unit, next dom, next unit} ----

  private switchRecord(p: PcpuState, r: TraceRecord): void {
    if (r.extra.length < 4) {
      this.anomalies++;
      return;
    }
    this.switchRecords++;
    const prev = `${r.extra[0]}:${r.extra[1]}`;
    const next = `${r.extra[2]}:${r.extra[3]}`;
    if (p.switchCurrent === prev) this.closeSwitch(p, r.tsc);
    if (this.switchCycles.size < this.maxVcpus || this.switchCycles.has(next)) {
      p.switchCurrent = next;
      p.switchSince = r.tsc;
    } else {
      this.overflowed++;
      p.switchCurrent = undefined;
    }
  }

  private closeSwitch(p: PcpuState, tsc: number): void {
    if (p.switchCurrent !== undefined && p.switchSince < tsc) {
      this.switchCycles.set(p.switchCurrent, (this.switchCycles.get(p.switchCurrent) ?? 0) + tsc - p.switchSince);
    }
    p.switchCurrent = undefined;
  }

  // ---- CR3: HVM CR writes carry no TSC; they take the preceding VMEXIT's time on that CPU ----

  private crWrite(p: PcpuState, r: TraceRecord): void {
    const v = p.current;
    const cr = r.extra[0];
    if (cr !== 3 || v === undefined || v.domain === DEFAULT_DOMAIN || v.domain === DOMID_IDLE) return;
    const lo = r.extra[1];
    if (lo === undefined) return;
    const hi = r.event === TRC_HVM_CR_WRITE64 ? (r.extra[2] ?? 0) : 0;
    this.cr3Writes++;
    const value = `0x${hi === 0 ? lo.toString(16) : hi.toString(16) + lo.toString(16).padStart(8, "0")}`;
    if (v.state === RUNSTATE_RUNNING && v.cr3 !== undefined) this.addCr3(v, Math.max(v.since, v.cr3Since), r.tsc);
    v.cr3 = value;
    v.cr3Since = r.tsc;
  }

  private addCr3(v: VcpuState, from: number, to: number): void {
    if (!(from < to) || v.cr3 === undefined) return;
    const key = `${v.domain}:${v.cr3}`;
    const have = this.cr3Cycles.get(key);
    if (have === undefined && this.cr3Cycles.size >= this.maxCr3) {
      this.overflowed++;
      return;
    }
    this.cr3Cycles.set(key, (have ?? 0) + to - from);
  }
}

function newVcpu(domain: number, vcpu: number): VcpuState {
  return {
    domain,
    vcpu,
    state: RUNSTATE_INIT,
    since: NaN,
    pcpu: undefined,
    activated: false,
    runCycles: 0,
    wrongOld: RUNSTATE_INIT,
    actualOld: RUNSTATE_INIT,
    cr3: undefined,
    cr3Since: NaN,
  };
}

export interface RunTimeSummary {
  cpuHz: number;
  source: RunTimeSnapshot["source"];
  domains: { domain: number; runSeconds: number; vcpus: { vcpu: number; runSeconds: number }[] }[];
  cr3: { domain: number; cr3: string; runSeconds: number }[];
}

/** Cycles to seconds with the given TSC rate. */
export function summarizeRunTime(snapshot: RunTimeSnapshot, cpuHz: number): RunTimeSummary {
  if (!(cpuHz > 0) || !Number.isFinite(cpuHz)) throw new Error(`cpuHz must be a positive number, got ${cpuHz}`);
  return {
    cpuHz,
    source: snapshot.source,
    domains: snapshot.domains.map((d) => ({
      domain: d.domain,
      runSeconds: d.runCycles / cpuHz,
      vcpus: d.vcpus.map((v) => ({ vcpu: v.vcpu, runSeconds: v.runCycles / cpuHz })),
    })),
    cr3: snapshot.cr3.map((c) => ({ domain: c.domain, cr3: c.cr3, runSeconds: c.runCycles / cpuHz })),
  };
}

/** Per-domain and per-vCPU cycles run between two snapshots of the same accounting (later minus earlier). */
export function diffSnapshots(earlier: RunTimeSnapshot, later: RunTimeSnapshot): DomainRunTime[] {
  const before = new Map<string, number>();
  for (const d of earlier.domains) for (const v of d.vcpus) before.set(`${d.domain}:${v.vcpu}`, v.runCycles);
  return later.domains.map((d) => {
    const vcpus = d.vcpus.map((v) => ({ vcpu: v.vcpu, runCycles: v.runCycles - (before.get(`${d.domain}:${v.vcpu}`) ?? 0) }));
    return { domain: d.domain, runCycles: vcpus.reduce((s, v) => s + v.runCycles, 0), vcpus };
  });
}
