/**
 * Turns raw collector batches into per-cage figures. Pure and synchronous: no clock, no I/O;
 * the service feeds it membership, memory samples and CPU batches, and reads aggregates back.
 *
 * This is the ingest hot path (bench/pipelineIngest.ts): every PID record of every CpuBatch
 * read in place goes through one lookup in a typed-array hash table (PidSlotTable) into a
 * precomputed slot, and sums live in a Float64Array. The per-window work is kept flat in the
 * number of cages: only slots a window touched are reset and accumulated, RSS and page cache
 * sums per cage are kept up to date as samples arrive, and the aggregate objects of a window are
 * built once, when first asked for.
 */
import type { CageSpec } from "../config/cageConfig.js";
import type { VmThread } from "../host/libvirt/qemuThreads.js";
import { encodeCageAggregates, VM_CPU_KINDS, type CageAggregate, type CageIdsMemory, type VmCpuKind } from "../protocol/cageAggregate.js";
import type { CageMembersEntry } from "../protocol/cageMembers.js";
import type { CpuBatch, CpuBatchView, MemoryBatch, PageCacheBatch } from "../protocol/rawBatches.js";
import type { XenDomainCpu, XenDomainCpuEntry } from "../protocol/xenDomainCpu.js";
import { cr3Frame, parseHelperEntry, type IdsHelperClaim, type IdsHelperSnapshot } from "../host/xen/idsHelperEntries.js";

/** A Xen VM's CPU figure older than this (wall clock) is no longer reported: its collector went quiet. */
export const XEN_STALE_MS = 5_000;
/**
 * A helper-reported CR3 that has not run in its IDS-VM over this many raw.xen windows since it was
 * reported is counted once as unseen (stats.helperUnseenCr3s); it is never charged either way.
 */
export const HELPER_CR3_UNSEEN_WINDOWS = 10;

export type CageRole = "vm" | "ids";
export const CAGE_ROLES: readonly CageRole[] = ["vm", "ids"];

/** The PIDs resolved for one cage, and the start time of each (with it a PID names one process). */
export interface CagePids {
  vm: readonly number[];
  ids: readonly number[];
  /** PID → field 22 of /proc/PID/stat; every PID in vm and ids must have one. */
  startTimes: ReadonlyMap<number, number>;
  /**
   * QEMU VMs (vm.kind qemu, libvirt): the VM's host threads by kind (host/libvirt/qemuThreads.ts).
   * Threads of PIDs not in `vm` are ignored, except kernel vhost workers (pid = tid, kind vhost):
   * they work for the VM from outside its processes and are charged to it without joining `vm`.
   */
  vmThreads?: readonly VmThread[];
}

/** What one setMembership call changed for one cage and role (for the log). */
export interface MembershipChange {
  cage: string;
  role: CageRole;
  added: number[];
  removed: number[];
}

/** Running totals of what the aggregator saw, for health metrics and tests. */
export interface AggregatorStats {
  cpuBatches: number;
  memoryBatches: number;
  pageCacheBatches: number;
  xenWindows: number;
  /** Process records in CPU batches whose PID belongs to no cage (ignored). */
  unknownPidRecords: number;
  /** PIDs claimed by two cages or by both roles of one cage at the last setMembership. */
  conflictingPids: number;
  /** IDS-VM helper entries (xenstore) that are not "CR3 STARTTIME" under a PID, or beyond the per-domain bound; each distinct entry once. */
  helperMalformed: number;
  /** Helper entries found below a domain that is no cage's `cr3From: helper` IDS-VM; each distinct entry once. */
  helperForged: number;
  /** Reported CR3s that never ran in their IDS-VM within HELPER_CR3_UNSEEN_WINDOWS windows; each once. */
  helperUnseenCr3s: number;
}

/** Why a helper entry was ignored (setIdsHelpers returns the new ones, for the log). */
export interface HelperRejection {
  reason: "malformed" | "forged";
  domain: number;
  key: string;
  detail: string;
}

/** A reported CR3 of one IDS-VM, and how long it has gone without running there. */
interface HelperCr3 {
  claim: IdsHelperClaim;
  windows: number;
  seen: boolean;
  countedUnseen: boolean;
}

/** A `cr3From: helper` IDS-VM of a cage: its domain and the CR3 frames its helper reports now. */
interface Cr3IdsVm {
  domain: string | number;
  /** The domain ID xenstore showed for it at the last read: raw.xen windows carry names only while `xl list` works. */
  domainId: number | null;
  cr3s: Map<string, HelperCr3>;
}

// Slot = cageIndex * 2 + role: one flat array for all sums, no per-record object.
const VM = 0;
const IDS = 1;
// Kind entry = cageIndex * KINDS + the kind's index in VM_CPU_KINDS.
const KINDS = VM_CPU_KINDS.length;
const VCPU = VM_CPU_KINDS.indexOf("vcpu");
const EMULATOR = VM_CPU_KINDS.indexOf("emulator");
const VHOST = VM_CPU_KINDS.indexOf("vhost");

/** VMs whose host threads are QEMU's, so their CPU splits by kind. */
function splitsByKind(spec: CageSpec): boolean {
  return spec.vm.kind === "qemu" || spec.vm.kind === "libvirt";
}

interface CageState {
  spec: CageSpec;
  pids: [vm: number[], ids: number[]];
  /** startTimes[role][i] is the start time of pids[role][i]. */
  startTimes: [vm: number[], ids: number[]];
  latest: CageAggregate | null;
  /** Xen cages only: the domain's CPU % in the newest raw.xen window, and when it came. */
  xen: { cpuPct: number; timeMs: number } | null;
  /** Cages with Xen IDS-VMs only: their domains' CPU % summed over the newest raw.xen window, and when it came. */
  idsXen: { cpuPct: number; timeMs: number } | null;
  /** Xen IDS-VMs charged by CR3 (`cr3From: helper`), in idsCr3 order. */
  cr3IdsVms: Cr3IdsVm[];
  /** Cages with cr3IdsVms only: those domains' CPU % outside the reported CR3s in the newest raw.xen window (not the cage's). */
  idsVmOwn: { cpuPct: number; timeMs: number } | null;
}

