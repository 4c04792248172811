/** Sums of a PageCacheBatch over a set of PIDs (a cage's IDS, a measured command). Pure. */
import type { PageCacheBatch } from "../../protocol/rawBatches.js";

export interface PageCacheTotals {
  insertedBytes: number;
  residentBytes: number;
  /** PIDs of the set that appear in the batch. */
  pids: number[];
}

/** Totals over `pids`, or over every process in the batch when `pids` is omitted. */
export function pageCacheTotals(batch: PageCacheBatch, pids?: Iterable<number>): PageCacheTotals {
  const wanted = pids === undefined ? null : new Set(pids);
  let insertedBytes = 0;
  let residentBytes = 0;
  const seen: number[] = [];
  for (const p of batch.processes) {
    if (wanted && !wanted.has(p.pid)) continue;
    insertedBytes += p.insertedBytes;
    residentBytes += p.residentBytes;
    seen.push(p.pid);
  }
  return { insertedBytes, residentBytes, pids: seen };
}
