/**
 * Turns parsed bpftrace lines from bpf/cpuTime.bt into one CpuBatch per window. Pure, no I/O.
 *
 * The script prints a finished window's maps, then "cpu_window SLOT NOW"; window SLOT covers
 * [SLOT*interval, (SLOT+1)*interval) in kernel CLOCK_MONOTONIC ns. At exit it prints whatever is
 * left, then "cpu_end NOW". Everything between two markers belongs to the window of the second.
 *
 * The kernel records each thread's total run time (se.sum_exec_runtime, as in /proc/PID/schedstat)
 * when it is switched out; a window's CPU time is the rise of that total since the thread's
 * previous record. docs/cpu-collector.md explains the baselines (new threads, threads that
 * existed before the probes attached, exits).
 */
import type { CpuBatch, ProcessCpu, ThreadCpu } from "../../protocol/rawBatches.js";
import type { BpftraceLine, PrintedMap } from "./bpftraceJsonLines.js";

/** The kernel's largest pid_max: PIDs and TIDs above it are corrupt keys. */
const PID_MAX = 4_194_304;
/** A batch carries window times as unsigned 64-bit ns; stay in the signed range to be safe. */
const MAX_WINDOW_END_NS = 2n ** 63n - 1n;
/** About 28 hours of 100 ms windows: a longer jump between markers is corruption, not a stall. */
const MAX_SLOT_JUMP = 1_000_000n;
/** 2^62 ns is 146 years of CPU: a thread's run time beyond it is a corrupt entry. */
const MAX_RUN_TIME_NS = 2n ** 62n;
/** More events than a perf buffer holds many times over: a corrupt lost_events line. */
const MAX_LOST_EVENTS = 2 ** 32;

export interface CpuWindowOptions {
  /** The INTERVAL_MS the script was started with. */
  intervalMs: number;
  /** BPFTRACE_MAP_KEYS_MAX: a printed map with this many keys was (probably) full. */
  mapKeysMax: number;
}

export interface CpuWindowCounters {
  windows: number;
  /** Marker for a window already emitted (the script prints each once: a repeat is not expected). */
  repeatedMarkers: number;
  /** Windows with no marker at all (their data lands in a later batch that spans them). */
  skippedWindows: number;
  /** Printed maps that reached mapKeysMax: entries were dropped in the kernel. */
  mapFull: number;
  /** Perf ring buffer overflows reported by bpftrace (events lost, maybe prints/clears too). */
  lostEvents: number;
  /** Lines or map entries this builder does not understand (unknown printf, bad keys, negatives). */
  unknownLines: number;
  badEntries: number;
}

const WINDOW_MARKER = /^cpu_window (\d+) (\d+)\n?$/;
const END_MARKER = /^cpu_end (\d+)\n?$/;
/** "pid,tid" -> the thread's se.sum_exec_runtime when it was last switched out (or flushed). */
const RUN_TIME_MAP = /^@run[012]$/;
/** "tid" -> 1: a thread created while the probes were attached (its run time started at 0). */
const FORK_MAP = /^@fork[012]$/;
/** "pid,tid" -> 1: a thread that exited. */
const EXIT_MAP = /^@exit[012]$/;
const THREAD_KEY = /^(\d+),(\d+)$/;
const TID_KEY = /^\d+$/;

export class CpuWindowBuilder {
  readonly counters: CpuWindowCounters = {
    windows: 0, repeatedMarkers: 0, skippedWindows: 0, mapFull: 0, lostEvents: 0, unknownLines: 0, badEntries: 0,
  };
  private readonly intervalNs: bigint;
  /** Run-time records of the pending window, largest per thread (the same key may be printed from several sets). */
  private runTimes = new Map<string, { pid: number; tid: number; runtimeNs: bigint }>();
  private forks = new Set<number>();
  private exits = new Set<string>();
  /** The run time each thread seen so far had at its last record: the baseline of its next window. */
  private readonly lastRunTime = new Map<string, bigint>();
  /** Threads created since the probes attached and not yet seen: their baseline is 0. */
  private readonly newThreads = new Set<number>();
  /** Exited threads, forgotten after one more window (their last switch-out may land there). */
  private readonly exited = new Map<string, number>();
  private lastSlot: bigint | null = null;
  private lastEndNs: bigint | null = null;
  private ended = false;

  constructor(private readonly opts: CpuWindowOptions) {
    if (!Number.isInteger(opts.intervalMs) || opts.intervalMs < 1) {
      throw new Error(`CpuWindowBuilder: intervalMs must be a positive integer, got ${opts.intervalMs}`);
    }
    if (!Number.isInteger(opts.mapKeysMax) || opts.mapKeysMax < 1) {
      throw new Error(`CpuWindowBuilder: mapKeysMax must be a positive integer, got ${opts.mapKeysMax}`);
    }
    this.intervalNs = BigInt(opts.intervalMs) * 1_000_000n;
  }

  /** Threads whose baseline is kept (seen and not exited): bounded by the live threads that ran. */
  get trackedThreads(): number {
    return this.lastRunTime.size;
  }

  /** Feeds one line; returns the batch it completes, if any. */
  accept(line: BpftraceLine): CpuBatch | null {
    switch (line.type) {
      case "map":
        for (const m of line.maps) this.addMap(m);
        return null;
      case "lost_events":
        // A count no kernel buffer could have dropped is a corrupt line, not a loss.
        if (Number.isSafeInteger(line.events) && line.events >= 0 && line.events <= MAX_LOST_EVENTS) this.counters.lostEvents += line.events;
        else this.counters.unknownLines++;
        return null;
      case "printf":
        return this.marker(line.text);
      case "attached_probes":
        return null;
      default:
        this.counters.unknownLines++;
        return null;
    }
  }

