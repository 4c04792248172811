/**
 * Xen lab: what a scenario is (the spec the host sends into dom0) and the checks on what comes
 * back. Pure: no I/O, unit-tested in labScenario.test.ts.
 */
import { Topic } from "../../protocol/wireFormat.js";
import type { CageWindow, RecordedActuatorMessage } from "../common/cageRecorder.js";
import { hostBusyTicks, hostIdleTicks, type HostCpuTicks } from "../../host/proc/hostCpu.js";

export type { CageWindow, RecordedActuatorMessage };

/**
 * What one boot does in dom0, in order. `smoke`: checks the tools work (no domU). `cpu-off`: the
 * agent measures the cage with no actuator. `domu-probe` (alone): creates the domU, runs node and
 * busybox in dom0 for `durationS` beside `probeLoad` and reports dom0's fatal signals (to find
 * what crashes dom0 processes, docs/xen-lab.md). `cpu-on`: the CPU actuator runs too. `balloon`: the
 * IDS's memory grows and the balloon actuator moves it from the domU to dom0. `cr3-trace` (alone):
 * creates a PVH domU with `cr3Domu`'s paging and CPUID, and records `durationS` seconds of xentrace's
 * scheduler and HVM classes (CR3 writes reach the trace only when Xen intercepts them). `cr3-ids`
 * (alone): a PVH IDS-VM whose IDS process (`ids-loop`) is charged to the cage by CR3 from its
 * helper's xenstore reports; dom0's figure is compared with the guest's own schedstat, then the
 * CPU actuator and limiter hold a busy domU plus that IDS at the cage's cap. `cr3-paper` (after
 * `cr3-ids`, in its IDS-VM): the paper's §5.3, the IDS-VM's IDS a CPU loop then AIDE, twice, the
 * second time beside the busy domU; dom0's CR3 figure and the guest's schedstat per second.
 */
export type LabPhase = "smoke" | "domu-probe" | "cpu-off" | "cpu-on" | "balloon" | "cr3-trace" | "cr3-ids" | "cr3-paper";
export const LAB_PHASES: readonly LabPhase[] = ["smoke", "domu-probe", "cpu-off", "cpu-on", "balloon", "cr3-trace", "cr3-ids", "cr3-paper"];

/**
 * The cr3-trace phase's PVH domU and how its CR3 writes are made to reach Xen: `hap: false` is
 * shadow paging (Xen intercepts every CR3 write), `monitor` switches Xen's vm_event CR3-write
 * monitor on from dom0 (`cr3-monitor`, lab/xen/dom0/cr3-monitor.c), which intercepts them under HAP.
 */
export interface Cr3DomuSpec {
  hap: boolean;
  monitor: boolean;
  /** xl's `cpuid` string, e.g. "host,rdtscp=0,xsave=0" (TCG's RDTSCP emulation crashed PVH guests, its XRSTOR the IDS-VM's kernel; docs/xen-lab.md). */
  cpuid: string;
}

export interface LabScenarioSpec {
  phases: LabPhase[];
  /** Xen's scheduler: `credit` (credit1, `xl sched-credit`) or `credit2` (4.17's default). */
  scheduler: "credit" | "credit2";
  /** The cage's CPU cap, % of one CPU: domU + IDS together. */
  capPct: number;
  /** The IDS's own cap (`cpu.idsCap`), enforced by the IDS limiter in the cpu-on phase. */
  idsCapPct: number;
  /** 1 s windows recorded per CPU phase once the cage is live. */
  durationS: number;
  /** The IDS in dom0: AIDE scanning the domU's disk read-only, or a CPU-burning stand-in. */
  ids: "aide" | "burn";
  /** The domU's memory at creation, MiB (also the cage's memory base). */
  domuMemMiB: number;
  /** Balloon phase: the IDS's memory grows by this many MiB per step... */
  balloonStepMiB: number;
  /** ...in this many steps. */
  balloonSteps: number;
  /**
   * `domu-probe` only: what runs in dom0 beside the probes for `durationS` seconds: `burn` (two shell
   * busy loops), `xentrace` (a live trace to /dev/null, as the collector runs it), `bpftrace` (the
   * CPU collector's sched_switch program). Used to find what makes dom0 processes crash.
   */
  probeLoad?: ("burn" | "xentrace" | "bpftrace")[];
  /** `cr3-trace` only; default DEFAULT_CR3_DOMU. */
  cr3Domu?: Cr3DomuSpec;
}

/**
 * Debian's Xen 4.17 has no shadow paging (CONFIG_SHADOW_PAGING off): HAP plus the CR3 monitor.
 * No XSAVE (Xen then hides AVX and PKU too): with it the IDS-VM's kernel often faulted restoring a
 * task's XSAVE state in its first seconds and init died of an invalid opcode; FXSAVE state is all it needs.
 */
