/**
 * A snapshot of the machine's processes from /proc: identity (pid + start time), parentage,
 * names and cgroups, which is everything the cage matchers look at. Processes exit while we
 * read; those are skipped silently, a scan never fails because of one process.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { KeptProcFiles, MAX_KEPT_FDS } from "./keptProcFiles.js";
import { parseStatusUids, type ProcessUids } from "./procStatus.js";

export interface ProcessCgroups {
  /** v1 hierarchies: controller name (or "name=systemd") → the process's path in that hierarchy. */
  v1: Record<string, string>;
  /** Path in the unified (v2) hierarchy, from the "0::" line; null if the kernel prints none. */
  v2: string | null;
}

export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** Field 22 of /proc/PID/stat: clock ticks after boot. With pid it identifies a process (PIDs get reused). */
  startTime: number;
  comm: string;
  /** Target of /proc/PID/exe; null for kernel threads, zombies, or when we may not read it. */
  exe: string | null;
  /** /proc/PID/cmdline with NULs as spaces; "" for kernel threads and zombies. */
  cmdline: string;
  cgroups: ProcessCgroups;
  /** Real and effective UID (the Uid: line of /proc/PID/status); the uid/user matchers test both. */
  uids: ProcessUids;
}

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  startTime: number;
}

/** The identity of one process: a PID alone is ambiguous once it has been reused. */
export function processKey(pid: number, startTime: number): string {
  return `${pid}@${startTime}`;
}

/**
 * Parses /proc/PID/stat. comm is printed raw inside parentheses and may itself contain spaces
 * and parentheses, so it ends at the LAST ')'; the remaining fields are space separated.
 */
export function parseProcStat(text: string): ProcStat {
  return parseStat(text, 23);
}

/**
 * parseProcStat, and the exec key of the same line (the fields are found once: the scanner's
 * per-process cost). The exec key is what an exec changes in /proc/PID/stat: comm (field 2, set to the new program's
 * name), and the addresses of the new memory map: startcode, endcode, startstack (fields 26-28)
 * and arg_start, arg_end (fields 48-49, where cmdline lives). With address space randomisation
 * each exec places them afresh; a process that moves its arguments (PR_SET_MM) changes 48-49.
 * Null when the kernel hides the addresses (printed as 0 to a reader that may not ptrace the
 * process) or prints fewer fields: then nothing tells an exec, and the caller must read cmdline.
 * A kernel thread's addresses are all 0 too, but its flags (field 9) say so, and they change
 * when a usermode helper thread execs a program.
 */
export function parseStatWithExecKey(text: string): { stat: ProcStat; execKey: string | null } {
  const stat = parseStat(text, 50);
  return { stat, execKey: execKeyOf(text, text.lastIndexOf(")"), indexed) };
}

/**
 * fieldStart[n]: where field n (3 or more: the fields after comm) begins in the text last indexed.
 * Filled in place: the scans parse a stat line per process, and a split would make ~50 strings of each.
 */
const fieldStart = new Int32Array(54);
/** How many fields the last indexStatFields found (fields 3..indexed begin at fieldStart). */
let indexed = 0;

/** Finds where fields 3..upTo begin (stopping at the text's end); returns the last field found. */
function indexStatFields(text: string, close: number, upTo: number): number {
  let pos = close + 2;
  let n = 3;
  fieldStart[3] = pos;
  while (n < upTo) {
    const space = text.indexOf(" ", pos);
    if (space < 0) break;
    pos = space + 1;
    fieldStart[++n] = pos;
  }
  indexed = n;
  return n;
}

/** Field n's text (indexStatFields must have reached n + 1, or n when it is the last). */
function statField(text: string, n: number): string {
  if (n > indexed) return "";
  return n < indexed ? text.slice(fieldStart[n], fieldStart[n + 1]! - 1) : text.slice(fieldStart[n]).trimEnd();
}

