/**
 * Cost of the page cache collector on the workload it watches: a cold sequential read of a
 * 2 GiB file by a process in the tracking group, with bpftrace attached versus not, alternated
 * in the same run (A B B A ...). Caches are dropped before every read. Reports median and
 * fastest read times and their ratios (attached / detached), the reader's CPU time, and the time
 * spent inside our BPF programs (kernel.bpf_stats_enabled, read from bpftrace's fdinfo), which is
 * the cost itself, free of disk and VM noise.
 *
 *   node dist/bench/pageCacheOverhead.js [--json] [--rounds N (5)] [--size-mib N] [--evict-file]
 *     --evict-file  make the file cold with POSIX_FADV_DONTNEED instead of drop_caches
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dropAllCaches, evictFileFromCache, writeUncachedFile } from "../collectors/pagecache/cacheWorkloads.js";
import { enterCgroupsArgv } from "../host/cgroup/cgroupMounts.js";
import { startPageCacheSource } from "../collectors/pagecache/pageCacheSource.js";
import { pageCacheTotals } from "../collectors/pagecache/pageCacheTotals.js";
import { createTrackingCgroup } from "../host/cgroup/trackingCgroup.js";
import { runBenchMain } from "./benchMain.js";

const MiB = 1 << 20;

interface Options {
  json: boolean;
  rounds: number;
  sizeMiB: number;
  evictFile: boolean;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { json: false, rounds: 5, sizeMiB: 2048, evictFile: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--json") o.json = true;
    else if (a === "--evict-file") o.evictFile = true;
    else if (a === "--rounds" || a === "--size-mib") {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`pageCacheOverhead: ${a} needs a positive integer, got ${JSON.stringify(argv[i])}`);
      if (a === "--rounds") o.rounds = v;
      else o.sizeMiB = v;
    } else throw new Error(`pageCacheOverhead: unknown argument ${JSON.stringify(a)}`);
  }
  return o;
}

/** CPU seconds (user + sys) of this process's waited-for children, from /proc/self/stat (clock ticks). */
function childrenCpuSeconds(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After "pid (comm) ", field 3 is index 0: cutime and cstime are fields 16 and 17.
  return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
}
const CLOCK_TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

function compactMemory(): void {
  try {
    writeFileSync("/proc/sys/vm/compact_memory", "1");
  } catch {
    /* kernels without CONFIG_COMPACTION: nothing to even out */
  }
}

/** Sum of run_time_ns / run_cnt over the BPF programs a process holds (fdinfo; needs kernel.bpf_stats_enabled=1). */
function bpfProgramStats(pid: number): { runNs: number; runs: number } {
  let runNs = 0;
  let runs = 0;
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
    } catch {
      continue;
    }
    if (!text.includes("prog_type:")) continue;
    runNs += Number(/run_time_ns:\s*(\d+)/.exec(text)?.[1] ?? 0);
    runs += Number(/run_cnt:\s*(\d+)/.exec(text)?.[1] ?? 0);
  }
  return { runNs, runs };
}