export const DEFAULT_CR3_DOMU: Cr3DomuSpec = { hap: true, monitor: true, cpuid: "host,rdtscp=0,xsave=0" };

/** Throws with an exact message naming the field when the spec cannot be run. */
export function validateScenarioSpec(s: LabScenarioSpec): void {
  const where = "xen lab scenario";
  if (!Array.isArray(s.phases) || s.phases.length === 0 || !s.phases.every((p) => LAB_PHASES.includes(p))) {
    throw new Error(`${where}: phases must be a non-empty list of ${LAB_PHASES.join(", ")}, got ${JSON.stringify(s.phases)}`);
  }
  for (const alone of ["smoke", "domu-probe", "cr3-trace"] as const) {
    if (s.phases.includes(alone) && s.phases.length > 1) throw new Error(`${where}: ${alone} runs alone, got ${JSON.stringify(s.phases)}`);
  }
  // cr3-paper runs in cr3-ids's IDS-VM, under its agent: after it, in the same boot.
  const cr3 = s.phases.filter((p) => p === "cr3-ids" || p === "cr3-paper");
  if (cr3.length > 0 && !((cr3.length === s.phases.length && s.phases[0] === "cr3-ids" && (s.phases.length === 1 || (s.phases.length === 2 && s.phases[1] === "cr3-paper"))))) {
    throw new Error(`${where}: cr3-ids runs alone or as cr3-ids,cr3-paper, got ${JSON.stringify(s.phases)}`);
  }
  if (s.scheduler !== "credit" && s.scheduler !== "credit2") throw new Error(`${where}: scheduler must be credit or credit2, got ${JSON.stringify(s.scheduler)}`);
  if (!(Number.isFinite(s.capPct) && s.capPct > 0 && s.capPct <= 200)) throw new Error(`${where}: capPct must be in (0, 200], got ${JSON.stringify(s.capPct)}`);
  if (!(Number.isFinite(s.idsCapPct) && s.idsCapPct > 0 && s.idsCapPct <= s.capPct)) throw new Error(`${where}: idsCapPct must be in (0, capPct], got ${JSON.stringify(s.idsCapPct)}`);
  if (!(Number.isInteger(s.durationS) && s.durationS >= 3 && s.durationS <= 600)) throw new Error(`${where}: durationS must be an integer 3..600, got ${JSON.stringify(s.durationS)}`);
  if (s.ids !== "aide" && s.ids !== "burn") throw new Error(`${where}: ids must be aide or burn, got ${JSON.stringify(s.ids)}`);
  if (!(Number.isInteger(s.domuMemMiB) && s.domuMemMiB >= 64 && s.domuMemMiB <= 1024)) throw new Error(`${where}: domuMemMiB must be an integer 64..1024, got ${JSON.stringify(s.domuMemMiB)}`);
  if (!(Number.isInteger(s.balloonStepMiB) && s.balloonStepMiB >= 1 && s.balloonStepMiB <= 512)) throw new Error(`${where}: balloonStepMiB must be an integer 1..512, got ${JSON.stringify(s.balloonStepMiB)}`);
  if (!(Number.isInteger(s.balloonSteps) && s.balloonSteps >= 1 && s.balloonSteps <= 20)) throw new Error(`${where}: balloonSteps must be an integer 1..20, got ${JSON.stringify(s.balloonSteps)}`);
  if (s.probeLoad !== undefined && !(Array.isArray(s.probeLoad) && s.probeLoad.every((l) => l === "burn" || l === "xentrace" || l === "bpftrace"))) {
    throw new Error(`${where}: probeLoad must be a list of burn, xentrace, bpftrace, got ${JSON.stringify(s.probeLoad)}`);
  }
  if (s.cr3Domu !== undefined) {
    if (typeof s.cr3Domu.hap !== "boolean") throw new Error(`${where}: cr3Domu.hap must be a boolean, got ${JSON.stringify(s.cr3Domu.hap)}`);
    if (typeof s.cr3Domu.monitor !== "boolean") throw new Error(`${where}: cr3Domu.monitor must be a boolean, got ${JSON.stringify(s.cr3Domu.monitor)}`);
    // It goes into the xl config between double quotes.
    if (typeof s.cr3Domu.cpuid !== "string" || !/^[A-Za-z0-9_,=:.-]*$/.test(s.cr3Domu.cpuid)) throw new Error(`${where}: cr3Domu.cpuid must be an xl cpuid string (letters, digits, , = : . _ -), got ${JSON.stringify(s.cr3Domu.cpuid)}`);
  }
  if (s.balloonStepMiB * s.balloonSteps > s.domuMemMiB / 2) throw new Error(`${where}: balloonStepMiB × balloonSteps must be at most half of domuMemMiB (the cage's floor), got ${s.balloonStepMiB * s.balloonSteps} of ${s.domuMemMiB}`);
}