function parseStat(text: string, upTo: number): ProcStat {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) throw new Error(`/proc stat: no "(comm)" in ${JSON.stringify(text.slice(0, 80))}`);
  const pid = Number(text.slice(0, open).trim());
  indexStatFields(text, close, upTo);
  const state = statField(text, 3);
  const ppidText = statField(text, 4);
  const startText = statField(text, 22);
  const ppid = ppidText === "" ? NaN : Number(ppidText);
  const startTime = startText === "" ? NaN : Number(startText);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`/proc stat: bad pid in ${JSON.stringify(text.slice(0, 80))}`);
  if (!Number.isInteger(ppid) || ppid < 0) throw new Error(`/proc/${pid}/stat: field 4 (ppid) is not an integer`);
  if (!Number.isInteger(startTime) || startTime < 0) throw new Error(`/proc/${pid}/stat: field 22 (starttime) is not an integer`);
  return { pid, comm: text.slice(open + 1, close), state, ppid, startTime };
}

/** The exec key of a stat line whose fields were indexed up to `found` (see parseStatWithExecKey). */
function execKeyOf(text: string, close: number, found: number): string | null {
  // Field 49 must be followed by field 50 for its end to be known.
  if (found < 50) return null;
  const flags = Number(statField(text, 9));
  if (!Number.isInteger(flags)) return null;
  const kernelThread = (flags & PF_KTHREAD) !== 0;
  // Fields 26-28 and 48-49 are contiguous: one slice each.
  const code = text.slice(fieldStart[26], fieldStart[29]! - 1);
  const args = text.slice(fieldStart[48], fieldStart[50]! - 1);
  if (!kernelThread && code === "0 0 0" && args === "0 0") return null;
  return `${text.slice(text.indexOf("(") + 1, close)}\0${kernelThread ? "k" : "u"}${code} ${args}`;
}

/** include/linux/sched.h: the task is a kernel thread. */
const PF_KTHREAD = 0x00200000;

/**
 * User and system CPU ticks (fields 14 and 15 of /proc/PID/stat) of the process's live threads;
 * USER_HZ (100 on Linux) ticks per second. Same field splitting as parseProcStat.
 */
export function parseProcCpuTicks(text: string): { utimeTicks: number; stimeTicks: number } {
  const close = text.lastIndexOf(")");
  if (close < 0) throw new Error(`/proc stat: no "(comm)" in ${JSON.stringify(text.slice(0, 80))}`);
  const rest = text.slice(close + 2).trim().split(" ");
  const utimeTicks = Number(rest[14 - 3]);
  const stimeTicks = Number(rest[15 - 3]);
  if (!Number.isInteger(utimeTicks) || !Number.isInteger(stimeTicks) || utimeTicks < 0 || stimeTicks < 0) {
    throw new Error(`/proc stat: fields 14-15 (utime, stime) are not integers in ${JSON.stringify(text.slice(0, 120))}`);
  }
  return { utimeTicks, stimeTicks };
}

/** The unit of /proc's CPU times: USER_HZ, 100 per second on Linux (fixed by the kernel ABI). */
export const USER_HZ = 100;

/** utime + stime of a process in seconds, or null when it is gone or its stat cannot be read. */
export function processCpuSeconds(pid: number, procRoot = "/proc"): number | null {
  try {
    const t = parseProcCpuTicks(readFileSync(`${procRoot}/${pid}/stat`, "utf8"));
    return (t.utimeTicks + t.stimeTicks) / USER_HZ;
  } catch {
    return null;
  }
}

/** Parses /proc/PID/cgroup: "hierarchy-id:controller,list:path" per line; "0::path" is v2. */
export function parseProcCgroup(text: string): ProcessCgroups {
  const out: ProcessCgroups = { v1: {}, v2: null };
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) continue;
    const id = line.slice(0, first);
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1); // a cgroup name may itself contain ':'
    if (id === "0" && controllers === "") out.v2 = path;
    else for (const c of controllers.split(",")) if (c !== "") out.v1[c] = path;
  }
  return out;
}