  private addMap(m: PrintedMap): void {
    const kind = RUN_TIME_MAP.test(m.name) ? "run" : FORK_MAP.test(m.name) ? "fork" : EXIT_MAP.test(m.name) ? "exit" : null;
    if (kind === null) {
      this.counters.unknownLines++;
      return;
    }
    if (m.entries.length + m.nonIntegerEntries >= this.opts.mapKeysMax) this.counters.mapFull++;
    this.counters.badEntries += m.nonIntegerEntries;
    for (const { key, value } of m.entries) {
      if (value < 0n || value > MAX_RUN_TIME_NS) {
        this.counters.badEntries++;
        continue;
      }
      if (kind === "fork") {
        if (TID_KEY.test(key) && Number(key) <= PID_MAX) this.forks.add(Number(key));
        else this.counters.badEntries++;
        continue;
      }
      const k = THREAD_KEY.exec(key);
      if (k === null || Number(k[1]) > PID_MAX || Number(k[2]) > PID_MAX) {
        this.counters.badEntries++;
        continue;
      }
      if (kind === "exit") {
        this.exits.add(key);
        continue;
      }
      const tid = Number(k[2]);
      if (tid === 0) continue; // the idle task: its run time is not kept
      const pending = this.runTimes.get(key);
      if (pending === undefined) this.runTimes.set(key, { pid: Number(k[1]), tid, runtimeNs: value });
      else if (value > pending.runtimeNs) pending.runtimeNs = value;
    }
  }

  private marker(text: string): CpuBatch | null {
    const w = WINDOW_MARKER.exec(text);
    if (w !== null) {
      const slot = BigInt(w[1]!);
      // A window that ends past what a batch can carry, or a jump no stall explains, is a corrupt marker.
      if ((slot + 1n) * this.intervalNs > MAX_WINDOW_END_NS || (this.lastSlot !== null && slot - this.lastSlot > MAX_SLOT_JUMP)) {
        this.counters.unknownLines++;
        return null;
      }
      if (this.lastSlot !== null && slot <= this.lastSlot) {
        // Data printed with a repeated marker (normally none) stays pending for the next window.
        this.counters.repeatedMarkers++;
        return null;
      }
      if (this.lastSlot !== null && slot > this.lastSlot + 1n) this.counters.skippedWindows += Number(slot - this.lastSlot - 1n);
      this.lastSlot = slot;
      return this.emit(slot * this.intervalNs, (slot + 1n) * this.intervalNs);
    }
    const e = END_MARKER.exec(text);
    if (e !== null) {
      if (this.ended) return null;
      this.ended = true;
      const nowNs = BigInt(e[1]!);
      if (this.lastEndNs === null && this.runTimes.size === 0) return null;
      const startNs = (nowNs / this.intervalNs) * this.intervalNs;
      return this.emit(startNs, nowNs);
    }
    this.counters.unknownLines++;
    return null;
  }

  /** The CPU time of one thread in the pending window: the rise of its run time since its baseline. */
  private charge(key: string, tid: number, runtimeNs: bigint): bigint {
    let baseline = this.lastRunTime.get(key);
    if (this.newThreads.delete(tid) && baseline === undefined) baseline = 0n;
    // A thread that existed before the probes attached: its first record is only its baseline.
    baseline ??= runtimeNs;
    if (runtimeNs <= baseline) {
      this.lastRunTime.set(key, baseline);
      return 0n;
    }
    this.lastRunTime.set(key, runtimeNs);
    return runtimeNs - baseline;
  }

  private emit(slotStartNs: bigint, endNs: bigint): CpuBatch {
    // Contiguous windows: start where the last one ended (covers skipped windows too).
    let windowStartNs = this.lastEndNs ?? slotStartNs;
    if (windowStartNs > endNs) windowStartNs = endNs;
    // A fork is recorded before the new thread's first switch-out, so forks go first.
    for (const tid of this.forks) this.newThreads.add(tid);
    const threads: ThreadCpu[] = [];
    const perProcess = new Map<number, bigint>();
    for (const [key, t] of this.runTimes) {
      const ns = this.charge(key, t.tid, t.runtimeNs);
      if (ns === 0n) continue;
      threads.push({ pid: t.pid, tid: t.tid, cpuNs: Number(ns) });
      perProcess.set(t.pid, (perProcess.get(t.pid) ?? 0n) + ns);
    }
    // Forget threads that exited before this window; keep this window's exits for one more.
    for (const [key, window] of this.exited) {
      if (window < this.counters.windows) {
        this.lastRunTime.delete(key);
        this.exited.delete(key);
      }
    }
    for (const key of this.exits) {
      this.exited.set(key, this.counters.windows);
      this.newThreads.delete(Number(THREAD_KEY.exec(key)![2]));
    }
    const processes: ProcessCpu[] = [];
    for (const [pid, ns] of perProcess) processes.push({ pid, cpuNs: Number(ns) });
    processes.sort((a, b) => a.pid - b.pid);
    threads.sort((a, b) => a.pid - b.pid || a.tid - b.tid);
    this.runTimes = new Map();
    this.forks = new Set();
    this.exits = new Set();
    this.lastEndNs = endNs;
    this.counters.windows++;
    return { windowStartNs, windowEndNs: endNs, processes, threads };
  }
}
