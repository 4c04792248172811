/**
 * Samples /proc/PID/status for a list of PIDs into one MemoryBatch. A PID that exited since the
 * last resolution is skipped and counted: with processes coming and going that is normal.
 */
import { readFileSync } from "node:fs";
import type { MemoryBatch } from "../../protocol/rawBatches.js";
import type { KeptProcFiles } from "../../host/proc/keptProcFiles.js";
import { parseProcStatus } from "../../host/proc/procStatus.js";
import { isGone } from "../../host/proc/processTable.js";

export interface MemorySample {
  batch: MemoryBatch;
  /** PIDs that no longer exist. */
  vanished: number[];
  /** PIDs whose status could not be read or parsed for another reason (should not happen). */
  failures: { pid: number; message: string }[];
}

/**
 * `source`: a /proc root to read each status by path, or the KeptProcFiles of a sampler that
 * reads the same PIDs many times a second (one pread per PID instead of an open and a close).
 */
export function sampleMemory(pids: readonly number[], source: string | KeptProcFiles = "/proc"): MemorySample {
  // One timestamp for the batch, taken first: the reads that follow take microseconds.
  const sampledAtNs = process.hrtime.bigint(); // CLOCK_MONOTONIC, like bpf_ktime_get_ns
  const sample: MemorySample = { batch: { sampledAtNs, processes: [] }, vanished: [], failures: [] };
  for (const pid of pids) {
    let text: string;
    try {
      text = typeof source === "string" ? readFileSync(`${source}/${pid}/status`, "utf8") : source.read(pid, "status");
    } catch (err) {
      if (isGone(err)) sample.vanished.push(pid);
      else sample.failures.push({ pid, message: (err as Error).message });
      continue;
    }
    try {
      sample.batch.processes.push(parseProcStatus(pid, text));
    } catch (err) {
      sample.failures.push({ pid, message: (err as Error).message });
    }
  }
  return sample;
}
