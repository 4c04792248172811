/**
 * What an actuator tells its restore guardian (actuators/common/guardianMain.ts), and what the
 * guardian remembers. Pure. One JSON object per line on the guardian's stdin; the guardian
 * answers each message that has an `id` with `{"id":N,"ok":true}` (or ok false and an error) on
 * its stdout. The guardian carries out what it remembers when its stdin closes (the actuator
 * died, even by SIGKILL) or it gets SIGTERM/SIGINT/SIGHUP; `done` disarms it (clean exit).
 *
 *   {"id":1,"op":"cont","pid":123,"start":456}   SIGCONT this process (pid + start time) on trigger
 *   {"id":2,"op":"forget","pid":123}
 *   {"id":3,"op":"write","path":"/sys/fs/cgroup/cpu/x/cpu.cfs_quota_us","value":"-1"}  (first value per path wins: the original)
 *   {"id":4,"op":"unwrite","path":"..."}
 *   {"id":5,"op":"exec","key":"xl:web","argv":["xl","sched-credit","-d","web","-c","0","-w","256"]}  (latest per key wins)
 *   {"id":6,"op":"unexec","key":"xl:web"}
 *   {"op":"hb"}     heartbeat; with none for watchdogMs the guardian SIGCONTs its PIDs (actuator hung or stopped)
 *   {"op":"done"}   clean exit: the actuator restored everything itself
 */
import { checkArgv } from "../../host/commandRunner.js";

export type RestoreAction =
  | { op: "cont"; pid: number; start: number }
  | { op: "write"; path: string; value: string }
  | { op: "exec"; key: string; argv: string[] };

export type GuardianMessage =
  | RestoreAction
  | { op: "forget"; pid: number }
  | { op: "unwrite"; path: string }
  | { op: "unexec"; key: string }
  | { op: "hb" }
  | { op: "done" };

/** Programs a guardian may run on trigger. */
export const GUARDIAN_PROGRAMS = ["xl", "virsh", "systemctl"] as const;

export class GuardianProtocolError extends Error {
  override readonly name = "GuardianProtocolError";
}

function fail(message: string): never {
  throw new GuardianProtocolError(message);
}

/** A cgroup file we may write on trigger: absolute, under /sys/fs/cgroup, no `..`. */
export function checkCgroupFilePath(path: unknown): string {
  if (typeof path !== "string" || !path.startsWith("/sys/fs/cgroup/") || path.split("/").includes("..") || path.includes("\n") || path.includes(String.fromCharCode(0))) {
    fail(`path must be a file under /sys/fs/cgroup/ without "..", got ${JSON.stringify(path)}`);
  }
  return path;
}

/** Parses and checks one line; throws GuardianProtocolError naming what is wrong. */
export function parseGuardianLine(line: string): { id: number | null; message: GuardianMessage } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    fail(`not JSON: ${JSON.stringify(line.slice(0, 80))}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) fail("a message must be a JSON object");
  const m = parsed as Record<string, unknown>;
  const id = m.id === undefined ? null : Number.isSafeInteger(m.id) && (m.id as number) >= 0 ? (m.id as number) : fail(`id must be an integer >= 0, got ${JSON.stringify(m.id)}`);
  const pid = (): number => (Number.isSafeInteger(m.pid) && (m.pid as number) > 0 ? (m.pid as number) : fail(`pid must be a positive integer, got ${JSON.stringify(m.pid)}`));
  const key = (): string => (typeof m.key === "string" && /^[A-Za-z0-9:._-]{1,128}$/.test(m.key) ? m.key : fail(`key must be 1-128 of [A-Za-z0-9:._-], got ${JSON.stringify(m.key)}`));
  switch (m.op) {
    case "cont": {
      const start = Number.isSafeInteger(m.start) && (m.start as number) >= 0 ? (m.start as number) : fail(`start must be an integer >= 0, got ${JSON.stringify(m.start)}`);
      return { id, message: { op: "cont", pid: pid(), start } };
    }
    case "forget":
      return { id, message: { op: "forget", pid: pid() } };
    case "write": {
      const value = typeof m.value === "string" && /^[ -~]{1,64}$/.test(m.value) ? m.value : fail(`value must be 1-64 printable characters, got ${JSON.stringify(m.value)}`);
      return { id, message: { op: "write", path: checkCgroupFilePath(m.path), value } };
    }
    case "unwrite":
      return { id, message: { op: "unwrite", path: checkCgroupFilePath(m.path) } };
    case "exec": {
      const argv = m.argv;
      if (!Array.isArray(argv) || argv.length < 2 || !argv.every((a) => typeof a === "string")) fail("argv must be a list of at least 2 strings");
      const [program, ...args] = argv;
      if (!(GUARDIAN_PROGRAMS as readonly string[]).includes(program as string)) fail(`argv[0] must be one of ${GUARDIAN_PROGRAMS.join(", ")}, got ${JSON.stringify(program)}`);
      try {
        checkArgv(program as string, args);
      } catch (err) {
        fail((err as Error).message);
      }
      return { id, message: { op: "exec", key: key(), argv: argv } };
    }
    case "unexec":
      return { id, message: { op: "unexec", key: key() } };
    case "hb":
      return { id, message: { op: "hb" } };
    case "done":
      return { id, message: { op: "done" } };
    default:
      fail(`unknown op ${JSON.stringify(m.op)}`);
  }
}

/** What a guardian remembers and will carry out on trigger. */
export class GuardianState {
  readonly pids = new Map<number, number>();
  readonly writes = new Map<string, string>();
  readonly execs = new Map<string, string[]>();
  disarmed = false;

  apply(message: GuardianMessage): void {
    switch (message.op) {
      case "cont":
        this.pids.set(message.pid, message.start);
        break;
      case "forget":
        this.pids.delete(message.pid);
        break;
      case "write":
        if (!this.writes.has(message.path)) this.writes.set(message.path, message.value);
        break;
      case "unwrite":
        this.writes.delete(message.path);
        break;
      case "exec":
        this.execs.set(message.key, message.argv);
        break;
      case "unexec":
        this.execs.delete(message.key);
        break;
      case "done":
        this.disarmed = true;
        break;
      case "hb":
        break;
    }
  }
}

export function encodeGuardianMessage(id: number | null, message: GuardianMessage): string {
  return `${JSON.stringify(id === null ? message : { id, ...message })}\n`;
}