export interface ScanOptions {
  /** Called for a process that could not be read for a reason other than having exited. */
  onError?: (pid: number, err: Error) => void;
  /**
   * The optional files to read (default both): a caller whose matchers test no cgroup or no exe
   * skips those reads, a third of a scan's system calls. Unread, `cgroups` is empty and `exe` null.
   */
  read?: ProcFields;
  /**
   * ProcessScanner only. 1 (the default): every listed process is read on every scan. k > 1: a
   * process read before is read again only at its turn (every k scans, staggered by PID) and
   * while young (first read fewer than k scans ago: a new process is the one likely to exec
   * soon); between turns the scan returns what it last read of it, the same object. New PIDs
   * are read when listed and exited ones dropped when no longer listed, on every scan; what a
   * listed process changes in place (an exec, its argv, its cgroup, its owner, its parent, or its
   * PID taken by a new process between two listings) is seen within k scans instead of one.
   */
  refreshEvery?: number;
}

/** The /proc files of a process that not every caller needs. */
export interface ProcFields {
  cgroups: boolean;
  exe: boolean;
}

const ALL_FIELDS: ProcFields = { cgroups: true, exe: true };

/** The owner of a process whose status could not be read: no owner selector matches it. */
const NO_OWNER: ProcessUids = Object.freeze({ real: -1, effective: -1 });

/** The PIDs of every process (thread group) in procRoot, ascending. */
function listPids(procRoot: string): number[] {
  return readdirSync(procRoot)
    .filter((name) => /^[0-9]+$/.test(name))
    .map(Number)
    .sort((a, b) => a - b);
}

/** Every process (thread group) in procRoot, in PID order. */
export function scanProcesses(procRoot = "/proc", options: ScanOptions = {}): ProcessInfo[] {
  const table: ProcessInfo[] = [];
  for (const pid of listPids(procRoot)) {
    try {
      const info = readProcess(pid, procRoot, options.read);
      if (info) table.push(info);
    } catch (err) {
      options.onError?.(pid, err as Error);
    }
  }
  return table;
}

/** /proc/PID/cmdline bytes (as text) with NULs as spaces. */
function cmdlineText(raw: string): string {
  return raw.replace(/\0+$/, "").replace(/\0/g, " ");
}

/** Target of /proc/PID/exe, or null. */
function readExe(dir: string): string | null {
  try {
    return readlinkSync(`${dir}/exe`);
  } catch {
    // Kernel threads have no exe, and another user's process may be unreadable: not an error.
    return null;
  }
}

/** One process, or null if it is gone (or was replaced by another with the same PID) meanwhile. */
export function readProcess(pid: number, procRoot = "/proc", read: ProcFields = ALL_FIELDS): ProcessInfo | null {
  const dir = `${procRoot}/${pid}`;
  try {
    const stat = parseProcStat(readFileSync(`${dir}/stat`, "utf8"));
    const cmdline = cmdlineText(readFileSync(`${dir}/cmdline`).toString("utf8"));
    const cgroups = read.cgroups ? parseProcCgroup(readFileSync(`${dir}/cgroup`, "utf8")) : { v1: {}, v2: null };
    const uids = parseStatusUids(pid, readFileSync(`${dir}/status`, "utf8"));
    const exe = read.exe ? readExe(dir) : null;
    // Re-read the start time: if the PID was reused while we read, the files above are a mix.
    if (parseProcStat(readFileSync(`${dir}/stat`, "utf8")).startTime !== stat.startTime) return null;
    return { pid, ppid: stat.ppid, startTime: stat.startTime, comm: stat.comm, exe, cmdline, cgroups, uids };
  } catch (err) {
    if (isGone(err)) return null;
    throw err;
  }
}

