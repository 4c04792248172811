/**
 * Parsers for the `xl` output the Xen back end reads (platform-facts §2; real captures in
 * shared/fixtures/xen-commands). Pure and strict: a line we do not expect is an error naming the
 * command and the line, never skipped, so a changed toolstack cannot be misread silently.
 *
 *   xl info:           "key                    : value" lines (xen_scheduler : credit)
 *   xl sched-credit:   [Cpupool Pool-0: tslice=30ms ratelimit=1000us migration-delay=0us]
 *                      Name                                ID Weight  Cap
 *                      Domain-0                             0    256    0
 *   xl sched-credit2:  the same table, pool line "Cpupool Pool-0: ratelimit=1000us"
 */
import { CpuBackendError } from "./cpuBackend.js";

export function parseXlInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const m = /^([a-z_0-9]+)\s*:\s?(.*)$/.exec(line);
    if (!m) throw new CpuBackendError(`xl info: line ${i + 1} is not "key : value": ${JSON.stringify(line.slice(0, 80))}`);
    out.set(m[1] as string, (m[2] as string).trim());
  });
  return out;
}

export type XenScheduler = "credit" | "credit2";

/** The scheduler from `xl info` (`xen_scheduler`); only credit and credit2 have cap and weight. */
export function xenSchedulerOf(info: Map<string, string>): XenScheduler {
  const s = info.get("xen_scheduler");
  if (s === undefined) throw new CpuBackendError("xl info: no xen_scheduler line");
  if (s !== "credit" && s !== "credit2") throw new CpuBackendError(`xl info: xen_scheduler is ${JSON.stringify(s)}; only credit and credit2 have a cap and weight`);
  return s;
}

export interface XlSchedRow {
  name: string;
  id: number;
  weight: number;
  cap: number;
}

const HEADER = /^Name\s+ID\s+Weight\s+Cap\s*$/;
const POOL = /^Cpupool (\S+): (tslice=\d+ms )?ratelimit=\d+us( migration-delay=\d+us)?\s*$/;
const ROW = /^(\S(?:.*\S)?)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/;

/** Rows of `xl sched-credit` / `xl sched-credit2` (all pools). */
export function parseXlSchedTable(text: string, command: string): XlSchedRow[] {
  const rows: XlSchedRow[] = [];
  let header = false;
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    if (POOL.test(line)) {
      header = false;
      return;
    }
    if (HEADER.test(line)) {
      header = true;
      return;
    }
    const m = ROW.exec(line);
    if (!header || !m) throw new CpuBackendError(`${command}: unexpected line ${i + 1}: ${JSON.stringify(line.slice(0, 80))}`);
    const id = Number(m[2]);
    const weight = Number(m[3]);
    const cap = Number(m[4]);
    if (weight < 1 || weight > 65535) throw new CpuBackendError(`${command}: line ${i + 1}: weight ${weight} out of range 1..65535`);
    rows.push({ name: m[1] as string, id, weight, cap });
  });
  if (rows.length === 0) throw new CpuBackendError(`${command}: no domain rows in its output`);
  return rows;
}

/** The row of a domain given by name or numeric id. */
export function findDomainRow(rows: XlSchedRow[], domain: string | number, command: string): XlSchedRow {
  const row = rows.find((r) => (typeof domain === "number" ? r.id === domain : r.name === domain));
  if (row === undefined) throw new CpuBackendError(`${command}: domain ${JSON.stringify(domain)} is not listed (${rows.map((r) => r.name).join(", ")})`);
  return row;
}
