/** One process matcher (vm.match[], ids[]): it selects something, and what it says can match. */
import { isRecord } from "../isRecord.js";
import { PASSWD_PATH, readUsers } from "../userNames.js";
import type { PathSegment, Report } from "../yamlLocation.js";
import { CMDLINE_PATTERN_MAX_CHARS, cmdlinePatternProblem } from "./cmdlinePattern.js";

/** The kernel keeps at most 15 bytes of a command name (TASK_COMM_LEN 16 with the NUL). */
export const COMM_MAX_BYTES = 15;
const SELECTORS = ["pid", "comm", "exe", "cmdline", "cgroup"] as const;
/** What /proc/PID/exe shows for a binary deleted (or replaced) while it runs; the matcher strips it. */
export const DELETED_SUFFIX = " (deleted)";

export type MatcherRole = "vm" | "ids";

/**
 * Problems of one matcher. `users` maps user names to UIDs (/etc/passwd); it is read when first
 * needed, so a file without `user:` never touches /etc/passwd.
 */
export function matcherProblems(m: unknown, at: readonly PathSegment[], report: Report, role: MatcherRole, users: () => Map<string, number> = cachedUsers()): void {
  if (!isRecord(m)) return;
  if (!SELECTORS.some((s) => m[s] !== undefined)) {
    report(at, `must have at least one selector (${SELECTORS.join(", ")}); descendants alone selects nothing`);
  }
  if (typeof m.comm === "string" && Buffer.byteLength(m.comm, "utf8") > COMM_MAX_BYTES) {
    report([...at, "comm"], `is ${Buffer.byteLength(m.comm, "utf8")} bytes; the kernel keeps at most ${COMM_MAX_BYTES} of a command name, so it never matches (use exe or cmdline)`);
  }
  if (typeof m.exe === "string" && m.exe.endsWith(DELETED_SUFFIX)) {
    report([...at, "exe"], `ends with "${DELETED_SUFFIX}": give the binary's path; a running process whose binary was deleted or replaced matches it anyway`);
  }
  // A pattern over the length bound is already reported by the schema (maxLength).
  if (typeof m.cmdline === "string" && m.cmdline.length <= CMDLINE_PATTERN_MAX_CHARS) {
    const problem = cmdlinePatternProblem(m.cmdline);
    if (problem !== null) report([...at, "cmdline"], problem);
  }
  const owners = ownerUids(m, at, report, users);
  if (role === "vm") {
    if (m.allowNonRoot !== undefined) report([...at, "allowNonRoot"], "is for IDS matchers only; a VM matcher may match any user's processes");
    return;
  }
  if (m.allowNonRoot === true) return;
  if (owners === null) {
    report(at, "an IDS matcher without uid or user also selects other users' processes, so any user could pose as the IDS (and get the VM capped); add uid: 0 (or user: root), or the IDS's own user with allowNonRoot: true");
    return;
  }
  for (const { uid, path, given } of owners) {
    if (uid !== 0) report(path, `${given} is not root, so a process of that user could pose as the IDS; set allowNonRoot: true on this matcher if that user runs the IDS`);
  }
}

interface Owner {
  uid: number;
  path: PathSegment[];
  given: string;
}

/** The UIDs a matcher's uid and user fields name (unknown users reported), or null when it has neither. */
function ownerUids(m: Record<string, unknown>, at: readonly PathSegment[], report: Report, users: () => Map<string, number>): Owner[] | null {
  if (m.uid === undefined && m.user === undefined) return null;
  const out: Owner[] = [];
  for (const [key, value] of [["uid", m.uid], ["user", m.user]] as const) {
    if (value === undefined) continue;
    const items: { v: unknown; path: PathSegment[] }[] = Array.isArray(value) ? (value as unknown[]).map((v, i) => ({ v, path: [...at, key, i] })) : [{ v: value, path: [...at, key] }];
    for (const { v, path } of items) {
      if (key === "uid" && typeof v === "number" && Number.isInteger(v)) out.push({ uid: v, path, given: `uid ${v}` });
      if (key === "user" && typeof v === "string") {
        let table: Map<string, number>;
        try {
          table = users();
        } catch (err) {
          report(path, `cannot read ${PASSWD_PATH} to look up user ${JSON.stringify(v)}: ${(err as Error).message}`);
          continue;
        }
        const uid = table.get(v);
        if (uid === undefined) report(path, `user ${JSON.stringify(v)} does not exist in ${PASSWD_PATH}`);
        else out.push({ uid, path, given: `user ${JSON.stringify(v)} (uid ${uid})` });
      }
    }
  }
  return out;
}

/** One read of /etc/passwd per check run, shared by the matchers of one file. */
export function cachedUsers(read: () => Map<string, number> = readUsers): () => Map<string, number> {
  let table: Map<string, number> | null = null;
  return () => (table ??= read());
}
