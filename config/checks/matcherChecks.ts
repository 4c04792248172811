/** One process matcher (vm.match[], ids[]): it selects something, and what it says can match. */
import { isRecord } from "../isRecord.js";
import type { PathSegment, Report } from "../yamlLocation.js";
import { CMDLINE_PATTERN_MAX_CHARS, cmdlinePatternProblem } from "./cmdlinePattern.js";

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
  // A pattern over the length bound is already reported by the schema (maxLength).
  if (typeof m.cmdline === "string" && m.cmdline.length <= CMDLINE_PATTERN_MAX_CHARS) {
    const problem = cmdlinePatternProblem(m.cmdline);
    if (problem !== null) report([...at, "cmdline"], problem);
  }
}
