/** One process matcher (vm.match[], ids[]): it selects something, and what it says can match. */
import { isRecord } from "../isRecord.js";
import type { PathSegment, Report } from "../yamlLocation.js";

/** The kernel keeps at most 15 bytes of a command name (TASK_COMM_LEN 16 with the NUL). */
export const COMM_MAX_BYTES = 15;
const SELECTORS = ["pid", "comm", "exe", "cmdline", "cgroup"] as const;

export function matcherProblems(m: unknown, at: readonly PathSegment[], report: Report): void {
  if (!isRecord(m)) return;
  if (!SELECTORS.some((s) => m[s] !== undefined)) {
    report(at, `must have at least one selector (${SELECTORS.join(", ")}); descendants alone selects nothing`);
  }
  if (typeof m.comm === "string" && Buffer.byteLength(m.comm, "utf8") > COMM_MAX_BYTES) {
    report([...at, "comm"], `is ${Buffer.byteLength(m.comm, "utf8")} bytes; the kernel keeps at most ${COMM_MAX_BYTES} of a command name, so it never matches (use exe or cmdline)`);
  }
  if (typeof m.cmdline === "string") {
    try {
      new RegExp(m.cmdline);
    } catch (err) {
      report([...at, "cmdline"], `not a valid regular expression: ${(err as Error).message}`);
    }
  }
}