/** Turns BPF run-time statistics on; returns how to put the sysctl back. */
function enableBpfStats(): () => void {
  const path = "/proc/sys/kernel/bpf_stats_enabled";
  const before = readFileSync(path, "utf8").trim();
  writeFileSync(path, "1");
  return () => {
    if (before === "0") writeFileSync(path, "0");
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export async function main(argv: string[]): Promise<void> {
  const opts = parseOptions(argv);
  const name = `offloadcage-bench-pc-${process.pid}-${randomBytes(3).toString("hex")}`;
  const file = `/var/tmp/${name}.bin`;
  const group = createTrackingCgroup(name, "");
  const bytes = opts.sizeMiB * MiB;
  // Large enough for the whole file in 4 KiB pages, so attached runs never hit a full map.
  const maxTrackedPages = Math.max(1024, Math.ceil((bytes / 4096) * 1.1));
  const detachedS: number[] = [];
  const attachedS: number[] = [];
  const detachedCpuS: number[] = [];
  const attachedCpuS: number[] = [];
  const attributed: number[] = [];
  const probeSeconds: number[] = [];
  const probeRuns: number[] = [];
  const restoreBpfStats = enableBpfStats();
  try {
    writeUncachedFile(file, bytes);
    const readOnce = (cpu: number[] | null): number => {
      if (opts.evictFile) evictFileFromCache(file);
      else dropAllCaches();
      // Same free-memory layout before every read: whether large folios can be allocated
      // (fragmentation left by the previous step) changes a cold read's CPU cost more than the probes do.
      compactMemory();
      const [cmd, ...args] = enterCgroupsArgv([group.procsFile], ["dd", `if=${file}`, "of=/dev/null", "bs=1M", "status=none"]) as [string, ...string[]];
      const c0 = childrenCpuSeconds();
      const t0 = process.hrtime.bigint();
      execFileSync(cmd, args);
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      cpu?.push(childrenCpuSeconds() - c0);
      return wall;
    };
    readOnce(null); // warm-up: binaries, dentries, disk read-ahead state
    for (let r = 0; r < opts.rounds; r++) {
      // A B B A order cancels slow drift (disk, host cache) between the two conditions.
      for (const attached of r % 2 === 0 ? [false, true] : [true, false]) {
        // Both conditions start bpftrace with the same maps just before the read; the detached
        // one stops it before reading. Starting and freeing ~0.4 KB of preallocated map memory per
        // key changes how the next cold read allocates its folios, so only this keeps the two
        // conditions' histories the same.
        let latest = 0;
        const source = await startPageCacheSource({
          cgroupV2Path: group.path,
          intervalMs: 1000,
          maxTrackedPages,
          onBatch: (b) => {
            latest = pageCacheTotals(b).insertedBytes;
          },
        });
        try {
          if (!attached) {
            await source.stop();
            detachedS.push(readOnce(detachedCpuS));
            continue;
          }
          const pid = source.bpftracePid()!;
          const p0 = bpfProgramStats(pid);
          attachedS.push(readOnce(attachedCpuS));
          const p1 = bpfProgramStats(pid);
          probeSeconds.push((p1.runNs - p0.runNs) / 1e9);
          probeRuns.push(p1.runs - p0.runs);
          const until = Date.now() + 3000;
          while (latest < bytes && Date.now() < until) await new Promise((res) => setTimeout(res, 100));
          attributed.push(latest);
        } finally {
          await source.stop();
        }
      }
    }
  } finally {
    restoreBpfStats();
    group.remove();
    rmSync(file, { force: true });
    if (opts.evictFile === false) dropAllCaches();
  }
  const result = {
    bench: "pageCacheOverhead",
    fileBytes: bytes,
    rounds: opts.rounds,
    coldBy: opts.evictFile ? "fadvise-dontneed" : "drop_caches",
    detachedSeconds: detachedS,
    attachedSeconds: attachedS,
    detachedMedianSeconds: median(detachedS),
    attachedMedianSeconds: median(attachedS),
    detachedMiBps: opts.sizeMiB / median(detachedS),
    attachedMiBps: opts.sizeMiB / median(attachedS),
    /** attached / detached read time: 1.00 = no measurable cost. */
    ratio: median(attachedS) / median(detachedS),
    /** Fastest attached / fastest detached: on a VM whose cold reads are bimodal (host-side page backing), the steadier estimate. */
    minRatio: Math.min(...attachedS) / Math.min(...detachedS),
    /** The reader's own CPU (user+sys; the probes run in its context), less noisy than wall time on shared disks. */
    detachedCpuSeconds: detachedCpuS,
    attachedCpuSeconds: attachedCpuS,
    cpuRatio: median(attachedCpuS) / median(detachedCpuS),
    attributedInsertedBytes: attributed,
    /** Time spent inside our BPF programs during each attached read (includes the cache drop's delete events). */
    probeSeconds,
    probeRuns,
    /** Median probe time as a share of the median detached read time. */
    probeShare: median(probeSeconds) / median(detachedS),
  };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  process.stdout.write(
    `cold read of ${opts.sizeMiB} MiB, ${opts.rounds} rounds (${result.coldBy}):\n` +
      `  without collector: median ${result.detachedMedianSeconds.toFixed(3)} s (${result.detachedMiBps.toFixed(0)} MiB/s)  [${detachedS.map((s) => s.toFixed(3)).join(", ")}]\n` +
      `  with collector:    median ${result.attachedMedianSeconds.toFixed(3)} s (${result.attachedMiBps.toFixed(0)} MiB/s)  [${attachedS.map((s) => s.toFixed(3)).join(", ")}]\n` +
      `  ratio (with / without): median ${result.ratio.toFixed(3)}, fastest ${result.minRatio.toFixed(3)}\n` +
      `  reader CPU: without median ${median(detachedCpuS).toFixed(3)} s, with ${median(attachedCpuS).toFixed(3)} s, ratio ${result.cpuRatio.toFixed(3)}\n` +
      `  in-kernel probe time per attached read: median ${(median(probeSeconds) * 1e3).toFixed(1)} ms over ${median(probeRuns)} probe runs = ${(result.probeShare * 100).toFixed(2)} % of a detached read\n` +
      `  attributed per attached read: ${attributed.map((b) => (b / MiB).toFixed(1)).join(", ")} MiB\n`,
  );
}

runBenchMain(import.meta.url, main, "pageCacheOverhead: ");
