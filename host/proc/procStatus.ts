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

export function parseProcStatus(pid: number, text: string): ProcessMemory {
  const out: ProcessMemory = { pid, vmRssBytes: 0, rssAnonBytes: 0, rssFileBytes: 0, rssShmemBytes: 0, vmHwmBytes: 0 };
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon);
    if (!Object.hasOwn(FIELDS, name)) continue;
    const value = line.slice(colon + 1).trim();
    const m = /^(\d+) kB$/.exec(value);
    if (!m) {
      throw new ProcStatusError(`/proc/${pid}/status: field ${name}: expected "<number> kB", got ${JSON.stringify(value)}`);
    }
    out[FIELDS[name as keyof typeof FIELDS]] = Number(m[1]) * 1024;
  }
  return out;
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
