/**
 * A process's cumulative on-CPU time in ns, summed over its threads' /proc/PID/task/TID/schedstat
 * (first field: time on CPU, ns, from the scheduler's own clock). /proc/PID/stat's utime+stime
 * would be in clock ticks (10 ms here), too coarse for a 100 ms duty cycle. A thread that exits
 * takes its time with it, so a cycle in which a thread exits is under-counted by that thread's share.
 */
import { readdirSync, readFileSync } from "node:fs";

/** First field of a schedstat line, ns. Pure. */
export function parseSchedstatRunNs(text: string, where: string): number {
  const m = /^([0-9]+) [0-9]+ [0-9]+\s*$/.exec(text);
  if (!m) throw new Error(`${where}: expected "RUN_NS WAIT_NS SLICES", got ${JSON.stringify(text.slice(0, 60))}`);
  return Number(m[1]);
}

/** Sum over the process's threads, or null if the process is gone. */
export function processCpuNs(pid: number, procRoot = "/proc"): number | null {
  let tids: string[];
  try {
    tids = readdirSync(`${procRoot}/${pid}/task`);
  } catch {
    return null;
  }
  let sum = 0;
  for (const tid of tids) {
    try {
      sum += parseSchedstatRunNs(readFileSync(`${procRoot}/${pid}/task/${tid}/schedstat`, "utf8"), `${procRoot}/${pid}/task/${tid}/schedstat`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ESRCH") continue; // thread exited
      throw err;
    }
  }
  return sum;
}