export interface CapCompliance {
  windows: number;
  /** Windows whose total is at most cap + tolerance. */
  within: number;
  fractionWithin: number;
  meanTotalPct: number;
  meanVmPct: number;
  meanIdsPct: number;
  maxTotalPct: number;
  /** Windows with the IDS charged (idsPct > 0). */
  idsWindows: number;
}

/** How many windows kept domU + IDS within cap + `tolerancePts` (the lab's bar is ≥ 90% of them). */
export function capCompliance(windows: readonly CageWindow[], tolerancePts: number): CapCompliance {
  const n = windows.length;
  if (n === 0) return { windows: 0, within: 0, fractionWithin: 0, meanTotalPct: 0, meanVmPct: 0, meanIdsPct: 0, maxTotalPct: 0, idsWindows: 0 };
  let within = 0;
  let idsWindows = 0;
  let total = 0;
  let vm = 0;
  let ids = 0;
  let max = 0;
  for (const w of windows) {
    if (w.totalPct <= w.capPct + tolerancePts) within++;
    total += w.totalPct;
    vm += w.vmPct;
    ids += w.idsPct;
    if (w.idsPct > 0) idsWindows++;
    max = Math.max(max, w.totalPct);
  }
  return { windows: n, within, fractionWithin: within / n, meanTotalPct: total / n, meanVmPct: vm / n, meanIdsPct: ids / n, maxTotalPct: max, idsWindows };
}

/**
 * The cage windows that carry a fresh raw.xen window: for each raw.xen window (its publish time,
 * dom0's clock), the first cage window at or after it, each cage window once. The pipeline's cage
 * windows come from its own 1 s timer with the newest raw.xen rate, so while the collector stalls
 * they repeat one measurement; only these measured something new.
 */
export function freshCageWindows(windows: readonly CageWindow[], xenTimesMs: readonly number[]): CageWindow[] {
  const out: CageWindow[] = [];
  let i = 0;
  let taken = -1;
  for (const t of [...xenTimesMs].sort((a, b) => a - b)) {
    while (i < windows.length && (windows[i] as CageWindow).timeMs < t) i++;
    if (i >= windows.length) break;
    if (i === taken) continue;
    out.push(windows[i] as CageWindow);
    taken = i;
  }
  return out;
}

export interface CapVerdict {
  ok: boolean;
  /** Why not, or what passed: counts and the bar, for the report. */
  message: string;
}

/**
 * The cr3-ids cap part's bar: ≥ `minFraction` of the fresh cage windows (freshCageWindows) within
 * cap + 3, over at least `minFresh` of them; fewer fresh windows measured too little and fail. And
 * the IDS charged by CR3 in ≥ `minFraction` of them: a cage whose IDS went unreported (the helper
 * behind) holds only the domU's cap, which is not what the part is about.
 */
export function cr3CapVerdict(fresh: CapCompliance, minFresh = 15, minFraction = 0.9): CapVerdict {
  const counts = `${fresh.within} of ${fresh.windows} fresh windows within cap + 3 (mean total ${fresh.meanTotalPct.toFixed(1)}%, max ${fresh.maxTotalPct.toFixed(1)}%; IDS charged in ${fresh.idsWindows}, mean ${fresh.meanIdsPct.toFixed(1)}%)`;
  if (fresh.windows < minFresh) return { ok: false, message: `${counts}: fewer than ${minFresh} fresh windows, the cap part measured too little` };
  if (fresh.fractionWithin < minFraction) return { ok: false, message: `${counts}: under ${Math.round(minFraction * 100)}%` };
  if (fresh.idsWindows < minFraction * fresh.windows) return { ok: false, message: `${counts}: the IDS charged by CR3 in under ${Math.round(minFraction * 100)}% of them` };
  return { ok: true, message: counts };
}

export interface BalloonStep {
  /** What the IDS held when the sample was taken (RSS + page cache), bytes. */
  idsBytes: number;
  domuMiB: number;
  dom0MiB: number;
}

export interface BalloonCheck {
  /** How much the domU shrank and dom0 grew between the first and last sample, MiB. */
  domuShrinkMiB: number;
  dom0GrowMiB: number;
  /** |grow − shrink| / shrink. */
  mismatch: number;
  ok: boolean;
}