/**
 * scanProcesses for a caller that scans again and again (the memory collector and the pipeline
 * resolve the cages every resolveMs): each process's files are read through descriptors kept
 * open while it lives (keptProcFiles.ts), one pread each instead of an open, reads and a close,
 * and without the second stat read once the descriptors are bound to the process. close() when done.
 *
 * Incremental: stat is read every time; cmdline and exe only when the process is new to the
 * scanner, or may have exec'd since they were read (its exec key changed: parseStatWithExecKey), or the
 * kernel hides what would tell (null key), or at its turn in the refresh round (every
 * CMDLINE_REFRESH_SCANS scans, staggered by PID), which bounds how long an argv rewritten in
 * place without an exec (setproctitle) goes unseen. cgroup is read every time when asked for (a
 * process moves between cgroups without an exec), and status as before, when first asked for.
 * With ScanOptions.refreshEvery k > 1, a process already read is read at all only every k scans
 * (and while young); the scans in between list /proc and read only new PIDs.
 */
export class ProcessScanner {
  private readonly files: KeptProcFiles;
  /** By PID: what the last read found, to reuse while the process has not exec'd. */
  private readonly known = new Map<number, KnownProcess>();
  private scans = 0;
  /** How many cmdline reads were made and saved (tests, footprint). */
  readonly counts = { cmdlineReads: 0, cmdlineReused: 0 };

  constructor(
    readonly procRoot = "/proc",
    maxFds = MAX_KEPT_FDS,
  ) {
    this.files = new KeptProcFiles(procRoot, maxFds);
  }

  /** Descriptors held now (tests, footprint). */
  get keptFds(): number {
    return this.files.size;
  }

  /** Every process in procRoot, in PID order, as scanProcesses reads them. */
  scan(options: ScanOptions = {}): ProcessInfo[] {
    if (this.files.closed) throw new Error("process scanner: scan() after close()");
    const every = options.refreshEvery ?? 1;
    if (!Number.isInteger(every) || every < 1) throw new Error(`process scanner: refreshEvery must be a positive integer, got ${every}`);
    this.scans++;
    const pids = listPids(this.procRoot);
    const listed = new Set(pids);
    this.files.retain((pid) => listed.has(pid));
    for (const pid of this.known.keys()) if (!listed.has(pid)) this.known.delete(pid);
    const read = options.read ?? ALL_FIELDS;
    const table: ProcessInfo[] = [];
    for (const pid of pids) {
      if (every > 1) {
        const known = this.known.get(pid);
        // Not its turn, no longer young, and read with the same files: what the last read found.
        if (known !== undefined && (pid + this.scans) % every !== 0 && this.scans - known.firstScan >= every && known.cgroupsRead === read.cgroups && known.exeRead === read.exe) {
          table.push(known.info);
          continue;
        }
      }
      try {
        const info = this.readKept(pid, read);
        if (info) table.push(info);
      } catch (err) {
        options.onError?.(pid, err as Error);
      }
    }
    return table;
  }