/** Whether a configured domain (ID or name) is this one. */
function sameDomain(configured: string | number, id: number, name: string | null | undefined): boolean {
  return typeof configured === "number" ? configured === id : configured === name || configured === String(id);
}

/** A domain's run time in a raw.xen window (by ID, or by the name `xl list` reported); 0 when it did not run. */
function xenRunNs(window: XenDomainCpu, domain: string | number): number {
  return xenDomainEntry(window, domain)?.runNs ?? 0;
}

function xenDomainEntry(window: XenDomainCpu, domain: string | number): XenDomainCpuEntry | undefined {
  return window.domains.find((d) => sameDomain(domain, d.domain, d.name));
}

/**
 * The run time of an IDS-VM's domain in the address spaces its helper reported, marking each
 * reported CR3 that ran; the rest of the domain's time (other CR3s, CR3s left out by the payload's
 * bound, time with no CR3 known) is not the IDS's.
 */
function chargeReportedCr3s(entry: XenDomainCpuEntry | undefined, vm: Cr3IdsVm): number {
  let runNs = 0;
  if (entry !== undefined && vm.cr3s.size > 0) {
    for (const vcpu of entry.vcpus) {
      for (const c of vcpu.cr3s ?? []) {
        const reported = vm.cr3s.get(cr3Frame(c.cr3));
        if (reported === undefined) continue;
        reported.seen = true;
        runNs += c.runNs;
      }
    }
  }
  return runNs;
}

/**
 * A fixed PID → slot table for CpuBatchView records (u32 PIDs; slots are small non-negative
 * integers): open addressing with linear probing over two typed arrays, at most half full.
 * Built once per membership from the slot Map; a lookup reads one or two adjacent entries of
 * 8 bytes, where a Map's buckets and entries spread over memory that grows with the members.
 */
export class PidSlotTable {
  private readonly keys: Uint32Array;
  /** The slot of keys[i], or -1 where the entry is empty. */
  private readonly slots: Int32Array;
  private readonly mask: number;
  private readonly shift: number;

  constructor(slotOfPid: ReadonlyMap<number, number>) {
    let bits = 4;
    while (1 << bits < slotOfPid.size * 2) bits++;
    this.keys = new Uint32Array(1 << bits);
    this.slots = new Int32Array(1 << bits).fill(-1);
    this.mask = (1 << bits) - 1;
    this.shift = 32 - bits;
    for (const [pid, slot] of slotOfPid) {
      // A PID a batch cannot carry (not a u32) is never looked up here.
      if (!Number.isInteger(pid) || pid < 0 || pid > 0xffff_ffff) continue;
      let i = this.home(pid);
      while (this.slots[i]! >= 0 && this.keys[i] !== pid) i = (i + 1) & this.mask;
      this.keys[i] = pid;
      this.slots[i] = slot;
    }
  }

  /** Fibonacci hashing: consecutive PIDs (a process tree) land far apart. */
  private home(pid: number): number {
    return Math.imul(pid, 0x9e37_79b1) >>> this.shift;
  }

  /** The slot of `pid`, or -1 when it has none. */
  get(pid: number): number {
    const keys = this.keys;
    const slots = this.slots;
    let i = this.home(pid);
    for (;;) {
      const slot = slots[i]!;
      if (slot < 0 || keys[i] === pid) return slot;
      i = (i + 1) & this.mask;
    }
  }
}

export class CageAggregator {
  private readonly cages: CageState[];
  private slotOfPid = new Map<number, number>();
  /** slotOfPid as the CPU batches look it up. */
  private slotTable = new PidSlotTable(this.slotOfPid);
  /**
   * PIDs a setMembership given `atNs` took out of their cage (the process exited, or a rescan no
   * longer matched it): still charged to their former slot in CPU windows that began before
   * `untilNs`, since a window's batch arrives after the window, and a process that exits near
   * its end is dropped by a resolution in between. Pruned once a window begins at or after it.
   */
  private retiredSlots = new Map<number, { slot: number; untilNs: bigint }>();
  /**
   * The vCPU and vhost threads of QEMU VMs: TID → its thread group and kind entry. Emulator
   * threads are not listed: a VM's emulator time is what its vCPU and vhost threads did not use,
   * so a thread QEMU started since the last resolution is still charged.
   */
  private kindOfTid = new Map<number, { pid: number; entry: number }>();
  /** On-CPU ns per kind entry in the newest CPU window; cumulative since construction. */
  private readonly kindWindowNs: Float64Array;
  private readonly kindCumulativeNs: Float64Array;
  /** The cages whose kind entries the newest window charged, so the next one resets only those. */
  private readonly kindTouchedCages: Int32Array;
  private kindTouchedCount = 0;
  private readonly kindCageTouched: Uint8Array;
  private readonly cageSplitsByKind: Uint8Array;
  /** Latest VmRSS per PID, from the newest memory batch that carried it. */
  private readonly rssOfPid = new Map<number, number>();
  /**
   * Which cage's IDS each PID's page cache is charged to. Unlike CPU and RSS this outlives the
   * process: the cache an IDS's reads created stays resident after it exits (AIDE finishing a
   * scan), and it is still memory the cage caused until the kernel evicts it.
   */
  private readonly pageCacheOwner = new Map<number, number>();
  /** Resident page cache per PID from the newest page cache batch (a full snapshot). */
  private residentOfPid = new Map<number, number>();
  /** Cumulative on-CPU nanoseconds per slot since construction. */
  private readonly cumulativeNs: Float64Array;
  /** On-CPU nanoseconds per slot in the newest CPU window (reused: no allocation per batch). */
  private readonly windowNs: Float64Array;
  /** The slots the newest window charged, so the next one resets only those. */
  private readonly touchedSlots: Int32Array;
  private touchedCount = 0;
  private readonly slotTouched: Uint8Array;
  /** Sum of the latest VmRSS of each slot's PIDs, kept current by ingestMemory and setMembership. */
  private readonly rssOfSlot: Float64Array;
  /** Resident page cache charged to each cage, kept current by ingestPageCache and setMembership. */
  private readonly pageCacheOfCage: Float64Array;
  /** Each cage's IDS RSS and page cache as takeIdsMemoryChanges last returned them (NaN: never). */
  private readonly idsRssTaken: Float64Array;
  private readonly idsPageCacheTaken: Float64Array;
  /** The newest CPU window whose aggregates are not built yet, or null. */
  private pendingWindow: { windowNs: number; windowSeconds: number; timeMs: number } | null = null;
  private windowAggregatesBuilt: CageAggregate[] = [];
  /** The newest window's `agg.window` payload once built (windowAggregatesJson), until the next window. */
  private windowJson: Buffer | null = null;
  /** Per cage: the JSON text of what changes only with the cage file or the membership (windowAggregatesJson). */
  private readonly jsonParts: CageJsonParts[];
  readonly stats: AggregatorStats = {
    cpuBatches: 0,
    memoryBatches: 0,
    pageCacheBatches: 0,
    xenWindows: 0,
    unknownPidRecords: 0,
    conflictingPids: 0,
    helperMalformed: 0,
    helperForged: 0,
    helperUnseenCr3s: 0,
  };
  /** The helper entries the last setIdsHelpers ignored, so one that stays is counted once. */
  private rejectedHelperEntries = new Set<string>();

