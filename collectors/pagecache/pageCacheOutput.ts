/**
 * Parser for the JSON lines of bpf/pageCache.bt (bpftrace 0.17 `-f json`). Pure: lines in,
 * PageCacheBatch out, one batch per `pc_tick` heartbeat. No I/O.
 *
 * The script prints cumulative maps and never clears them, so a map missing from one tick
 * (bpftrace prints nothing for an empty map, and a lost perf event drops a print) is carried
 * over from the previous tick instead of being read as zero.
 */
import type { PageCacheBatch, ProcessPageCache } from "../../protocol/rawBatches.js";

/** Kernel-side totals the script keeps beside the per-PID maps. */
export interface PageCacheKernelCounters {
  /** Insertions by tracked tasks that did not fit the ownership map (bytes still count as inserted). */
  untrackedInserts: number;
  untrackedBytes: number;
  /** Folios found still owned at a pfn being filled again (left the cache without a delete event). */
  staleOwners: number;
  /** Folios in the ownership map right now. */
  ownedFolios: number;
}

export interface PageCacheParserCounters {
  lines: number;
  /** Lines that were not JSON or not the shape bpftrace prints. */
  invalidLines: number;
  /** Perf ring buffer events bpftrace reported lost (a print or a tick may be among them). */
  lostEvents: number;
  helperErrors: number;
  batches: number;
}

type PerPidMap = Map<number, number>;

const TICK = /^pc_tick (\d+)\n?$/;
const START = /^pc_start (\d+)\n?$/;
const END = /^pc_end (\d+)\n?$/;

export class PageCacheOutputParser {
  readonly counters: PageCacheParserCounters = { lines: 0, invalidLines: 0, lostEvents: 0, helperErrors: 0, batches: 0 };
  readonly kernel: PageCacheKernelCounters = { untrackedInserts: 0, untrackedBytes: 0, staleOwners: 0, ownedFolios: 0 };
  /** Set by the script's BEGIN probe, which runs once every probe is attached. */
  startedAtNs: bigint | null = null;
  ended = false;
  private inserted: PerPidMap = new Map();
  private resident: PerPidMap = new Map();

  /** Feeds one line of stdout; returns the batch completed by a heartbeat, else null. */
  feed(line: string): PageCacheBatch | null {
    const text = line.trim();
    if (text === "") return null;
    this.counters.lines++;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      this.counters.invalidLines++;
      return null;
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      this.counters.invalidLines++;
      return null;
    }
    const msg = parsed as { type?: unknown; data?: unknown };
    switch (msg.type) {
      case "printf":
        return typeof msg.data === "string" ? this.onPrintf(msg.data) : this.invalid();
      case "map":
        if (!this.onMap(msg.data)) this.counters.invalidLines++;
        return null;
      case "lost_events": {
        const events = (msg.data as { events?: unknown } | undefined)?.events;
        // A count no kernel buffer could have dropped is a corrupt line, not a loss.
        if (typeof events === "number" && isCount(events)) this.counters.lostEvents += events;
        else this.counters.invalidLines++;
        return null;
      }
      case "helper_error":
        this.counters.helperErrors++;
        return null;
      case "attached_probes":
        return null;
      default:
        return this.invalid();
    }
  }

  private invalid(): null {
    this.counters.invalidLines++;
    return null;
  }

  private onPrintf(text: string): PageCacheBatch | null {
    const tick = TICK.exec(text);
    if (tick) {
      // The exit dump after END repeats the maps; nothing after pc_end is a live sample.
      if (this.ended) return null;
      const sampledAtNs = BigInt(tick[1]!);
      // A batch carries its time as u64 ns: a tick past that is a corrupt line.
      if (sampledAtNs >= 2n ** 64n) return this.invalid();
      this.counters.batches++;
      return this.batch(sampledAtNs);
    }
    const start = START.exec(text);
    if (start) {
      this.startedAtNs = BigInt(start[1]!);
      return null;
    }
    if (END.test(text)) {
      this.ended = true;
      return null;
    }
    return this.invalid();
  }

  private onMap(data: unknown): boolean {
    if (typeof data !== "object" || data === null) return false;
    const entries: [string, unknown][] = Object.entries(data as Record<string, unknown>);
    if (entries.length !== 1) return false;
    const [name, value] = entries[0]!;
    if (this.ended) return true;
    switch (name) {
      case "@inserted":
      case "@resident": {
        // Resident may go below 0 for a process whose earlier pages were evicted (the batch clamps it).
        const perPid = parsePerPid(value, name === "@resident");
        if (!perPid) return false;
        if (name === "@inserted") this.inserted = perPid;
        else this.resident = perPid;
        return true;
      }
      case "@untrackedInserts":
      case "@untrackedBytes":
      case "@staleOwners":
      case "@ownedFolios": {
        if (typeof value !== "number" || !isCount(value)) return false;
        const key = name.slice(1) as keyof PageCacheKernelCounters;
        this.kernel[key] = value;
        return true;
      }
      default:
        // A map this parser does not know is not an error in the stream, just not ours.
        return true;
    }
  }

  private batch(sampledAtNs: bigint): PageCacheBatch {
    const pids = new Set<number>([...this.inserted.keys(), ...this.resident.keys()]);
    const processes: ProcessPageCache[] = [...pids]
      .sort((a, b) => a - b)
      .map((pid) => ({ pid, insertedBytes: this.inserted.get(pid) ?? 0, residentBytes: this.resident.get(pid) ?? 0 }));
    return { sampledAtNs, untrackedInserts: this.kernel.untrackedInserts, processes };
  }
}

/** `{"1234": 4096, ...}` → pid → value; null when any key or value is not what the script prints. */
function parsePerPid(value: unknown, negativeAllowed: boolean): PerPidMap | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const out: PerPidMap = new Map();
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const pid = Number(key);
    if (!/^\d+$/.test(key) || !Number.isSafeInteger(pid) || pid <= 0 || pid > 0xffff_ffff) return null;
    if (typeof v !== "number" || !(isCount(v) || (negativeAllowed && Number.isSafeInteger(v)))) return null;
    out.set(pid, v);
  }
  return out;
}

/** What a kernel counter or byte count can be: a non-negative integer a batch's u64 carries exactly. */
function isCount(v: number): boolean {
  return Number.isSafeInteger(v) && v >= 0;
}