/** The balloon phase's bar: the domU shrinks and dom0 grows by the same amount within 2%. */
export function balloonCheck(steps: readonly BalloonStep[], tolerance = 0.02): BalloonCheck {
  const first = steps[0];
  const last = steps[steps.length - 1];
  if (first === undefined || last === undefined || steps.length < 2) return { domuShrinkMiB: 0, dom0GrowMiB: 0, mismatch: 1, ok: false };
  const shrink = first.domuMiB - last.domuMiB;
  const grow = last.dom0MiB - first.dom0MiB;
  const mismatch = shrink > 0 ? Math.abs(grow - shrink) / shrink : 1;
  return { domuShrinkMiB: shrink, dom0GrowMiB: grow, mismatch, ok: shrink > 0 && mismatch <= tolerance };
}

/** One sample of the IDS process's run time as the IDS-VM's guest sees it (its console line). */
export interface GuestSchedstat {
  /** The guest's /proc/uptime, s. */
  uptimeS: number;
  /** /proc/PID/schedstat's first field: ns on a CPU. */
  runNs: number;
  /** The vCPU's steal time so far (/proc/stat's steal, USER_HZ ticks): time Xen did not run it. */
  stealTicks: number;
  /** Which IDS ran when sampled (the IDS-VM's init prints it; the cr3-paper phase switches it). */
  step?: Cr3PaperStep;
}

/** The guest's kernel threads' run time so far (every 5th sample): what may run in a borrowed address space. */
export interface GuestKthreads {
  uptimeS: number;
  runNs: number;
}

/** The guest's USER_HZ (/proc/stat's unit); 100 on Linux x86. */
export const GUEST_USER_HZ = 100;

/** dom0's side over the comparison's raw.xen windows, for the IDS-VM's one vCPU. */
export interface Cr3Dom0Span {
  /** IDS seconds the aggregator charged by CR3. */
  idsS: number;
  /** The IDS-VM's run time the trace accounted (runNs), s. */
  vcpuRunS: number;
  /** Of that, time in no known address space (cr3UnknownNs), s. */
  cr3UnknownS: number;
  /** Trace time the windows cover, s. */
  traceS: number;
  windows: number;
  /** Trace records Xen dropped in these windows (a full buffer): the trace says nothing of who ran then. */
  lostRecords: number;
}

/** dom0's CR3 figure for the IDS process against the guest's own, over one span. */
export interface Cr3IdsAgreement {
  /** The guest's span (uptime), s. */
  spanS: number;
  /** The IDS process's CPU % by its schedstat. */
  guestPct: number;
  /** The guest's steal over the span, % of it: time its schedstat counts to whichever task was current. */
  guestStealPct: number;
  /** The IDS's share of the IDS-VM's traced time in known address spaces (dom0, by CR3): what is compared. */
  dom0Pct: number;
  /** The IDS's CPU per second of trace (what the cage is charged; lower where records were lost). */
  dom0PerTracePct: number;
  /** The IDS-VM's traced run time, % of the trace time (100 when it ran throughout and nothing was lost). */
  vcpuTracedPct: number;
  /** raw.xen windows, the trace time they cover, s, and the records lost in them. */
  windows: number;
  traceS: number;
  lostRecords: number;
  /** |dom0Pct − guestPct| / guestPct. */
  relError: number;
  ok: boolean;
}

/**
 * The cr3-ids phase's first bar: over ≥ minSpanS, dom0's CR3 figure within `tolerance` of the
 * guest's own, with the guest's vCPU run throughout (steal ≤ maxStealPct of the span).
 * The guest's figure is a rate of its uptime, which is the IDS's share of its vCPU when the vCPU
 * was never stolen; dom0's is the IDS's share of the vCPU's traced time whose address space is
 * known. A span in which Xen dropped records is in neither part of dom0's share: the trace does
 * not say what ran then, and counting it as "not the IDS" would lower dom0's figure by that span.
 * Both are rates, because the windows' trace time and the guest's clock are not aligned to the
 * millisecond (guestRateSpread bounds what that costs).
 */
export function cr3IdsAgreement(first: GuestSchedstat, last: GuestSchedstat, dom0: Cr3Dom0Span, tolerance = 0.02, minSpanS = 20, maxStealPct = 1): Cr3IdsAgreement {
  const spanS = last.uptimeS - first.uptimeS;
  const guestPct = spanS > 0 ? ((last.runNs - first.runNs) / (spanS * 1e9)) * 100 : 0;
  const guestStealPct = spanS > 0 ? ((last.stealTicks - first.stealTicks) / GUEST_USER_HZ / spanS) * 100 : 0;
  const knownS = dom0.vcpuRunS - dom0.cr3UnknownS;
  const dom0Pct = knownS > 0 ? (dom0.idsS / knownS) * 100 : 0;
  const dom0PerTracePct = dom0.traceS > 0 ? (dom0.idsS / dom0.traceS) * 100 : 0;
  const vcpuTracedPct = dom0.traceS > 0 ? (dom0.vcpuRunS / dom0.traceS) * 100 : 0;
  const relError = guestPct > 0 ? Math.abs(dom0Pct - guestPct) / guestPct : 1;
  return {
    spanS,
    guestPct,
    guestStealPct,
    dom0Pct,
    dom0PerTracePct,
    vcpuTracedPct,
    windows: dom0.windows,
    traceS: dom0.traceS,
    lostRecords: dom0.lostRecords,
    relError,
    ok: spanS >= minSpanS && dom0.traceS >= minSpanS && knownS >= minSpanS / 2 && guestPct > 0 && guestStealPct <= maxStealPct && relError <= tolerance,
  };
}