  constructor(cages: readonly CageSpec[]) {
    const seen = new Set<string>();
    for (const c of cages) {
      if (seen.has(c.name)) throw new Error(`cage aggregator: duplicate cage name ${JSON.stringify(c.name)}`);
      seen.add(c.name);
    }
    this.cages = cages.map((spec) => ({
      spec,
      pids: [[], []],
      startTimes: [[], []],
      latest: null,
      xen: null,
      idsXen: null,
      cr3IdsVms: (spec.idsCr3 ?? []).map((v) => ({ domain: v.domain, domainId: typeof v.domain === "number" ? v.domain : null, cr3s: new Map<string, HelperCr3>() })),
      idsVmOwn: null,
    }));
    this.cumulativeNs = new Float64Array(cages.length * 2);
    this.windowNs = new Float64Array(cages.length * 2);
    this.touchedSlots = new Int32Array(cages.length * 2);
    this.slotTouched = new Uint8Array(cages.length * 2);
    this.rssOfSlot = new Float64Array(cages.length * 2);
    this.pageCacheOfCage = new Float64Array(cages.length);
    this.idsRssTaken = new Float64Array(cages.length).fill(NaN);
    this.idsPageCacheTaken = new Float64Array(cages.length).fill(NaN);
    this.kindWindowNs = new Float64Array(cages.length * KINDS);
    this.kindCumulativeNs = new Float64Array(cages.length * KINDS);
    this.kindTouchedCages = new Int32Array(cages.length);
    this.kindCageTouched = new Uint8Array(cages.length);
    this.cageSplitsByKind = Uint8Array.from(cages, (c) => (splitsByKind(c) ? 1 : 0));
    this.jsonParts = cages.map((spec) => ({
      head: `{"v":1,"cage":${JSON.stringify(spec.name)},"timeMs":`,
      tail: `,"capPct":${jsonNumber(spec.cpu.cap)},"idsCapPct":${JSON.stringify(spec.cpu.idsCap)},"weight":${JSON.stringify(spec.cpu.weight)},"memory":${JSON.stringify(memoryOf(spec))}}`,
      members: [null, null],
    }));
  }

  /** How many cages are configured: every CPU window has an aggregate for each. */
  get cageCount(): number {
    return this.cages.length;
  }

  get cageNames(): string[] {
    return this.cages.map((c) => c.spec.name);
  }

  get cageSpecs(): CageSpec[] {
    return this.cages.map((c) => c.spec);
  }

  /**
   * Replaces the PID→cage mapping with a fresh resolution. Cages missing from `membership`
   * have no members; names not configured are ignored. A PID claimed twice keeps its first
   * claim in config order, and within one cage the IDS role wins (an IDS started by the VM's
   * process tree is still the IDS). Memory samples of PIDs that left every cage are dropped.
   * Throws, changing nothing, when a member PID has no start time.
   *
   * `atNs` (CLOCK_MONOTONIC, the CPU windows' clock): when the change takes effect; a PID that
   * leaves is still charged to its former cage and role in the windows that began before it.
   * Without it, a PID that leaves is charged to nobody from the next window on.
   */
  setMembership(membership: ReadonlyMap<string, CagePids>, atNs?: bigint): MembershipChange[] {
    for (const [name, resolved] of membership) {
      for (const pid of [...resolved.vm, ...resolved.ids]) {
        if (!resolved.startTimes.has(pid)) throw new Error(`cage aggregator: cage ${JSON.stringify(name)}: PID ${pid} has no start time`);
      }
    }
    this.buildPendingAggregates();
    const slotOfPid = new Map<number, number>();
    const kindOfTid = new Map<number, { pid: number; entry: number }>();
    const changes: MembershipChange[] = [];
    let conflicts = 0;
    this.cages.forEach((cage, index) => {
      const resolved = membership.get(cage.spec.name);
      const next: [number[], number[]] = [[], []];
      // IDS first so it wins over VM inside the cage.
      for (const role of [IDS, VM]) {
        for (const pid of role === IDS ? (resolved?.ids ?? []) : (resolved?.vm ?? [])) {
          if (slotOfPid.has(pid)) {
            conflicts++;
            continue;
          }
          slotOfPid.set(pid, index * 2 + role);
          next[role]!.push(pid);
        }
      }
      for (const role of [VM, IDS]) {
        next[role]!.sort((a, b) => a - b);
        const change = diffSorted(cage.pids[role]!, next[role]!);
        if (change.added.length > 0 || change.removed.length > 0) {
          changes.push({ cage: cage.spec.name, role: CAGE_ROLES[role]!, ...change });
        }
      }
      cage.pids = next;
      if (this.cageSplitsByKind[index] === 1) this.noteVmThreads(index, resolved?.vmThreads ?? [], next[VM], slotOfPid, kindOfTid);
      cage.startTimes = [next[VM].map((pid) => resolved!.startTimes.get(pid)!), next[IDS].map((pid) => resolved!.startTimes.get(pid)!)];
      for (const pid of next[IDS]) this.pageCacheOwner.set(pid, index);
    });
    for (const pid of this.retiredSlots.keys()) if (slotOfPid.has(pid)) this.retiredSlots.delete(pid);
    if (atNs !== undefined) {
      for (const [pid, slot] of this.slotOfPid) if (!slotOfPid.has(pid)) this.retiredSlots.set(pid, { slot, untilNs: atNs });
    }
    this.slotOfPid = slotOfPid;
    this.slotTable = new PidSlotTable(slotOfPid);
    this.kindOfTid = kindOfTid;
    this.stats.conflictingPids = conflicts;
    for (const pid of this.rssOfPid.keys()) if (!slotOfPid.has(pid)) this.rssOfPid.delete(pid);
    this.rssOfSlot.fill(0);
    for (const [pid, slot] of slotOfPid) this.rssOfSlot[slot] = this.rssOfSlot[slot]! + (this.rssOfPid.get(pid) ?? 0);
    this.sumPageCache();
    return changes;
  }