  /**
   * One process read as scan() reads it (a PID met between scans), or null when it is gone.
   * Throws what scan() would report through onError.
   */
  readOne(pid: number, read: ProcFields = ALL_FIELDS): ProcessInfo | null {
    if (this.files.closed) throw new Error("process scanner: readOne() after close()");
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`process scanner: PID must be a positive integer, got ${pid}`);
    return this.readKept(pid, read);
  }

  /** Closes every kept descriptor; a later scan throws. */
  close(): void {
    this.files.close();
    this.known.clear();
  }

  private readKept(pid: number, read: ProcFields): ProcessInfo | null {
    const bound = this.files.isKept(pid, "stat");
    try {
      return this.readThrough(pid, read, bound);
    } catch (err) {
      if (!isGone(err)) throw err;
      this.known.delete(pid);
      if (!bound) return null;
    }
    // The process the descriptors were bound to exited (they are closed now); the PID may name a new one.
    try {
      return this.readThrough(pid, read, false);
    } catch (err) {
      if (isGone(err)) return null;
      throw err;
    }
  }

  /**
   * `bound`: the stat descriptor was opened by an earlier scan, so it and every other kept
   * descriptor read the process of that scan. Otherwise the files opened now (and exe, read by
   * path) may each have met another process that took the PID meanwhile: the stat is read
   * again at the end, and only if the first process still lived (same start time) are they all its.
   *
   * `uids` is read from status when first asked for, through a descriptor opened here: status is
   * the dearest of these files for the kernel to produce, and the cage matchers ask for the owner
   * only of the few processes their other selectors pick (cageMembership.ts). A process gone
   * by then, or a status without a Uid: line, has no owner (-1), which no owner selector matches.
   */
  private readThrough(pid: number, read: ProcFields, bound: boolean): ProcessInfo | null {
    const files = this.files;
    const { stat, execKey } = parseStatWithExecKey(files.read(pid, "stat"));
    const before = this.known.get(pid);
    // Same process (start time), no exec since (same key), and not its turn to be read afresh.
    const unchanged = before !== undefined && before.startTime === stat.startTime && execKey !== null && before.execKey === execKey && (pid + this.scans) % CMDLINE_REFRESH_SCANS !== 0;
    let cmdline: string;
    if (unchanged) {
      cmdline = before.cmdline;
      this.counts.cmdlineReused++;
    } else {
      cmdline = cmdlineText(files.read(pid, "cmdline"));
      this.counts.cmdlineReads++;
    }
    const cgroups = read.cgroups ? parseProcCgroup(files.read(pid, "cgroup")) : NO_CGROUPS;
    const status = files.hold(pid, "status");
    const uids = status === "unkept" ? parseStatusUids(pid, files.read(pid, "status")) : null;
    const keptExe = unchanged ? before.exe : undefined;
    const exeByPath = read.exe && keptExe === undefined;
    const exe = !read.exe ? null : exeByPath ? readExe(`${this.procRoot}/${pid}`) : (keptExe as string | null);
    const recheck = !bound || exeByPath || status === "opened";
    if (recheck && parseProcStat(files.read(pid, "stat")).startTime !== stat.startTime) {
      // Another process took the PID while we read: a later scan must not return the last read between turns.
      this.known.delete(pid);
      return null;
    }
    const readUids = (): ProcessUids => {
      try {
        return parseStatusUids(pid, files.read(pid, "status"));
      } catch {
        return NO_OWNER;
      }
    };
    let owner = uids;
    const info: ProcessInfo = {
      pid,
      ppid: stat.ppid,
      startTime: stat.startTime,
      comm: stat.comm,
      exe,
      cmdline,
      cgroups,
      get uids(): ProcessUids {
        return (owner ??= readUids());
      },
    };
    const knownExe = read.exe ? exe : keptExe;
    const firstScan = before !== undefined && before.startTime === stat.startTime ? before.firstScan : this.scans;
    this.known.set(pid, { startTime: stat.startTime, execKey, cmdline, exe: knownExe, info, firstScan, cgroupsRead: read.cgroups, exeRead: read.exe });
    return info;
  }
}

/** The cgroups of a process whose cgroup file was not read (no caller asked): shared, never changed. */
const NO_CGROUPS: ProcessCgroups = Object.freeze({ v1: Object.freeze({}), v2: null });

/**
 * A process's cmdline and exe are read afresh at least once in this many scans even when its
 * exec key stays (ProcessScanner): the bound on how stale an argv rewritten in place can be.
 */
export const CMDLINE_REFRESH_SCANS = 20;

/** What ProcessScanner last read of a process. `exe` undefined: not read (no caller asked). */
interface KnownProcess {
  startTime: number;
  execKey: string | null;
  cmdline: string;
  exe: string | null | undefined;
  /** What the last read returned (scans with refreshEvery > 1 return it between the process's turns). */
  info: ProcessInfo;
  /** The scan that first read this process (this PID with this start time). */
  firstScan: number;
  /** Which optional files `info` has. */
  cgroupsRead: boolean;
  exeRead: boolean;
}

/** ENOENT / ESRCH: the process exited between listing and reading. */
export function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === "ENOENT" || code === "ESRCH";
}

/** True while a process with this PID exists (EPERM: it exists, owned by another user). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
