/**
 * What an actuator tells its restore guardian (actuators/common/guardianMain.ts), and what the
 * guardian remembers. Pure. One JSON object per line on the guardian's stdin; the guardian
 * answers each message that has an `id` with `{"id":N,"ok":true}` (or ok false and an error) on
 * its stdout. The guardian acts when its stdin closes (the actuator is gone, even by SIGKILL):
 * it SIGCONTs every registered PID, then
 * - after `orderly` (the agent is stopping in order): puts back every ORIGINAL setting;
 * - otherwise (the actuator died): puts the cage's FAIL-SAFE in place (`failsafe` /
 *   `failsafeArgv` where given, else the original), for the restarted actuator to take over.
 * `done` disarms it (clean exit: the actuator restored everything itself).
 *
 *   {"id":1,"op":"cont","pid":123,"start":456}   SIGCONT this process (pid + start time) on trigger
 *   {"id":2,"op":"forget","pid":123}
 *   {"id":3,"op":"write","path":"/sys/fs/cgroup/cpu/x/cpu.cfs_quota_us","value":"-1","failsafe":"40000"}
 *        (first value per path wins: the original; the latest failsafe wins)
 *   {"id":4,"op":"unwrite","path":"..."}
 *   {"id":5,"op":"exec","key":"xl:web","argv":["xl","sched-credit","-d","web","-c","0","-w","256"],"failsafeArgv":[...]}
 *        (latest per key wins)
 *   {"id":6,"op":"unexec","key":"xl:web"}
 *   {"id":7,"op":"qmp","key":"qmp:db1","socket":"/run/qemu/db1.qmp","command":"balloon","bytes":4294967296,"failsafeBytes":4294967296}
 *        (one QMP command with a byte count: the QEMU balloon; latest per key wins)
 *   {"id":8,"op":"unqmp","key":"qmp:db1"}
 *   {"id":9,"op":"orderly"}   the agent is stopping in order: restore originals, not the fail-safe
 *   {"op":"hb"}     heartbeat; with none for watchdogMs the guardian SIGCONTs its PIDs (actuator hung or stopped)
 *   {"op":"done"}   clean exit: the actuator restored everything itself
 */
import { checkArgv } from "../../host/commandRunner.js";

export type RestoreAction =
  | { op: "cont"; pid: number; start: number }
  | { op: "write"; path: string; value: string; failsafe?: string }
  | { op: "exec"; key: string; argv: string[]; failsafeArgv?: string[] }
  | QmpRestoreAction;

/** The QEMU balloon through its QMP socket: `bytes` the original, `failsafeBytes` the fail-safe. */
export interface QmpRestoreAction {
  op: "qmp";
  key: string;
  socket: string;
  command: "balloon";
  bytes: number;
  failsafeBytes?: number;
}

export type GuardianMessage =
  | RestoreAction
  | { op: "forget"; pid: number }
  | { op: "unwrite"; path: string }
  | { op: "unexec"; key: string }
  | { op: "unqmp"; key: string }
  | { op: "orderly" }
  | { op: "hb" }
  | { op: "done" };

/** Programs a guardian may run on trigger (by name, or by an absolute path ending in one of them). */
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