  /**
   * Lists cage `index`'s vCPU and vhost threads in kindOfTid, and charges its kernel vhost workers
   * to its VM slot. Only threads of its own VM PIDs count: a thread list from a moment when a PID
   * was claimed elsewhere must not split another cage's time.
   */
  private noteVmThreads(index: number, threads: readonly VmThread[], vmPids: readonly number[], slotOfPid: Map<number, number>, kindOfTid: Map<number, { pid: number; entry: number }>): void {
    const own = new Set(vmPids);
    for (const t of threads) {
      if (t.kind === "emulator") continue;
      if (!own.has(t.pid)) {
        const kernelWorker = t.kind === "vhost" && t.pid === t.tid && !slotOfPid.has(t.pid);
        if (!kernelWorker) continue;
        slotOfPid.set(t.pid, index * 2 + VM);
      }
      kindOfTid.set(t.tid, { pid: t.pid, entry: index * KINDS + (t.kind === "vcpu" ? VCPU : VHOST) });
    }
  }

  /** PIDs no longer members but still charged to windows that began before they left (tests). */
  get retiredPids(): number[] {
    return [...this.retiredSlots.keys()];
  }

  /** Whether a cage is charged for this PID as a member now. */
  /**
   * Every cage's charged PIDs and their start times, in the cage file's order (the `agg.members`
   * payload). setMembership replaces these arrays, never changes them, so they are not copied.
   */
  members(): CageMembersEntry[] {
    return this.cages.map((c) => ({ cage: c.spec.name, vm: { pids: c.pids[VM], startTimes: c.startTimes[VM] }, ids: { pids: c.pids[IDS], startTimes: c.startTimes[IDS] } }));
  }

  charges(pid: number): boolean {
    return this.slotOfPid.has(pid);
  }

  /** Which cage and role a PID is charged to, or undefined. */
  lookup(pid: number): { cage: string; role: CageRole } | undefined {
    const slot = this.slotOfPid.get(pid);
    if (slot === undefined) return undefined;
    return { cage: this.cages[slot >> 1]!.spec.name, role: CAGE_ROLES[slot & 1]! };
  }

  /** Remembers each PID's latest VmRSS. Samples of PIDs in no cage are kept until the next setMembership. */
  ingestMemory(batch: MemoryBatch): void {
    this.buildPendingAggregates();
    this.stats.memoryBatches++;
    for (const p of batch.processes) {
      const before = this.rssOfPid.get(p.pid) ?? 0;
      this.rssOfPid.set(p.pid, p.vmRssBytes);
      const slot = this.slotOfPid.get(p.pid);
      // Byte counts are integers below 2^53, so the running sum stays exact.
      if (slot !== undefined) this.rssOfSlot[slot] = this.rssOfSlot[slot]! + p.vmRssBytes - before;
    }
  }

  /**
   * Takes the page cache collector's snapshot of resident bytes per PID. A PID keeps its owner
   * cage while it still has cache resident, even after it left the cage (exited); an owner with
   * nothing resident and no longer a member is forgotten, so the map stays bounded.
   */
  ingestPageCache(batch: PageCacheBatch): void {
    this.buildPendingAggregates();
    this.stats.pageCacheBatches++;
    const resident = new Map<number, number>();
    for (const p of batch.processes) resident.set(p.pid, p.residentBytes);
    this.residentOfPid = resident;
    for (const pid of this.pageCacheOwner.keys()) {
      if ((resident.get(pid) ?? 0) <= 0 && this.slotOfPid.get(pid) === undefined) this.pageCacheOwner.delete(pid);
    }
    this.sumPageCache();
  }

  /**
   * Charges a Xen domain's run time (xentrace windows) to the VM role of the cages whose
   * `vm.kind` is xen, and to the IDS role of the cages with Xen IDS-VMs, matched by domain ID or
   * by the name `xl list` reported. A configured domain absent from the window did not run: 0%.
   */
  ingestXen(window: XenDomainCpu): void {
    this.buildPendingAggregates();
    this.stats.xenWindows++;
    const windowNs = window.windowSeconds * 1e9;
    for (let c = 0; c < this.cages.length; c++) {
      const cage = this.cages[c]!;
      const vm = cage.spec.vm;
      if (vm.kind === "xen") {
        const runNs = xenRunNs(window, vm.domain);
        this.cumulativeNs[c * 2 + VM] = this.cumulativeNs[c * 2 + VM]! + runNs;
        cage.xen = { cpuPct: windowNs > 0 ? (runNs / windowNs) * 100 : 0, timeMs: window.timeMs };
      }
      const idsXen = (cage.spec.idsVms ?? []).filter((v) => v.kind === "xen");
      if (idsXen.length > 0) {
        let runNs = 0;
        let ownNs = 0;
        for (const v of idsXen) {
          const cr3Vm = cage.cr3IdsVms.find((r) => r.domain === v.domain);
          if (cr3Vm === undefined) {
            runNs += xenRunNs(window, v.domain);
            continue;
          }
          const entry = xenDomainEntry(window, v.domain) ?? (cr3Vm.domainId === null ? undefined : xenDomainEntry(window, cr3Vm.domainId));
          const idsNs = chargeReportedCr3s(entry, cr3Vm);
          runNs += idsNs;
          ownNs += Math.max(0, (entry?.runNs ?? 0) - idsNs);
          this.ageReportedCr3s(cr3Vm);
        }
        this.cumulativeNs[c * 2 + IDS] = this.cumulativeNs[c * 2 + IDS]! + runNs;
        cage.idsXen = { cpuPct: windowNs > 0 ? (runNs / windowNs) * 100 : 0, timeMs: window.timeMs };
        if (cage.cr3IdsVms.length > 0) cage.idsVmOwn = { cpuPct: windowNs > 0 ? (ownNs / windowNs) * 100 : 0, timeMs: window.timeMs };
      }
    }
  }

