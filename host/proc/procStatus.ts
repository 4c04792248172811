/**
 * /proc/PID/status → the memory figures the cages charge. Pure: the caller reads the file.
 * The kernel prints these fields in kB (really KiB); kernel threads have none of them (→ 0).
 */
import type { ProcessMemory } from "../../protocol/rawBatches.js";

const FIELDS = {
  VmRSS: "vmRssBytes",
  RssAnon: "rssAnonBytes",
  RssFile: "rssFileBytes",
  RssShmem: "rssShmemBytes",
  VmHWM: "vmHwmBytes",
} as const satisfies Record<string, keyof ProcessMemory>;

export class ProcStatusError extends Error {
  override readonly name = "ProcStatusError";
}

const FIELD_ENTRIES = Object.entries(FIELDS) as [keyof typeof FIELDS, keyof ProcessMemory][];

/**
 * Looks up just the five fields instead of splitting the ~55 lines: the memory collector parses
 * every IDS process's status 20 times a second.
 */
export function parseProcStatus(pid: number, text: string): ProcessMemory {
  const out: ProcessMemory = { pid, vmRssBytes: 0, rssAnonBytes: 0, rssFileBytes: 0, rssShmemBytes: 0, vmHwmBytes: 0 };
  for (const [name, key] of FIELD_ENTRIES) {
    const at = text.startsWith(`${name}:`) ? 0 : text.indexOf(`\n${name}:`) + 1;
    if (at === 0 && !text.startsWith(`${name}:`)) continue;
    const start = at + name.length + 1;
    const newline = text.indexOf("\n", start);
    const value = text.slice(start, newline < 0 ? text.length : newline).trim();
    const m = /^(\d+) kB$/.exec(value);
    if (!m) {
      throw new ProcStatusError(`/proc/${pid}/status: field ${name}: expected "<number> kB", got ${JSON.stringify(value)}`);
    }
    out[key] = Number(m[1]) * 1024;
  }
  return out;
}

/**
 * The resident and shared page counts of /proc/PID/statm (fields 2 and 3) as one comparable key.
 * They move whenever VmRSS, RssAnon or RssFile + RssShmem do, and statm costs the kernel a few
 * counters where status formats some 55 lines: a cheap test of whether status changed.
 */
export function statmResidentKey(pid: number, text: string): string {
  const first = text.indexOf(" ");
  const second = first < 0 ? -1 : text.indexOf(" ", first + 1);
  const third = second < 0 ? -1 : text.indexOf(" ", second + 1);
  if (third < 0 || !/^\d+ \d+$/.test(text.slice(first + 1, third))) {
    throw new ProcStatusError(`/proc/${pid}/statm: expected at least three page counts, got ${JSON.stringify(text.slice(0, 80))}`);
  }
  return text.slice(first + 1, third);
}

/** A process's owner, from the Uid: line of /proc/PID/status (real, effective, saved, filesystem). */
export interface ProcessUids {
  real: number;
  effective: number;
}

/** The real and effective UIDs from /proc/PID/status text; throws if the Uid: line is missing or malformed. */
export function parseStatusUids(pid: number, text: string): ProcessUids {
  const m = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/m.exec(text);
  if (!m) throw new ProcStatusError(`/proc/${pid}/status: no "Uid:" line with four numbers`);
  return { real: Number(m[1]), effective: Number(m[2]) };
}
