/**
 * File and process helpers for page cache experiments (tests, benchmarks, `--verify` demos):
 * make a file that is on disk but not cached, evict a file, run a reader that stays alive.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";

const MiB = 1 << 20;

/** Writes `bytes` (a whole number of MiB) to `path`, flushed to disk, then evicts it from the cache. */
export function writeUncachedFile(path: string, bytes: number): void {
  if (!Number.isInteger(bytes / MiB) || bytes <= 0) throw new Error(`writeUncachedFile: size must be a positive whole number of MiB, got ${bytes}`);
  execFileSync("dd", ["if=/dev/zero", `of=${path}`, "bs=1M", `count=${bytes / MiB}`, "conv=fsync", "status=none"]);
  evictFileFromCache(path);
}

/** POSIX_FADV_DONTNEED over the whole file (GNU dd: iflag=nocache count=0), run by a task outside any tracking group. */
export function evictFileFromCache(path: string): void {
  execFileSync("dd", [`if=${path}`, "iflag=nocache", "count=0", "status=none"]);
}

/** Bytes of `path` in the page cache now (util-linux fincore, i.e. mincore(2)). */
export function cachedBytesOfFile(path: string): number {
  return Number(execFileSync("fincore", ["--bytes", "--noheadings", "--output", "RES", path], { encoding: "utf8" }).trim());
}

/** Drops the clean page cache of the whole machine (affects everyone; benchmarks only). */
export function dropAllCaches(): void {
  execFileSync("sync");
  writeFileSync("/proc/sys/vm/drop_caches", "1");
}

/**
 * argv of a reader that reads each file through once (1 MiB reads), closes it, prints
 * "read done", then sleeps: a process still alive after its files were evicted or unlinked.
 * perl is in every Debian (perl-base is essential).
 */
export function readThenSleepArgv(files: string[], sleepSeconds: number): string[] {
  const script =
    'my $s = shift @ARGV; for my $f (@ARGV) { open(my $h, "<", $f) or die "$f: $!"; my $b; while (sysread($h, $b, 1 << 20)) {} close($h); } ' +
    '$| = 1; print "read done\\n"; sleep($s);';
  return ["perl", "-e", script, String(sleepSeconds), ...files];
}

/** Spawns argv and resolves once it printed "read done" (rejects if it exits first). */
export function spawnReader(argv: string[]): Promise<ChildProcess> {
  const [cmd, ...args] = argv as [string, ...string[]];
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      out += d;
      if (out.includes("read done")) resolve(child);
    });
    child.on("error", reject);
    child.on("close", (code, signal) => reject(new Error(`reader exited (${signal ?? `code ${String(code)}`}) before it finished reading`)));
  });
}

/** Kills a child and waits for it to be gone. */
export async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  child.kill("SIGKILL");
  await closed;
}
