/**
 * The IDS-VM guest helper's reports, read from xenstore in dom0 (docs/xentrace.md, "IDS processes
 * inside an IDS-VM"). The helper (lab/xen/domu/ids-helper.sh) writes one node per IDS process:
 *
 *   /local/domain/DOMID/data/offloadcage/ids/PID = "CR3 STARTTIME"
 *
 * CR3 is 0x-prefixed lower-case hex, STARTTIME the process's field 22 of /proc/PID/stat (clock
 * ticks since the guest booted): with it a PID names one process, and a rewrite after exec (new
 * address space, same PID) replaces the old CR3. The node is removed when the process exits.
 *
 * A domain can write only below its own /local/domain/DOMID/, so the path an entry was read from
 * says which domain wrote it; nothing in its text is trusted for that. Parsing here is pure;
 * readIdsHelperSnapshot runs `xenstore-ls -f /local/domain` once per call.
 */
import { runCommand } from "../commandRunner.js";

/** Below /local/domain/DOMID/: where the helper's nodes live (`data/` is the guest-writable part). */
export const IDS_HELPER_DIR = "data/offloadcage/ids";
/** Entries kept per domain and snapshot; the rest are counted as overflow (a guest must not grow our memory). */
export const MAX_HELPER_ENTRIES_PER_DOMAIN = 1024;
/** xenstore-ls's bound: a loaded dom0 (the Xen lab's, under TCG) took over 2 s. */
export const READ_TIMEOUT_MS = 5_000;
/** A PID the guest kernel can hand out (PID_MAX_LIMIT). */
const PID_MAX = 4_194_304;

export interface HelperEntry {
  /** The node name below IDS_HELPER_DIR (the PID, when well formed). */
  key: string;
  /** The node's value as xenstore-ls printed it (escapes kept: a well-formed value has none). */
  value: string;
}

export interface DomainHelperEntries {
  domain: number;
  /** /local/domain/DOMID/name, or null when the domain has none (yet). */
  name: string | null;
  entries: HelperEntry[];
  /** Entries beyond MAX_HELPER_ENTRIES_PER_DOMAIN, dropped. */
  overflow: number;
}

/** Every domain with at least one node below IDS_HELPER_DIR, by domain ID. */
export interface IdsHelperSnapshot {
  domains: DomainHelperEntries[];
}

/** One well-formed report: this PID (started at startTime) runs in the address space cr3. */
export interface IdsHelperClaim {
  pid: number;
  startTime: number;
  /** As written: 0x-prefixed lower-case hex. */
  cr3: string;
  /** The page frame of the top-level page table (cr3Frame): what is matched against raw.xen. */
  frame: string;
}

const LS_LINE = /^\/local\/domain\/(\d{1,5})\/(\S*) = "(.*)"$/;
const HELPER_PREFIX = `${IDS_HELPER_DIR}/`;
const CR3_VALUE = /^(0x[0-9a-f]{1,16}) ([0-9]{1,20})$/;
const PID_KEY = /^[1-9][0-9]{0,6}$/;
/** CR3 bits 12–51: the page-table base; the low 12 bits are PCID (or PWT/PCD) and bit 63 is no-flush. */
const FRAME_MASK = 0x000f_ffff_ffff_f000n;

/**
 * The page frame a CR3 value points at, as 0x hex: two writes of the same page table with
 * different PCIDs (or the no-flush bit) are the same address space.
 */
export function cr3Frame(cr3: string): string {
  return `0x${(BigInt(cr3) & FRAME_MASK).toString(16)}`;
}

/** The helper's nodes in `xenstore-ls -f /local/domain` output, grouped by the domain whose path holds them. */
export function helperSnapshotFromLs(text: string): IdsHelperSnapshot {
  const byDomain = new Map<number, DomainHelperEntries>();
  const domain = (id: number): DomainHelperEntries => {
    let d = byDomain.get(id);
    if (d === undefined) {
      d = { domain: id, name: null, entries: [], overflow: 0 };
      byDomain.set(id, d);
    }
    return d;
  };
  const names = new Map<number, string>();
  for (const line of text.split("\n")) {
    const m = LS_LINE.exec(line);
    if (m === null) continue;
    const id = Number(m[1]);
    const rest = m[2] as string;
    if (rest === "name") names.set(id, m[3] as string);
    else if (rest.startsWith(HELPER_PREFIX)) {
      const key = rest.slice(HELPER_PREFIX.length);
      // Deeper nodes are not the helper's format; they count as malformed entries like any other.
      const d = domain(id);
      if (d.entries.length < MAX_HELPER_ENTRIES_PER_DOMAIN) d.entries.push({ key, value: m[3] as string });
      else d.overflow++;
    }
  }
  for (const d of byDomain.values()) d.name = names.get(d.domain) ?? null;
  return { domains: [...byDomain.values()].sort((a, b) => a.domain - b.domain) };
}

/** A well-formed report, or why it is not one (for the log). */
export function parseHelperEntry(entry: HelperEntry): IdsHelperClaim | string {
  if (!PID_KEY.test(entry.key) || Number(entry.key) > PID_MAX) return `node name ${JSON.stringify(entry.key)} is not a PID`;
  const m = CR3_VALUE.exec(entry.value);
  if (m === null) return `value ${JSON.stringify(entry.value)} is not "CR3 STARTTIME" (0x lower-case hex, decimal)`;
  const startTime = Number(m[2]);
  if (!Number.isSafeInteger(startTime)) return `start time ${m[2] as string} is too large`;
  const cr3 = m[1] as string;
  const frame = cr3Frame(cr3);
  if (frame === "0x0") return `CR3 ${cr3} has no page-table address`;
  return { pid: Number(entry.key), startTime, cr3, frame };
}

/** Reads every domain's helper nodes from xenstore (dom0 only: other domains cannot list /local/domain). */
export async function readIdsHelperSnapshot(timeoutMs = READ_TIMEOUT_MS): Promise<IdsHelperSnapshot> {
  const { stdout } = await runCommand("xenstore-ls", ["-f", "/local/domain"], timeoutMs);
  return helperSnapshotFromLs(stdout);
}
