/**
 * Turns parsed bpftrace lines from bpf/cpuTime.bt into one CpuBatch per window. Pure, no I/O.
 *
 * The script prints a finished window's maps, then "cpu_window SLOT NOW"; window SLOT covers
 * [SLOT*interval, (SLOT+1)*interval) in kernel CLOCK_MONOTONIC ns. At exit it prints whatever is
 * left, then "cpu_end NOW". Everything between two markers belongs to the window of the second.
 */
import type { CpuBatch, ProcessCpu, ThreadCpu } from "../../protocol/rawBatches.js";
import type { BpftraceLine, PrintedMap } from "./bpftraceJsonLines.js";

export interface CpuWindowOptions {
  /** The INTERVAL_MS the script was started with. */
  intervalMs: number;
  /** BPFTRACE_MAP_KEYS_MAX: a printed map with this many keys was (probably) full. */
  mapKeysMax: number;
  /** The script also sums per process in the kernel (PROCESS_MAP=1); else threads are added up here. */
  processMapInKernel: boolean;
}

export interface CpuWindowCounters {
  windows: number;
  /** Marker for a window already emitted (the window probe runs twice per window). */
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
const THREAD_MAP = /^@t[012]$/;
const PROCESS_MAP = /^@p[012]$/;
const THREAD_KEY = /^(\d+),(\d+)$/;
const PID_KEY = /^\d+$/;

export class CpuWindowBuilder {
  readonly counters: CpuWindowCounters = {
    windows: 0, repeatedMarkers: 0, skippedWindows: 0, mapFull: 0, lostEvents: 0, unknownLines: 0, badEntries: 0,
  };
  private readonly intervalNs: bigint;
  private threads = new Map<string, { pid: number; tid: number; ns: bigint }>();
  private processes = new Map<number, bigint>();
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

  /** Feeds one line; returns the batch it completes, if any. */
  accept(line: BpftraceLine): CpuBatch | null {
    switch (line.type) {
      case "map":
        for (const m of line.maps) this.addMap(m);
        return null;
      case "lost_events":
        this.counters.lostEvents += line.events;
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
    const isThreads = THREAD_MAP.test(m.name);
    const isProcesses = PROCESS_MAP.test(m.name);
    if (!isThreads && !isProcesses) {
      this.counters.unknownLines++;
      return;
    }
    if (m.entries.length + m.nonIntegerEntries >= this.opts.mapKeysMax) this.counters.mapFull++;
    this.counters.badEntries += m.nonIntegerEntries;
    for (const { key, value } of m.entries) {
      if (value < 0n) {
        this.counters.badEntries++;
        continue;
      }
      if (isThreads) {
        const k = THREAD_KEY.exec(key);
        if (k === null) {
          this.counters.badEntries++;
          continue;
        }
        const t = this.threads.get(key);
        if (t) t.ns += value;
        else this.threads.set(key, { pid: Number(k[1]), tid: Number(k[2]), ns: value });
      } else {
        if (!PID_KEY.test(key)) {
          this.counters.badEntries++;
          continue;
        }
        const pid = Number(key);
        this.processes.set(pid, (this.processes.get(pid) ?? 0n) + value);
      }
    }
  }

  private marker(text: string): CpuBatch | null {
    const w = WINDOW_MARKER.exec(text);
    if (w !== null) {
      const slot = BigInt(w[1]!);
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
      if (this.lastEndNs === null && this.threads.size === 0 && this.processes.size === 0) return null;
      const startNs = (nowNs / this.intervalNs) * this.intervalNs;
      return this.emit(startNs, nowNs);
    }
    this.counters.unknownLines++;
    return null;
  }

  private emit(slotStartNs: bigint, endNs: bigint): CpuBatch {
    // Contiguous windows: start where the last one ended (covers skipped windows too).
    let windowStartNs = this.lastEndNs ?? slotStartNs;
    if (windowStartNs > endNs) windowStartNs = endNs;
    const threads: ThreadCpu[] = [];
    const fromThreads = new Map<number, bigint>();
    for (const t of this.threads.values()) {
      threads.push({ pid: t.pid, tid: t.tid, cpuNs: Number(t.ns) });
      fromThreads.set(t.pid, (fromThreads.get(t.pid) ?? 0n) + t.ns);
    }
    const perProcess = this.opts.processMapInKernel ? this.processes : fromThreads;
    const processes: ProcessCpu[] = [];
    for (const [pid, ns] of perProcess) processes.push({ pid, cpuNs: Number(ns) });
    processes.sort((a, b) => a.pid - b.pid);
    threads.sort((a, b) => a.pid - b.pid || a.tid - b.tid);
    this.threads = new Map();
    this.processes = new Map();
    this.lastEndNs = endNs;
    this.counters.windows++;
    return { windowStartNs, windowEndNs: endNs, processes, threads };
  }
}
