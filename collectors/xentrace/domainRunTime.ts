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
import type { TraceRecord, TraceRecordView } from "./traceRecords.js";

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
  /** Current address space (CR3 as two 32-bit words); valid when hasCr3. */
  hasCr3: boolean;
  cr3Hi: number;
  cr3Lo: number;
  cr3Since: number;
  /** Where time in the current address space is added (found on first use, so no key is built per record). */
  cr3Tally: Cr3Tally | undefined;
  /** This vCPU's tallies by CR3 high word → low word (two words: a 64-bit CR3 does not fit a double). */
  readonly cr3Index: Map<number, Map<number, Cr3Tally>>;
}

/** Cycles one vCPU spent in one address space. */
interface Cr3Tally {
  readonly domain: number;
  readonly vcpu: number;
  readonly cr3Hi: number;
  readonly cr3Lo: number;
  runCycles: number;
}

/** A record as the accounting reads it (TraceRecordView, or a TraceRecord with its word count). */
interface RecordFields {
  cpu: number;
  event: number;
  hasTsc: boolean;
  tsc: number;
  orderTsc: number;
  offset: number;
  extraCount: number;
  extra: ArrayLike<number>;
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
  switchActive: boolean;
  switchDomain: number;
  switchUnit: number;
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
  vcpu: number;
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
  /** Cycles run in an address space that the full CR3 table could not take (counted, not charged). */
  cr3OverflowCycles: number;
}

export interface RunTimeAccountingOptions {
  /** Bound on distinct (domain, vCPU) pairs tracked. Default 65536. */
  maxVcpus?: number;
  /** Bound on distinct (domain, vCPU, CR3) triples tracked. Default 65536. */
  maxCr3Values?: number;
}

/**
 * The events recordView acts on; of any other record it only notes the time. A one-shot reader
 * passes this to XentraceParser as `delivers`, so the other records (most of a trace) are never
 * merged; the parser still hands over each CPU's first timed record, which sets that CPU's start.
 */
export function accountedEvent(event: number): boolean {
  return (
    (event & 0x0ffff000) === TRC_SCHED_MIN ||
    event === TRC_SCHED_SWITCH ||
    event === TRC_LOST_RECORDS ||
    event === LOST_RECORDS_END ||
    event === TRC_HVM_CR_WRITE ||
    event === TRC_HVM_CR_WRITE64
  );
}

/** xenalyze ignores runstate records for vCPU ids above MAX_CPUS. */
const XENALYZE_MAX_CPUS = 256;

export class DomainRunTimeAccounting {
  private readonly vcpus = new Map<number, VcpuState>();
  /** By CPU number, in the order first seen (snapshot iterates it). */
  private readonly pcpus = new Map<number, PcpuState>();
  /** The same states indexed by CPU number: the per-record lookup. */
  private readonly pcpuByCpu: (PcpuState | undefined)[] = [];
  /** CR3 tallies in the order first charged (each vCPU indexes its own). */
  private readonly cr3Tallies: Cr3Tally[] = [];
  /** Switch-record cycles by domain → unit (both raw 32-bit words); switchPairs counts the pairs. */
  private readonly switchCycles = new Map<number, Map<number, number>>();
  private switchPairs = 0;
  /** record() copies a TraceRecord in here, so one code path serves both record shapes. */
  private readonly copied: RecordFields = { cpu: 0, event: 0, hasTsc: false, tsc: NaN, orderTsc: NaN, offset: 0, extraCount: 0, extra: [] };
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
  private cr3OverflowCycles = 0;

  constructor(options: RunTimeAccountingOptions = {}) {
    this.maxVcpus = options.maxVcpus ?? 65536;
    this.maxCr3 = options.maxCr3Values ?? 65536;
  }

  /** Feed one record, in merged order (XentraceParser's onRecord). */
  record(r: TraceRecord): void {
    const c = this.copied;
    c.cpu = r.cpu;
    c.event = r.event;
    c.hasTsc = r.hasTsc;
    c.tsc = r.tsc;
    c.orderTsc = r.orderTsc;
    c.offset = r.offset;
    c.extraCount = r.extra.length;
    c.extra = r.extra;
    this.recordView(c);
  }

