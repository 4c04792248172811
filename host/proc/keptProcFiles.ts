/**
 * Reads /proc/PID files through descriptors kept open between reads, for the readers that read
 * the same files many times a second (the memory sampler, the membership scans): one pread per
 * read instead of open, fstat, two reads and close.
 *
 * Why this is correct:
 * - A /proc/PID descriptor is bound to the process it was opened for, not to its PID number:
 *   once that process is gone, reads fail with ESRCH, and a new process that reuses the PID is
 *   never read through it. The caller sees ESRCH (isGone) and the descriptors are closed.
 * - A read from offset 0 makes the kernel produce the file afresh (seq_file restarts its
 *   iterator at position 0; cmdline reads the process's memory at the position asked), so each
 *   pread(fd, buf, 0) sees current values.
 * - The kernel produces these files whole into the buffer when it is large enough, so a read
 *   that leaves room in the buffer has the entire file; a full buffer is grown and read again.
 */
import { closeSync, openSync, readFileSync, readSync } from "node:fs";

/** The most descriptors one KeptProcFiles holds; past it, files are read by path as before. */
export const MAX_KEPT_FDS = 4096;

const INITIAL_BUFFER_BYTES = 4096;

export class KeptProcFiles {
  /** PID → file name → open descriptor. */
  private readonly fds = new Map<number, Map<string, number>>();
  private openCount = 0;
  private buffer = Buffer.allocUnsafe(INITIAL_BUFFER_BYTES);
  private closedFlag = false;

  constructor(
    readonly procRoot = "/proc",
    private readonly maxFds = MAX_KEPT_FDS,
  ) {
    if (!Number.isInteger(maxFds) || maxFds < 0) throw new Error(`kept /proc files: maxFds must be a non-negative integer, got ${maxFds}`);
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.closedFlag;
  }

  /** Descriptors open now. */
  get size(): number {
    return this.openCount;
  }

  /** Whether `file` of `pid` is read through a descriptor already open (opened by an earlier read). */
  isKept(pid: number, file: string): boolean {
    return this.fds.get(pid)?.has(file) ?? false;
  }

  /**
   * The text of procRoot/PID/file now. Throws what the read throws (ENOENT/ESRCH when the process
   * is gone: then every descriptor of that PID is closed). Past maxFds the file is read by path.
   */
  read(pid: number, file: string): string {
    if (this.hold(pid, file) === "unkept") return readFileSync(`${this.procRoot}/${pid}/${file}`, "utf8");
    const fd = this.fds.get(pid)?.get(file) as number;
    try {
      for (;;) {
        const n = readSync(fd, this.buffer, 0, this.buffer.length, 0);
        if (n < this.buffer.length) return this.buffer.toString("utf8", 0, n);
        this.buffer = Buffer.allocUnsafe(this.buffer.length * 2);
      }
    } catch (err) {
      this.forget(pid);
      throw err;
    }
  }

  /**
   * Opens `file` of `pid` for later reads without reading it: "kept" when it was open already,
   * "opened" when opened now (by path: the caller checks it met the process it means), "unkept"
   * past maxFds (reads go by path). Throws what the open throws (ENOENT: gone).
   */
  hold(pid: number, file: string): "kept" | "opened" | "unkept" {
    if (this.closedFlag) throw new Error("kept /proc files: read after close()");
    if (this.fds.get(pid)?.has(file) === true) return "kept";
    if (this.openCount >= this.maxFds) return "unkept";
    const fd = openSync(`${this.procRoot}/${pid}/${file}`, "r");
    let files = this.fds.get(pid);
    if (files === undefined) this.fds.set(pid, (files = new Map<string, number>()));
    files.set(file, fd);
    this.openCount++;
    return "opened";
  }

  /** Closes the descriptors of `pid` (it exited, or is no longer read). */
  forget(pid: number): void {
    const files = this.fds.get(pid);
    if (files === undefined) return;
    this.fds.delete(pid);
    for (const fd of files.values()) {
      this.openCount--;
      closeQuietly(fd);
    }
  }

  /** Closes the descriptors of every PID for which `keep` is false. */
  retain(keep: (pid: number) => boolean): void {
    for (const pid of [...this.fds.keys()]) if (!keep(pid)) this.forget(pid);
  }

  /** Closes every descriptor; later reads throw. Idempotent. */
  close(): void {
    this.retain(() => false);
    this.closedFlag = true;
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Closing a /proc descriptor cannot fail in a way we could act on.
  }
}