  /** Counts, once each, the reported CR3s that have gone HELPER_CR3_UNSEEN_WINDOWS windows without running. */
  private ageReportedCr3s(vm: Cr3IdsVm): void {
    for (const r of vm.cr3s.values()) {
      r.windows++;
      if (!r.seen && !r.countedUnseen && r.windows >= HELPER_CR3_UNSEEN_WINDOWS) {
        r.countedUnseen = true;
        this.stats.helperUnseenCr3s++;
      }
    }
  }

  /**
   * Takes a fresh read of the IDS-VM helpers' xenstore entries: the CR3s each `cr3From: helper`
   * IDS-VM reports replace the previous ones (a withdrawn CR3 stops being charged at once).
   * Entries below other domains are forged, entries not in the helper's format malformed: both
   * are ignored and counted once while they stay; the new ones are returned for the log.
   */
  setIdsHelpers(snapshot: IdsHelperSnapshot): HelperRejection[] {
    this.buildPendingAggregates();
    const fresh: HelperRejection[] = [];
    const rejected = new Set<string>();
    const reject = (r: HelperRejection, value: string): void => {
      const id = `${r.domain}/${r.key}=${value}`;
      rejected.add(id);
      if (this.rejectedHelperEntries.has(id)) return;
      if (r.reason === "forged") this.stats.helperForged++;
      else this.stats.helperMalformed++;
      fresh.push(r);
    };
    const next = new Map<Cr3IdsVm, Map<string, HelperCr3>>();
    for (const cage of this.cages) for (const vm of cage.cr3IdsVms) next.set(vm, new Map());
    for (const d of snapshot.domains) {
      const targets = [...next.keys()].filter((vm) => sameDomain(vm.domain, d.domain, d.name));
      for (const vm of targets) vm.domainId = d.domain;
      if (d.overflow > 0) reject({ reason: "malformed", domain: d.domain, key: "(overflow)", detail: `${d.overflow} entries beyond the per-domain bound` }, String(d.overflow));
      for (const entry of d.entries) {
        if (targets.length === 0) {
          reject({ reason: "forged", domain: d.domain, key: entry.key, detail: `domain ${d.domain}${d.name === null ? "" : ` (${d.name})`} is no cage's cr3From: helper IDS-VM` }, entry.value);
          continue;
        }
        const claim = parseHelperEntry(entry);
        if (typeof claim === "string") {
          reject({ reason: "malformed", domain: d.domain, key: entry.key, detail: claim }, entry.value);
          continue;
        }
        for (const vm of targets) {
          const before = vm.cr3s.get(claim.frame);
          // The same process keeps its age; a new process on a reused frame starts afresh.
          const same = before !== undefined && before.claim.pid === claim.pid && before.claim.startTime === claim.startTime;
          next.get(vm)!.set(claim.frame, same ? { ...before, claim } : { claim, windows: 0, seen: false, countedUnseen: false });
        }
      }
    }
    for (const [vm, cr3s] of next) vm.cr3s = cr3s;
    this.rejectedHelperEntries = rejected;
    return fresh;
  }

  /**
   * Forgets every reported CR3 (the helpers' reports could not be read): nothing is charged by CR3
   * until the next setIdsHelpers. The bad entries already counted stay counted once.
   */
  dropIdsHelperReports(): void {
    this.buildPendingAggregates();
    for (const cage of this.cages) for (const vm of cage.cr3IdsVms) vm.cr3s = new Map();
  }

  /** The CR3s a cage's `cr3From: helper` IDS-VMs report now (tests, the lab). */
  reportedCr3s(cage: string): IdsHelperClaim[] {
    return this.cages[this.indexOf(cage)]!.cr3IdsVms.flatMap((vm) => [...vm.cr3s.values()].map((r) => r.claim));
  }

  /**
   * Charges one CPU window to the cages and returns one aggregate per configured cage, in config
   * order. `wallMsAtMonotonicZero` maps the batch's CLOCK_MONOTONIC times to wall-clock time
   * (Date.now() − monotonic ms, measured by the caller).
   */
  ingestCpu(batch: CpuBatch, wallMsAtMonotonicZero: number): CageAggregate[] {
    this.beginCpuWindow();
    const slotOfPid = this.slotOfPid;
    const processes = batch.processes;
    let unknown = 0;
    const retired = this.retiredSlots.size > 0;
    for (let i = 0; i < processes.length; i++) {
      const p = processes[i]!;
      const slot = slotOfPid.get(p.pid) ?? (retired ? this.retiredSlot(p.pid, batch.windowStartNs) : undefined);
      if (slot === undefined) unknown++;
      else this.charge(slot, p.cpuNs);
    }
    if (retired) this.pruneRetired(batch.windowStartNs);
    if (this.kindOfTid.size > 0) for (const t of batch.threads) this.chargeThread(t.pid, t.tid, t.cpuNs);
    this.endCpuWindow(batch.windowStartNs, batch.windowEndNs, unknown, wallMsAtMonotonicZero);
    return this.windowAggregates();
  }