/**
 * What a misaligned span could cost: the guest's own rate over the span [first, last] of `samples`
 * moved by up to `maxShift` samples either way (each about a second), as [min, max] %. dom0's
 * windows trail the guest's clock by an unmeasured second or two; if the rate is this flat around
 * the span, that lag moves the guest's figure by no more than this.
 */
export function guestRateSpread(samples: readonly GuestSchedstat[], first: number, last: number, maxShift = 3): [number, number] {
  if (!(first >= 0 && last > first && last < samples.length)) throw new Error(`guestRateSpread: span [${first}, ${last}] is not within the ${samples.length} samples`);
  let min = Infinity;
  let max = -Infinity;
  for (let k = -maxShift; k <= maxShift; k++) {
    const a = samples[first + k];
    const b = samples[last + k];
    if (a === undefined || b === undefined || b.uptimeS <= a.uptimeS) continue;
    const pct = ((b.runNs - a.runNs) / ((b.uptimeS - a.uptimeS) * 1e9)) * 100;
    min = Math.min(min, pct);
    max = Math.max(max, pct);
  }
  return [min, max];
}

/**
 * The kernel threads' run time over [fromS, toS] of guest uptime, % of the span: the most that a
 * kernel thread running in a borrowed (lazy TLB) address space can add to that address space's
 * CR3 time. From the samples nearest inside the span; 0 without two of them.
 */
export function guestKthreadPct(samples: readonly GuestKthreads[], fromS: number, toS: number): number {
  const inside = samples.filter((k) => k.uptimeS >= fromS && k.uptimeS <= toS);
  const a = inside[0];
  const b = inside[inside.length - 1];
  if (a === undefined || b === undefined || b.uptimeS <= a.uptimeS) return 0;
  return ((b.runNs - a.runNs) / ((b.uptimeS - a.uptimeS) * 1e9)) * 100;
}

/**
 * A guest console's panic, or null when its kernel did not panic: the lines that say where
 * (at most six of Kernel panic, BUG:, RIP: and traps:), joined by " | ".
 */
export function guestPanic(console: string): string | null {
  if (!console.includes("Kernel panic")) return null;
  return console
    .split("\n")
    .filter((l) => /Kernel panic|BUG:|RIP:|traps:/.test(l))
    .slice(0, 6)
    .join(" | ");
}

/** The IDS-VM console's `domU: ids-schedstat UPTIME PID RUNNS STEALTICKS` lines (lab/xen/domu/init.sh), in order. */
export function parseGuestSchedstat(console: string): GuestSchedstat[] {
  const out: GuestSchedstat[] = [];
  for (const m of console.matchAll(/^domU: ids-schedstat (\d+(?:\.\d+)?) \d+ (\d+) (\d+)(?: (loop|aide))?\r?$/gm)) {
    out.push({ uptimeS: Number(m[1]), runNs: Number(m[2]), stealTicks: Number(m[3]), ...(m[4] !== undefined ? { step: m[4] as Cr3PaperStep } : {}) });
  }
  return out;
}

/** The IDS-VM console's `domU: ids-kthreads UPTIME RUNNS` lines, in order. */
export function parseGuestKthreads(console: string): GuestKthreads[] {
  const out: GuestKthreads[] = [];
  for (const m of console.matchAll(/^domU: ids-kthreads (\d+(?:\.\d+)?) (\d+)\r?$/gm)) out.push({ uptimeS: Number(m[1]), runNs: Number(m[2]) });
  return out;
}

/** The guest's own view of the IDS's address spaces over one span (lab/xen/domu/ids-mm-trace.sh). */
export interface GuestMmSpan {
  spanS: number;
  /** The IDS processes on the CPU (by sched_switch): what their schedstat counts, %. */
  ownPct: number;
  /** Other tasks under an IDS address space (lazy TLB), %. */
  othersPct: number;
  /** The IDS's address space loaded while the vCPU ran: own + others; what dom0 sees by CR3, %. */
  mmLoadedPct: number;
  /** The idle task under it: the vCPU halted, which Xen does not count as run time, %. */
  idlePct: number;
  /** Events accounted, and events the guest's trace buffer dropped (0 for complete figures). */
  events: number;
  overrun: number;
}

