/**
 * A process is (PID, start time): field 22 of /proc/PID/stat, clock ticks after boot. A PID
 * alone may name another process once the first exits and the number is reused, so every
 * actuator checks this immediately before it signals a process or moves it between cgroups.
 */
import { readFileSync } from "node:fs";
import { parseProcStat } from "./processTable.js";

export interface ProcessIdentity {
  pid: number;
  /** Field 22 of /proc/PID/stat: clock ticks after boot. */
  startTime: number;
}

/** Field 22 of /proc/PID/stat, or null when there is no such process (or it cannot be read). */
export function readStartTime(pid: number, procRoot = "/proc"): number | null {
  try {
    return parseProcStat(readFileSync(`${procRoot}/${pid}/stat`, "utf8")).startTime;
  } catch {
    return null;
  }
}

/** Is the process this identity names still running under its PID (not exited, not replaced)? */
export function isSameProcess(identity: ProcessIdentity, procRoot = "/proc"): boolean {
  return readStartTime(identity.pid, procRoot) === identity.startTime;
}

/** Warnings per second about reused PIDs before the rest are only counted. */
const WARN_BURST = 5;

/**
 * Counts actions skipped because the PID now names another process, and says which of them
 * deserve a log line (at most WARN_BURST a second), so a churn of short-lived processes cannot
 * flood the log.
 */
export class PidReuseCounter {
  /** Actions skipped since construction. */
  skipped = 0;
  private windowStartMs = -Infinity;
  private warnsInWindow = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** Counts one skip; true when the caller should log it. */
  note(): boolean {
    this.skipped++;
    const now = this.now();
    if (now - this.windowStartMs >= 1000) {
      this.windowStartMs = now;
      this.warnsInWindow = 0;
    }
    if (this.warnsInWindow >= WARN_BURST) return false;
    this.warnsInWindow++;
    return true;
  }
}