  /** ingestCpu for a batch read in place from its frame (the pipeline's receive path). */
  ingestCpuView(batch: CpuBatchView, wallMsAtMonotonicZero: number): CageAggregate[] {
    this.chargeCpuView(batch, wallMsAtMonotonicZero);
    return this.windowAggregates();
  }

  /**
   * Charges one CPU window without building its aggregates: the work is proportional to the
   * batch's records, not to the number of cages. windowAggregates() builds them when asked.
   */
  chargeCpuView(batch: CpuBatchView, wallMsAtMonotonicZero: number): void {
    this.beginCpuWindow();
    const table = this.slotTable;
    const n = batch.processCount;
    let unknown = 0;
    const retired = this.retiredSlots.size > 0;
    const windowStartNs = retired ? batch.windowStartNs : 0n;
    for (let i = 0; i < n; i++) {
      const pid = batch.processPid(i);
      let slot = table.get(pid);
      if (slot < 0 && retired) slot = this.retiredSlot(pid, windowStartNs) ?? -1;
      if (slot < 0) unknown++;
      else this.charge(slot, batch.processCpuNs(i));
    }
    if (retired) this.pruneRetired(windowStartNs);
    if (this.kindOfTid.size > 0) {
      const threads = batch.threadCount;
      for (let j = 0; j < threads; j++) this.chargeThread(batch.threadPid(j), batch.threadTid(j), batch.threadCpuNs(j));
    }
    this.endCpuWindow(batch.windowStartNs, batch.windowEndNs, unknown, wallMsAtMonotonicZero);
  }

  /** The former slot of a PID that left its cage after this window began, or undefined. */
  private retiredSlot(pid: number, windowStartNs: bigint): number | undefined {
    const r = this.retiredSlots.get(pid);
    return r !== undefined && windowStartNs < r.untilNs ? r.slot : undefined;
  }

  /** Windows arrive in order: once one begins after a PID left, no later window is its former cage's. */
  private pruneRetired(windowStartNs: bigint): void {
    for (const [pid, r] of this.retiredSlots) if (r.untilNs <= windowStartNs) this.retiredSlots.delete(pid);
  }

  private beginCpuWindow(): void {
    // A window nobody asked the aggregates of is superseded: latest means the newest window.
    this.pendingWindow = null;
    this.windowJson = null;
    this.stats.cpuBatches++;
    const sums = this.windowNs;
    for (let i = 0; i < this.touchedCount; i++) {
      const slot = this.touchedSlots[i]!;
      sums[slot] = 0;
      this.slotTouched[slot] = 0;
    }
    this.touchedCount = 0;
    for (let i = 0; i < this.kindTouchedCount; i++) {
      const c = this.kindTouchedCages[i]!;
      this.kindWindowNs.fill(0, c * KINDS, c * KINDS + KINDS);
      this.kindCageTouched[c] = 0;
    }
    this.kindTouchedCount = 0;
  }

  private touchKinds(cage: number): void {
    if (this.kindCageTouched[cage] === 0) {
      this.kindCageTouched[cage] = 1;
      this.kindTouchedCages[this.kindTouchedCount++] = cage;
    }
  }

  /** Charges a thread record to its kind, when it is a known vCPU or vhost thread of a QEMU VM. */
  private chargeThread(pid: number, tid: number, cpuNs: number): void {
    const t = this.kindOfTid.get(tid);
    if (t === undefined || t.pid !== pid) return;
    this.touchKinds((t.entry / KINDS) | 0);
    this.kindWindowNs[t.entry] = this.kindWindowNs[t.entry]! + cpuNs;
  }

  private charge(slot: number, cpuNs: number): void {
    if (this.slotTouched[slot] === 0) {
      this.slotTouched[slot] = 1;
      this.touchedSlots[this.touchedCount++] = slot;
    }
    this.windowNs[slot] = this.windowNs[slot]! + cpuNs;
  }

  private endCpuWindow(windowStartNs: bigint, windowEndNs: bigint, unknownRecords: number, wallMsAtMonotonicZero: number): void {
    this.stats.unknownPidRecords += unknownRecords;
    // Untouched slots add 0: accumulating only the touched ones gives the same totals.
    for (let i = 0; i < this.touchedCount; i++) {
      const slot = this.touchedSlots[i]!;
      this.cumulativeNs[slot] = this.cumulativeNs[slot]! + this.windowNs[slot]!;
      if ((slot & 1) === VM && this.cageSplitsByKind[slot >> 1] === 1) this.touchKinds(slot >> 1);
    }
    for (let i = 0; i < this.kindTouchedCount; i++) this.splitVmWindow(this.kindTouchedCages[i]!);
    const windowNs = Number(windowEndNs - windowStartNs);
    this.pendingWindow = { windowNs, windowSeconds: windowNs / 1e9, timeMs: wallMsAtMonotonicZero + Number(windowEndNs) / 1e6 };
  }

  /**
   * Completes cage c's split of the window: emulator is the VM's time its vCPU and vhost threads
   * did not use. Thread records that add up to more than their processes' (a collector's error)
   * are scaled down to the VM's total, so the kinds always sum to it.
   */
  private splitVmWindow(c: number): void {
    const k = this.kindWindowNs;
    const base = c * KINDS;
    const vmNs = this.windowNs[c * 2 + VM]!;
    const threadNs = k[base + VCPU]! + k[base + VHOST]!;
    if (threadNs > vmNs) {
      const scale = threadNs > 0 ? vmNs / threadNs : 0;
      k[base + VCPU] = k[base + VCPU]! * scale;
      k[base + VHOST] = k[base + VHOST]! * scale;
    }
    k[base + EMULATOR] = Math.max(0, vmNs - k[base + VCPU]! - k[base + VHOST]!);
    for (let kind = 0; kind < KINDS; kind++) this.kindCumulativeNs[base + kind] = this.kindCumulativeNs[base + kind]! + k[base + kind]!;
  }

  /**
   * One aggregate per configured cage for the newest CPU window, in config order; built on the
   * first call after the window, then the same objects. Empty before the first window.
   */
  windowAggregates(): CageAggregate[] {
    this.buildPendingAggregates();
    return this.windowAggregatesBuilt;
  }