/**
 * The IDS-VM console's `domU: ids-mm-span FROM TO OWN OTHERS IDLE EVENTS OVERRUN FIRST LAST` line
 * for the span [fromS, toS] (the guest's boot clock, as dom0 asked for it). Throws when there is
 * none, or when the recording (FIRST to LAST) does not cover the span: then the two views would not
 * cover the same time.
 */
export function parseGuestMmSpan(console: string, fromS: number, toS: number): GuestMmSpan {
  const num = String.raw`(\d+(?:\.\d+)?)`;
  const re = new RegExp(String.raw`^domU: ids-mm-span ${num} ${num} ${num} ${num} ${num} (\d+) (\d+) (\S+) (\S+)\r?$`, "gm");
  for (const m of console.matchAll(re)) {
    if (Number(m[1]) !== fromS || Number(m[2]) !== toS) continue;
    const first = Number(m[8]);
    const last = Number(m[9]);
    if (!(first <= fromS && last >= toS)) throw new Error(`parseGuestMmSpan: the guest's recording (${m[8]} to ${m[9]} s) does not cover the span [${fromS}, ${toS}]`);
    const spanS = toS - fromS;
    const pct = (v: string | undefined): number => (Number(v) / spanS) * 100;
    const ownPct = pct(m[3]);
    const othersPct = pct(m[4]);
    return { spanS, ownPct, othersPct, mmLoadedPct: ownPct + othersPct, idlePct: pct(m[5]), events: Number(m[6]), overrun: Number(m[7]) };
  }
  throw new Error(`parseGuestMmSpan: no ids-mm-span line for [${fromS}, ${toS}] on the IDS-VM's console`);
}

/** Which IDS runs in the IDS-VM: the CPU loop (`ids-loop`) or AIDE passes (`aide`). */
export type Cr3PaperStep = "loop" | "aide";

/** One stretch of the cr3-paper phase, in seconds from its start. */
export interface Cr3PaperSegment {
  step: Cr3PaperStep;
  /** Whether the busy domU runs beside the IDS-VM on its pCPU. */
  busyVm: boolean;
  fromS: number;
  toS: number;
}

/** The loop then AIDE alone, then (the busy domU started half-way) the loop then AIDE beside it. */
export function cr3PaperSegments(segmentS: number): Cr3PaperSegment[] {
  const steps: [Cr3PaperStep, boolean][] = [["loop", false], ["aide", false], ["loop", true], ["aide", true]];
  return steps.map(([step, busyVm], i) => ({ step, busyVm, fromS: i * segmentS, toS: (i + 1) * segmentS }));
}

/** One raw.xen window of the cr3-paper phase as dom0 saw it; atS: its arrival, s from the phase start. */
export interface Cr3PaperWindow {
  atS: number;
  windowSeconds: number;
  /** The IDS's CR3 time (the aggregator with the helper's reports), s. */
  idsS: number;
  /** The IDS-VM's traced run time, and of that the time in known address spaces, s. */
  idsVmRunS: number;
  idsVmKnownS: number;
  /** The busy domU's run time, s. */
  domuRunS: number;
}

/** A guest sample placed on dom0's time line: atS = its uptime minus the uptime at the phase start. */
export interface Cr3PaperGuestSample {
  atS: number;
  runNs: number;
  /** The IDS the guest ran at this sample, from its `ids-schedstat` line. */
  step?: Cr3PaperStep;
}

/** A stretch of consecutive guest samples with one IDS: the guest's own step, on its own clock. */
export interface Cr3PaperGuestRun {
  step: Cr3PaperStep;
  /** The run's first and last sample (phase seconds). */
  fromS: number;
  toS: number;
}

/**
 * The guest's steps as it took them: consecutive samples with the same step, in order. None
 * when a sample lacks its step (an init that does not print it).
 */
export function cr3PaperGuestRuns(guest: readonly Cr3PaperGuestSample[]): Cr3PaperGuestRun[] {
  const runs: Cr3PaperGuestRun[] = [];
  for (const g of guest) {
    if (g.step === undefined) return [];
    const last = runs[runs.length - 1];
    if (last !== undefined && last.step === g.step) last.toS = g.atS;
    else runs.push({ step: g.step, fromS: g.atS, toS: g.atS });
  }
  return runs;
}