  /** Feed one record, in merged order (XentraceParser's onRecordView); keeps nothing of the view. */
  recordView(r: TraceRecordView): void {
    const p = this.pcpuByCpu[r.cpu] ?? this.pcpu(r.cpu);
    const tsc = r.tsc;
    if (r.hasTsc) {
      if (Number.isNaN(p.firstTsc)) p.firstTsc = tsc;
      p.lastTsc = tsc;
    }
    if (Number.isFinite(r.orderTsc) && !(r.orderTsc <= this.lastTsc)) this.lastTsc = r.orderTsc;
    if (Number.isNaN(tsc)) return; // no time yet on this CPU: nothing can be timed
    const event = r.event;
    // All of TRC_SCHED_MIN's sub-class (0x00021xxx) are runstate records.
    if ((event & 0x0ffff000) === TRC_SCHED_MIN) {
      this.runstateRecord(p, r);
      return;
    }
    switch (event) {
      case TRC_SCHED_SWITCH:
        this.switchRecord(p, r);
        break;
      case TRC_LOST_RECORDS:
        this.lostRecordsStart(p, r);
        break;
      case LOST_RECORDS_END:
        this.lostRecordsEnd(p, r);
        break;
      case TRC_HVM_CR_WRITE:
      case TRC_HVM_CR_WRITE64:
        this.crWrite(p, r);
        break;
    }
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
    // Keyed "domain:vcpu:0xCR3" here, where building keys costs nothing next to building the result.
    const cr3 = new Map<string, number>();
    for (const t of this.cr3Tallies) cr3.set(`${t.domain}:${t.vcpu}:${formatCr3(t.cr3Hi, t.cr3Lo)}`, t.runCycles);
    let cr3OverflowCycles = this.cr3OverflowCycles;
    if (useSwitch) {
      for (const [domain, units] of this.switchCycles) for (const [unit, cycles] of units) add(domain, unit, cycles);
      for (const p of this.pcpus.values()) {
        if (p.switchActive && p.switchSince < atTsc) add(p.switchDomain, p.switchUnit, atTsc - p.switchSince);
      }
    } else {
      for (const v of this.vcpus.values()) {
        let cycles = v.runCycles;
        if (v.state === RUNSTATE_RUNNING && v.since < atTsc) {
          cycles += atTsc - v.since;
          if (v.hasCr3) {
            const from = Math.max(v.since, v.cr3Since);
            const key = `${v.domain}:${v.vcpu}:${formatCr3(v.cr3Hi, v.cr3Lo)}`;
            // A running address space the full table could not take stays out, as in addCr3.
            const tracked = v.cr3Tally !== undefined || cr3.has(key) || this.cr3Tallies.length < this.maxCr3;
            if (from < atTsc) {
              if (tracked) cr3.set(key, (cr3.get(key) ?? 0) + atTsc - from);
              else cr3OverflowCycles += atTsc - from;
            }
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
        const [domain, vcpu, value] = key.split(":") as [string, string, string];
        return { domain: Number(domain), vcpu: Number(vcpu), cr3: value, runCycles };
      })
      .sort((a, b) => a.domain - b.domain || a.vcpu - b.vcpu || b.runCycles - a.runCycles);
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
      cr3OverflowCycles,
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
        switchActive: false,
        switchDomain: 0,
        switchUnit: 0,
        switchSince: NaN,
      };
      defaultVcpu.pcpu = p;
      this.pcpus.set(cpu, p);
      this.pcpuByCpu[cpu] = p;
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
        if (v.hasCr3) this.addCr3(v, Math.max(v.since, v.cr3Since), tsc);
      }
    }
    v.state = newState;
    v.since = tsc;
    if (newState === RUNSTATE_RUNNING) v.cr3Since = tsc;
  }

  private runstateRecord(p: PcpuState, r: TraceRecordView): void {
    const kind = r.event & 0xf; // 1 = change, 2 = continue running
    if (kind !== 1 && kind !== 2) return;
    if (r.extraCount < 1) {
      this.anomalies++;
      return;
    }
    const word = r.extra[0] as number;
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

  private lostRecordsStart(p: PcpuState, r: TraceRecordView): void {
    if (r.extraCount !== 4 || !r.hasTsc) {
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
      // Its CR3 writes in the loss are lost with it: until its next one, a lost vCPU's address space
      // is unknown (cr3UnknownNs), not the last one seen.
      if (v.state === RUNSTATE_LOST) {
        v.hasCr3 = false;
        v.cr3Tally = undefined;
      }
    }
    const who = r.extra[1] as number;
    p.lostDomainValid = true;
    p.lostDomain = who & 0xffff;
    p.lostVcpu = who >>> 16;
  }

  private lostRecordsEnd(p: PcpuState, r: TraceRecordView): void {
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

  private switchRecord(p: PcpuState, r: TraceRecordView): void {
    if (r.extraCount < 4) {
      this.anomalies++;
      return;
    }
    this.switchRecords++;
    const w = r.extra;
    const nextDomain = w[2] as number;
    const nextUnit = w[3] as number;
    if (p.switchActive && p.switchDomain === w[0] && p.switchUnit === w[1]) this.closeSwitch(p, r.tsc);
    if (this.switchPairs < this.maxVcpus || this.switchCycles.get(nextDomain)?.has(nextUnit) === true) {
      p.switchActive = true;
      p.switchDomain = nextDomain;
      p.switchUnit = nextUnit;
      p.switchSince = r.tsc;
    } else {
      this.overflowed++;
      p.switchActive = false;
    }
  }

  private closeSwitch(p: PcpuState, tsc: number): void {
    if (p.switchActive && p.switchSince < tsc) {
      let units = this.switchCycles.get(p.switchDomain);
      if (units === undefined) this.switchCycles.set(p.switchDomain, (units = new Map<number, number>()));
      const have = units.get(p.switchUnit);
      if (have === undefined) this.switchPairs++;
      units.set(p.switchUnit, (have ?? 0) + tsc - p.switchSince);
    }
    p.switchActive = false;
  }

  // ---- CR3: HVM CR writes carry no TSC; they take the preceding VMEXIT's time on that CPU ----

  private crWrite(p: PcpuState, r: TraceRecordView): void {
    const v = p.current;
    if (r.extraCount < 1 || r.extra[0] !== 3 || v === undefined || v.domain === DEFAULT_DOMAIN || v.domain === DOMID_IDLE) return;
    if (r.extraCount < 2) return;
    const lo = r.extra[1] as number;
    const hi = r.event === TRC_HVM_CR_WRITE64 && r.extraCount > 2 ? (r.extra[2] as number) : 0;
    this.cr3Writes++;
    if (v.state === RUNSTATE_RUNNING && v.hasCr3) this.addCr3(v, Math.max(v.since, v.cr3Since), r.tsc);
    v.hasCr3 = true;
    v.cr3Hi = hi;
    v.cr3Lo = lo;
    v.cr3Since = r.tsc;
    v.cr3Tally = v.cr3Index.get(hi)?.get(lo);
  }

  private addCr3(v: VcpuState, from: number, to: number): void {
    if (!(from < to) || !v.hasCr3) return;
    let tally = v.cr3Tally;
    if (tally === undefined) {
      let byLo = v.cr3Index.get(v.cr3Hi);
      const known = byLo?.get(v.cr3Lo);
      if (known !== undefined) {
        v.cr3Tally = known;
        known.runCycles += to - from;
        return;
      }
      if (this.cr3Tallies.length >= this.maxCr3) {
        this.overflowed++;
        this.cr3OverflowCycles += to - from;
        return;
      }
      tally = { domain: v.domain, vcpu: v.vcpu, cr3Hi: v.cr3Hi, cr3Lo: v.cr3Lo, runCycles: 0 };
      this.cr3Tallies.push(tally);
      if (byLo === undefined) v.cr3Index.set(v.cr3Hi, (byLo = new Map<number, Cr3Tally>()));
      byLo.set(v.cr3Lo, tally);
      v.cr3Tally = tally;
    }
    tally.runCycles += to - from;
  }
}

/** CR3 as 0x-prefixed hex, the high word only when it is not zero. */
function formatCr3(hi: number, lo: number): string {
  return `0x${hi === 0 ? lo.toString(16) : hi.toString(16) + lo.toString(16).padStart(8, "0")}`;
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
    hasCr3: false,
    cr3Hi: 0,
    cr3Lo: 0,
    cr3Since: NaN,
    cr3Tally: undefined,
    cr3Index: new Map<number, Map<number, Cr3Tally>>(),
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
    cr3: cr3ByDomain(snapshot.cr3).map((c) => ({ domain: c.domain, cr3: c.cr3, runSeconds: c.runCycles / cpuHz })),
  };
}

/** Per (domain, CR3) over all vCPUs, largest first within a domain: what xenalyze's CR3 enumeration lists. */
export function cr3ByDomain(cr3: readonly Cr3RunTime[]): { domain: number; cr3: string; runCycles: number }[] {
  const sums = new Map<string, { domain: number; cr3: string; runCycles: number }>();
  for (const c of cr3) {
    const key = `${c.domain}:${c.cr3}`;
    const sum = sums.get(key);
    if (sum === undefined) sums.set(key, { domain: c.domain, cr3: c.cr3, runCycles: c.runCycles });
    else sum.runCycles += c.runCycles;
  }
  return [...sums.values()].sort((a, b) => a.domain - b.domain || b.runCycles - a.runCycles);
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