  /**
   * Builds the pending window's aggregates from the state they describe. Called before anything
   * that state depends on changes (membership, samples, Xen figures, the next window), so an
   * aggregate built late equals one built at ingest.
   */
  private buildPendingAggregates(): void {
    const window = this.pendingWindow;
    if (window === null) return;
    this.pendingWindow = null;
    const { windowNs, windowSeconds, timeMs } = window;
    const out: CageAggregate[] = new Array<CageAggregate>(this.cages.length);
    const f = this.figures;
    for (let c = 0; c < this.cages.length; c++) {
      const cage = this.cages[c]!;
      this.cageFigures(c, window);
      const spec = cage.spec;
      const aggregate: CageAggregate = {
        v: 1,
        cage: spec.name,
        timeMs,
        windowSeconds,
        vm: { cpuPct: f.vmPct, pids: cage.pids[VM], startTimes: cage.startTimes[VM], rssBytes: this.rssOfSlot[c * 2 + VM]! },
        ids: { cpuPct: f.idsPct, pids: cage.pids[IDS], startTimes: cage.startTimes[IDS], rssBytes: this.rssOfSlot[c * 2 + IDS]!, pageCacheBytes: this.pageCacheOfCage[c]! },
        totalPct: f.vmPct + f.idsPct,
        capPct: spec.cpu.cap,
        idsCapPct: spec.cpu.idsCap,
        weight: spec.cpu.weight,
        memory: memoryOf(spec),
      };
      if (this.cageSplitsByKind[c] === 1) aggregate.vm.cpuPctByKind = this.windowCpuPctByKind(c, windowNs);
      if (cage.cr3IdsVms.length > 0) aggregate.ids.idsVmOwnCpuPct = f.idsVmOwn;
      cage.latest = aggregate;
      out[c] = aggregate;
    }
    this.windowAggregatesBuilt = out;
  }

  /** Scratch for cageFigures: one cage's window figures, reused so no object is made per cage. */
  private readonly figures = { vmPct: 0, idsPct: 0, idsVmOwn: 0 };

  /**
   * Cage c's CPU figures for `window` into this.figures: the one computation behind both the
   * aggregate objects and windowAggregatesJson.
   */
  private cageFigures(c: number, window: { windowNs: number; timeMs: number }): void {
    const { windowNs, timeMs } = window;
    const cage = this.cages[c]!;
    const vmNs = this.windowNs[c * 2 + VM]!;
    const idsNs = this.windowNs[c * 2 + IDS]!;
    // An empty window (start == end) has no meaningful rate: report 0 rather than Infinity.
    // A Xen VM's CPU is the hypervisor's figure (ingestXen), not its (absent) host processes'.
    const xen = cage.xen !== null && timeMs - cage.xen.timeMs <= XEN_STALE_MS ? cage.xen.cpuPct : 0;
    const f = this.figures;
    f.vmPct = cage.spec.vm.kind === "xen" ? xen : windowNs > 0 ? (vmNs / windowNs) * 100 : 0;
    // Xen IDS-VMs add the hypervisor's figure for their domains to the IDS's host processes.
    const idsXen = cage.idsXen !== null && timeMs - cage.idsXen.timeMs <= XEN_STALE_MS ? cage.idsXen.cpuPct : 0;
    f.idsPct = (windowNs > 0 ? (idsNs / windowNs) * 100 : 0) + idsXen;
    f.idsVmOwn = cage.idsVmOwn !== null && timeMs - cage.idsVmOwn.timeMs <= XEN_STALE_MS ? cage.idsVmOwn.cpuPct : 0;
  }

  /**
   * The newest window's `agg.window` payload: byte for byte encodeCageAggregates(windowAggregates()),
   * written from cached text (each cage's name and cage-file figures, and its members until the
   * membership changes) and the window's numbers, without building the aggregate objects: at
   * 10 windows a second and 100 cages, those objects and their JSON were much of the pipeline's
   * garbage. Built once per window.
   */
  windowAggregatesJson(): Buffer {
    if (this.windowJson !== null) return this.windowJson;
    const window = this.pendingWindow;
    if (window === null) {
      this.windowJson = encodeCageAggregates(this.windowAggregatesBuilt);
      return this.windowJson;
    }
    const { windowNs, windowSeconds, timeMs } = window;
    const when = `${jsonNumber(timeMs)},"windowSeconds":${jsonNumber(windowSeconds)},"vm":{"cpuPct":`;
    const f = this.figures;
    let text = '{"v":1,"aggregates":[';
    for (let c = 0; c < this.cages.length; c++) {
      const cage = this.cages[c]!;
      const parts = this.jsonParts[c]!;
      this.cageFigures(c, window);
      if (c > 0) text += ",";
      text += parts.head + when + jsonNumber(f.vmPct) + this.membersJson(c, VM) + jsonNumber(this.rssOfSlot[c * 2 + VM]!);
      if (this.cageSplitsByKind[c] === 1) text += `,"cpuPctByKind":${JSON.stringify(this.windowCpuPctByKind(c, windowNs))}`;
      text += `},"ids":{"cpuPct":${jsonNumber(f.idsPct)}${this.membersJson(c, IDS)}${jsonNumber(this.rssOfSlot[c * 2 + IDS]!)},"pageCacheBytes":${jsonNumber(this.pageCacheOfCage[c]!)}`;
      if (cage.cr3IdsVms.length > 0) text += `,"idsVmOwnCpuPct":${jsonNumber(f.idsVmOwn)}`;
      text += `},"totalPct":${jsonNumber(f.vmPct + f.idsPct)}${parts.tail}`;
    }
    this.windowJson = Buffer.from(`${text}]}`, "utf8");
    return this.windowJson;
  }

  /** `,"pids":[…],"startTimes":[…],"rssBytes":` of cage c's role, cached while its PID list is the same array. */
  private membersJson(c: number, role: number): string {
    const cage = this.cages[c]!;
    const parts = this.jsonParts[c]!;
    const cached = parts.members[role];
    if (cached != null && cached.pids === cage.pids[role]) return cached.text;
    const text = `,"pids":${JSON.stringify(cage.pids[role])},"startTimes":${JSON.stringify(cage.startTimes[role])},"rssBytes":`;
    parts.members[role] = { pids: cage.pids[role]!, text };
    return text;
  }