/** The per-second series of the cr3-paper phase (one value per second, null where none). */
export interface Cr3PaperSeries {
  x: number[];
  /** The IDS's CPU by CR3 per second of trace: what the cage is charged. */
  dom0IdsPct: (number | null)[];
  /** The IDS's share of the IDS-VM's known traced time: the guest's view from outside. */
  dom0IdsSharePct: (number | null)[];
  idsVmPct: (number | null)[];
  domuPct: (number | null)[];
  /** The IDS's run time by its schedstat over the guest's uptime. */
  guestIdsPct: (number | null)[];
}

/**
 * Bins the phase's windows and guest samples into 1 s steps over [0, lengthS): a window counts in
 * the second it arrived (several in one second are summed), a guest rate in the second of the later
 * of its two samples. Ratios of sums, so that a long window weighs as much as its length.
 */
export function cr3PaperSeries(lengthS: number, windows: readonly Cr3PaperWindow[], guest: readonly Cr3PaperGuestSample[]): Cr3PaperSeries {
  const n = Math.max(0, Math.ceil(lengthS));
  const x = Array.from({ length: n }, (_, i) => i);
  const sums = x.map(() => ({ trace: 0, ids: 0, vm: 0, known: 0, domu: 0, gRun: 0, gSpan: 0 }));
  for (const w of windows) {
    const b = sums[Math.floor(w.atS)];
    if (b === undefined) continue;
    b.trace += w.windowSeconds;
    b.ids += w.idsS;
    b.vm += w.idsVmRunS;
    b.known += w.idsVmKnownS;
    b.domu += w.domuRunS;
  }
  for (let i = 1; i < guest.length; i++) {
    const a = guest[i - 1]!;
    const g = guest[i]!;
    const b = sums[Math.floor(g.atS)];
    if (b === undefined || g.atS <= a.atS) continue;
    b.gRun += (g.runNs - a.runNs) / 1e9;
    b.gSpan += g.atS - a.atS;
  }
  const pct = (num: number, den: number): number | null => (den > 0 ? (num / den) * 100 : null);
  return {
    x,
    dom0IdsPct: sums.map((b) => pct(b.ids, b.trace)),
    dom0IdsSharePct: sums.map((b) => pct(b.ids, b.known)),
    idsVmPct: sums.map((b) => pct(b.vm, b.trace)),
    domuPct: sums.map((b) => pct(b.domu, b.trace)),
    guestIdsPct: sums.map((b) => pct(b.gRun, b.gSpan)),
  };
}

/** One segment's figures, over its seconds after `settleS` (the switch and the trace's lag). */
export interface Cr3PaperSegmentFigures extends Cr3PaperSegment {
  windows: number;
  traceS: number;
  dom0IdsPct: number | null;
  dom0IdsSharePct: number | null;
  idsVmPct: number | null;
  domuPct: number | null;
  /** Where the guest's figure was taken (phase seconds): its own run of this step when it printed steps. */
  guestFromS: number | null;
  guestToS: number | null;
  guestSpanS: number;
  guestIdsPct: number | null;
  /** |dom0IdsSharePct − guestIdsPct| / guestIdsPct: the two views of the IDS's share of its VM. */
  relError: number | null;
}

/**
 * Each segment's figures after its first `settleS` seconds. dom0's come from the windows on dom0's
 * clock; the guest's from its own run of the segment's step, from the run's first sample +
 * `settleS` to its last, since beside a busy domU the guest takes dom0's steps seconds late and
 * dom0's clock would mix two IDSs. Samples without steps: dom0's clock.
 */
