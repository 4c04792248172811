/**
 * Lets the kernel take back the file pages bpftrace holds but no longer uses once its probes are
 * attached. bpftrace compiles the program with LLVM and clang, which it never runs again, yet
 * their pages stay mapped and count in its RSS (about 70 of its 110 MiB at 100 cages).
 * MADV_PAGEOUT through process_madvise(2) (Linux 5.10+, needs CAP_SYS_NICE) reclaims the clean
 * pages of its read-only file mappings at once. A page it touches again is read back from its
 * file, so nothing is lost, and no memory limit is set, so nothing can be OOM-killed.
 * Node has no system-call interface: perl (perl-base, on every Debian system) makes the calls.
 */
import { execFile } from "node:child_process";

/** pidfd_open and process_madvise: the same numbers on every architecture (syscalls 424+ are shared). */
const PERL_PAGE_OUT = `
use strict; no warnings "portable";
my $pid = $ARGV[0] + 0;
my $pidfd = syscall(434, $pid, 0);
die "pidfd_open($pid): $!\\n" if $pidfd < 0;
open(my $maps, "<", "/proc/$pid/maps") or die "/proc/$pid/maps: $!\\n";
my ($bytes, $failed, $first) = (0, 0, "");
while (my $line = <$maps>) {
  my ($from, $to, $perms, $path) = $line =~ /^([0-9a-f]+)-([0-9a-f]+) (\\S+) \\S+ \\S+ \\d+\\s+(\\/.*)$/ or next;
  next if index($perms, "w") >= 0 || $path =~ m{^/(dev|memfd:)};
  my $done = syscall(440, $pidfd, pack("QQ", hex($from), hex($to) - hex($from)), 1, 21, 0);
  if ($done < 0) { $failed++; $first = "$path: $!" if $first eq "" } else { $bytes += $done }
}
print "$bytes $failed $first\\n";
`;

export interface PageOutResult {
  /** Bytes of mappings the kernel was asked to page out (not all of it was resident). */
  advisedBytes: number;
  /** Mappings the kernel refused, and the first refusal. */
  failedMappings: number;
  firstFailure: string;
}

/** Pages out the read-only file mappings of `pid`; rejects with what went wrong (no perl, no such process, no permission). */
export function pageOutFileMappings(pid: number, timeoutMs = 10_000): Promise<PageOutResult> {
  if (!Number.isInteger(pid) || pid < 1) return Promise.reject(new Error(`page out: pid must be a positive integer, got ${String(pid)}`));
  return new Promise((resolve, reject) => {
    execFile("perl", ["-e", PERL_PAGE_OUT, String(pid)], { timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`page out of PID ${pid}: ${stderr.trim() || err.message}`));
        return;
      }
      const m = /^(\d+) (\d+) ?(.*)\n$/.exec(stdout);
      if (m === null) {
        reject(new Error(`page out of PID ${pid}: unexpected output ${JSON.stringify(stdout.slice(0, 200))}`));
        return;
      }
      resolve({ advisedBytes: Number(m[1]), failedMappings: Number(m[2]), firstFailure: m[3] ?? "" });
    });
  });
}