  /** The last aggregate of each cage that has had a CPU window (config order). */
  latestAggregates(): CageAggregate[] {
    this.buildPendingAggregates();
    const out: CageAggregate[] = [];
    for (const c of this.cages) if (c.latest !== null) out.push(c.latest);
    return out;
  }

  /** Cumulative on-CPU seconds charged to a cage's role since the aggregator was created. */
  cpuSeconds(cage: string, role: CageRole): number {
    const index = this.indexOf(cage);
    return this.cumulativeNs[index * 2 + (role === "vm" ? VM : IDS)]! / 1e9;
  }

  /**
   * Cumulative on-CPU seconds of a QEMU VM's host threads by kind since the aggregator was
   * created (they sum to cpuSeconds(cage, "vm")); null for a cage whose VM is not QEMU.
   */
  vmCpuSecondsByKind(cage: string): Record<VmCpuKind, number> | null {
    const index = this.indexOf(cage);
    if (this.cageSplitsByKind[index] === 0) return null;
    const out = {} as Record<VmCpuKind, number>;
    VM_CPU_KINDS.forEach((kind, k) => (out[kind] = this.kindCumulativeNs[index * KINDS + k]! / 1e9));
    return out;
  }

  private windowCpuPctByKind(c: number, windowNs: number): Record<VmCpuKind, number> {
    const out = {} as Record<VmCpuKind, number>;
    VM_CPU_KINDS.forEach((kind, k) => (out[kind] = windowNs > 0 ? (this.kindWindowNs[c * KINDS + k]! / windowNs) * 100 : 0));
    return out;
  }

  /** Current sum of the latest VmRSS of a cage role's PIDs (PIDs never sampled count 0). */
  rssBytes(cage: string, role: CageRole): number {
    return this.rssOfSlot[this.indexOf(cage) * 2 + (role === "vm" ? VM : IDS)]!;
  }

  /** Resident page cache charged to the cage's IDS: its members' and its exited members' still cached. */
  pageCacheBytes(cage: string): number {
    return this.pageCacheOfCage[this.indexOf(cage)]!;
  }

  /**
   * The cages whose IDS memory (RSS, page cache) differs from what the previous call returned,
   * with the figures now; the first call returns every cage. What `agg.memory` carries.
   */
  takeIdsMemoryChanges(): CageIdsMemory[] {
    const changed: CageIdsMemory[] = [];
    for (let c = 0; c < this.cages.length; c++) {
      const rssBytes = this.rssOfSlot[c * 2 + IDS]!;
      const pageCacheBytes = this.pageCacheOfCage[c]!;
      if (rssBytes === this.idsRssTaken[c] && pageCacheBytes === this.idsPageCacheTaken[c]) continue;
      this.idsRssTaken[c] = rssBytes;
      this.idsPageCacheTaken[c] = pageCacheBytes;
      changed.push({ cage: this.cages[c]!.spec.name, ids: { rssBytes, pageCacheBytes } });
    }
    return changed;
  }

  /** One pass over the owners: every cage's page cache at once, not a pass per cage. */
  private sumPageCache(): void {
    this.pageCacheOfCage.fill(0);
    for (const [pid, owner] of this.pageCacheOwner) this.pageCacheOfCage[owner] = this.pageCacheOfCage[owner]! + (this.residentOfPid.get(pid) ?? 0);
  }

  /** The cage role's current PIDs, ascending. */
  pids(cage: string, role: CageRole): readonly number[] {
    return this.cages[this.indexOf(cage)]!.pids[role === "vm" ? VM : IDS];
  }

  private indexOf(cage: string): number {
    const index = this.cages.findIndex((c) => c.spec.name === cage);
    if (index < 0) throw new Error(`cage aggregator: unknown cage ${JSON.stringify(cage)}`);
    return index;
  }
}

/** A cage's cached `agg.window` text: before timeMs, after totalPct, and each role's members. */
interface CageJsonParts {
  head: string;
  tail: string;
  /** By role (VM, IDS): the text and the PID array it was made from (setMembership replaces the array when it changes). */
  members: [vm: { pids: readonly number[]; text: string } | null, ids: { pids: readonly number[]; text: string } | null];
}

/** A number as JSON.stringify writes it (finite: its shortest round-trip form; otherwise null). */
function jsonNumber(x: number): string {
  return Number.isFinite(x) ? String(x) : "null";
}

/** The aggregate's `memory` field from the cage file. */
function memoryOf(spec: CageSpec): CageAggregate["memory"] {
  return { baseBytes: spec.memory?.baseBytes ?? null, floorBytes: spec.memory?.floorBytes ?? null };
}

type Member = { pid: number; startTime: number };

/** Membership as PID lists (with start times) from any resolution result whose members carry `pid` and `startTime`. */
export function pidsOf(resolved: ReadonlyMap<string, { vm: readonly Member[]; ids: readonly Member[] }>): Map<string, CagePids> {
  const out = new Map<string, CagePids>();
  for (const [name, r] of resolved) {
    const startTimes = new Map<number, number>();
    for (const p of [...r.vm, ...r.ids]) startTimes.set(p.pid, p.startTime);
    out.set(name, { vm: r.vm.map((p) => p.pid), ids: r.ids.map((p) => p.pid), startTimes });
  }
  return out;
}

function diffSorted(before: readonly number[], after: readonly number[]): { added: number[]; removed: number[] } {
  const added: number[] = [];
  const removed: number[] = [];
  let i = 0;
  let j = 0;
  while (i < before.length || j < after.length) {
    const b = before[i];
    const a = after[j];
    if (a === undefined || (b !== undefined && b < a)) {
      removed.push(b!);
      i++;
    } else if (b === undefined || a < b) {
      added.push(a);
      j++;
    } else {
      i++;
      j++;
    }
  }
  return { added, removed };
}