/** An argv the guardian may run: xl or virsh with arguments the command runner accepts. */
function checkGuardianArgv(name: string, argv: unknown): string[] {
  if (!Array.isArray(argv) || argv.length < 2 || !argv.every((a): a is string => typeof a === "string")) fail(`${name} must be a list of at least 2 strings`);
  const list: string[] = argv;
  const program = list[0] ?? "";
  const base = program.startsWith("/") ? program.slice(program.lastIndexOf("/") + 1) : program;
  if (!(GUARDIAN_PROGRAMS as readonly string[]).includes(base)) fail(`${name}[0] must be one of ${GUARDIAN_PROGRAMS.join(", ")} (or an absolute path to one), got ${JSON.stringify(program)}`);
  try {
    checkArgv(program, list.slice(1));
  } catch (err) {
    fail((err as Error).message);
  }
  return list;
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
      const printable = (name: string, v: unknown): string => (typeof v === "string" && /^[ -~]{1,64}$/.test(v) ? v : fail(`${name} must be 1-64 printable characters, got ${JSON.stringify(v)}`));
      const value = printable("value", m.value);
      const failsafe = m.failsafe === undefined ? undefined : printable("failsafe", m.failsafe);
      return { id, message: { op: "write", path: checkCgroupFilePath(m.path), value, ...(failsafe === undefined ? {} : { failsafe }) } };
    }
    case "unwrite":
      return { id, message: { op: "unwrite", path: checkCgroupFilePath(m.path) } };
    case "exec": {
      const argv = checkGuardianArgv("argv", m.argv);
      const failsafeArgv = m.failsafeArgv === undefined ? undefined : checkGuardianArgv("failsafeArgv", m.failsafeArgv);
      return { id, message: { op: "exec", key: key(), argv, ...(failsafeArgv === undefined ? {} : { failsafeArgv }) } };
    }
    case "unexec":
      return { id, message: { op: "unexec", key: key() } };
    case "qmp": {
      const socket = typeof m.socket === "string" && m.socket.startsWith("/") && !m.socket.split("/").includes("..") && /^[ -~]{2,256}$/.test(m.socket) ? m.socket : fail(`socket must be an absolute path without "..", got ${JSON.stringify(m.socket)}`);
      if (m.command !== "balloon") fail(`command must be "balloon", got ${JSON.stringify(m.command)}`);
      const bytes = (name: string, v: unknown): number => (Number.isSafeInteger(v) && (v as number) > 0 ? (v as number) : fail(`${name} must be a positive integer, got ${JSON.stringify(v)}`));
      const failsafeBytes = m.failsafeBytes === undefined ? undefined : bytes("failsafeBytes", m.failsafeBytes);
      return { id, message: { op: "qmp", key: key(), socket, command: "balloon", bytes: bytes("bytes", m.bytes), ...(failsafeBytes === undefined ? {} : { failsafeBytes }) } };
    }
    case "unqmp":
      return { id, message: { op: "unqmp", key: key() } };
    case "orderly":
      return { id, message: { op: "orderly" } };
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
  /** Path → its original value (the first one registered). */
  readonly writes = new Map<string, string>();
  /** Path → its fail-safe value (the latest one registered). */
  readonly failsafeWrites = new Map<string, string>();
  /** Key → the command that restores the original. */
  readonly execs = new Map<string, string[]>();
  /** Key → the command that puts the fail-safe in place. */
  readonly failsafeExecs = new Map<string, string[]>();
  readonly qmps = new Map<string, QmpRestoreAction>();
  /** Set by `orderly`: restore the originals, not the fail-safe. */
  orderly = false;
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
        if (message.failsafe !== undefined) this.failsafeWrites.set(message.path, message.failsafe);
        break;
      case "unwrite":
        this.writes.delete(message.path);
        this.failsafeWrites.delete(message.path);
        break;
      case "exec":
        this.execs.set(message.key, message.argv);
        if (message.failsafeArgv !== undefined) this.failsafeExecs.set(message.key, message.failsafeArgv);
        else this.failsafeExecs.delete(message.key);
        break;
      case "unexec":
        this.execs.delete(message.key);
        this.failsafeExecs.delete(message.key);
        break;
      case "qmp":
        this.qmps.set(message.key, message);
        break;
      case "unqmp":
        this.qmps.delete(message.key);
        break;
      case "orderly":
        this.orderly = true;
        break;
      case "done":
        this.disarmed = true;
        break;
      case "hb":
        break;
    }
  }

  /** What to do on trigger: the originals after `orderly`, else the fail-safe (the original where none was given). */
  plan(): { writes: Map<string, string>; execs: Map<string, string[]>; qmps: Map<string, { socket: string; bytes: number }> } {
    const writes = new Map<string, string>();
    for (const [path, value] of this.writes) writes.set(path, this.orderly ? value : (this.failsafeWrites.get(path) ?? value));
    const execs = new Map<string, string[]>();
    for (const [key, argv] of this.execs) execs.set(key, this.orderly ? argv : (this.failsafeExecs.get(key) ?? argv));
    const qmps = new Map<string, { socket: string; bytes: number }>();
    for (const [key, q] of this.qmps) qmps.set(key, { socket: q.socket, bytes: this.orderly ? q.bytes : (q.failsafeBytes ?? q.bytes) });
    return { writes, execs, qmps };
  }
}

export function encodeGuardianMessage(id: number | null, message: GuardianMessage): string {
  return `${JSON.stringify(id === null ? message : { id, ...message })}\n`;
}