export function cr3PaperSegmentFigures(segments: readonly Cr3PaperSegment[], windows: readonly Cr3PaperWindow[], guest: readonly Cr3PaperGuestSample[], settleS: number): Cr3PaperSegmentFigures[] {
  const runs = cr3PaperGuestRuns(guest);
  return segments.map((seg, k) => {
    const from = seg.fromS + settleS;
    const ws = windows.filter((w) => w.atS >= from && w.atS < seg.toS);
    const sum = (f: (w: Cr3PaperWindow) => number): number => ws.reduce((t, w) => t + f(w), 0);
    const traceS = sum((w) => w.windowSeconds);
    const known = sum((w) => w.idsVmKnownS);
    const pct = (num: number, den: number): number | null => (den > 0 ? (num / den) * 100 : null);
    // The guest's run of this step: begun no earlier than dom0 asked for it, and before dom0 asked
    // for the same step again (a run it skipped is then no figure, not another segment's).
    const next = segments.slice(k + 1).find((s) => s.step === seg.step);
    const run = runs.find((r) => r.step === seg.step && r.fromS >= seg.fromS && (next === undefined || r.fromS < next.fromS));
    // Without steps dom0's clock, end excluded; on the guest's run, its last sample included.
    const span = runs.length === 0 ? { fromS: from, toS: seg.toS, toIncluded: false } : run === undefined ? null : { fromS: run.fromS + settleS, toS: run.toS, toIncluded: true };
    const gs = span === null ? [] : guest.filter((g) => g.atS >= span.fromS && (span.toIncluded ? g.atS <= span.toS : g.atS < span.toS));
    const g0 = gs[0];
    const g1 = gs[gs.length - 1];
    const guestSpanS = g0 !== undefined && g1 !== undefined ? g1.atS - g0.atS : 0;
    const guestIdsPct = g0 !== undefined && g1 !== undefined && guestSpanS > 0 ? ((g1.runNs - g0.runNs) / 1e9 / guestSpanS) * 100 : null;
    const idsS = sum((w) => w.idsS);
    const dom0IdsSharePct = pct(idsS, known);
    return {
      ...seg,
      windows: ws.length,
      traceS,
      dom0IdsPct: pct(idsS, traceS),
      dom0IdsSharePct,
      idsVmPct: pct(sum((w) => w.idsVmRunS), traceS),
      domuPct: pct(sum((w) => w.domuRunS), traceS),
      guestFromS: span?.fromS ?? null,
      guestToS: span?.toS ?? null,
      guestSpanS,
      guestIdsPct,
      relError: dom0IdsSharePct !== null && guestIdsPct !== null && guestIdsPct > 0 ? Math.abs(dom0IdsSharePct - guestIdsPct) / guestIdsPct : null,
    };
  });
}

/** The windows as `vm/ids/total` (whole %), for failure messages that must explain themselves in a log. */
export function windowTrace(windows: readonly CageWindow[]): string {
  return windows.map((w) => `${w.vmPct.toFixed(0)}/${w.idsPct.toFixed(0)}/${w.totalPct.toFixed(0)}`).join(" ");
}

/** What one actuator has done so far, from its own messages (docs/protocol.md). */
export interface ActuatorProgress {
  /** `act.state` messages seen: the actuator runs and has opened its back end. */
  states: number;
  /** Decisions carried out (no `error`). */
  applied: number;
  /** Decisions whose back-end call failed. */
  failed: number;
  lastError?: string;
}

/**
 * Tallies `actuator`'s messages. The cpu-on phase records only once the CPU actuator has applied a
 * cap and the limiter runs: two nodes start in dom0 at once under TCG, tens of seconds apart.
 */
export function actuatorProgress(messages: readonly RecordedActuatorMessage[], actuator: string): ActuatorProgress {
  const p: ActuatorProgress = { states: 0, applied: 0, failed: 0 };
  for (const m of messages) {
    let o: { actuator?: unknown; error?: unknown };
    try {
      o = JSON.parse(m.payload) as typeof o;
    } catch {
      continue; // not one of the actuators' JSON messages
    }
    if (o.actuator !== actuator) continue;
    if (m.topic === Topic.actuatorState) p.states++;
    else if (m.topic === Topic.actuatorDecision) {
      if (typeof o.error === "string") {
        p.failed++;
        p.lastError = o.error;
      } else p.applied++;
    }
  }
  return p;
}

/** One raw.xen window as dom0's recorder received it: when, how much trace, which xentrace run. */
export interface XenArrival {
  arrivalMs: number;
  windowSeconds: number;
  session: number;
  lostRecords: number;
}

/**
 * How far the trace fell behind dom0's clock at each window, s: the wall time since the session's
 * first window arrived minus the trace time its later windows covered. It grows while xentrace (or
 * the collector reading it) is not draining Xen's buffers, and falls back as a backlog is read; 0 at
 * each session's first window (a new xentrace run has a new time base).
 */
export function traceLagS(windows: readonly XenArrival[]): number[] {
  const out: number[] = [];
  let session = NaN;
  let firstMs = 0;
  let traceS = 0;
  for (const w of windows) {
    if (w.session !== session) {
      session = w.session;
      firstMs = w.arrivalMs;
      traceS = 0;
    } else traceS += w.windowSeconds;
    out.push((w.arrivalMs - firstMs) / 1000 - traceS);
  }
  return out;
}

/** Between two /proc/stat samples: busy, idle and stolen (runnable, not run by Xen), % of all ticks. */
export function procStatShares(a: HostCpuTicks, b: HostCpuTicks): { busyPct: number; idlePct: number; stealPct: number } {
  const busy = hostBusyTicks(b) - hostBusyTicks(a);
  const idle = hostIdleTicks(b) - hostIdleTicks(a);
  const steal = b.steal - a.steal;
  const all = busy + idle + steal;
  if (!(all > 0)) return { busyPct: 0, idlePct: 0, stealPct: 0 };
  return { busyPct: (busy / all) * 100, idlePct: (idle / all) * 100, stealPct: (steal / all) * 100 };
}
