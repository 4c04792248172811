/**
 * Which eBPF program the CPU collector runs, and its command line. Pure, no I/O.
 * Both programs print the same lines (bpftrace's JSON, parsed by bpftraceJsonLines.ts):
 * - libbpf: dist/bpf/cpuTime, built from bpf/cpuTime.bpf.c and bpf/cpuTime.c by scripts/build.sh;
 *   BTF tracepoints with direct loads, the cheaper one per context switch;
 * - bpftrace: bpf/cpuTime.bt, which needs only bpftrace.
 */
import type { CpuProgramSetting } from "../../config/cageConfig.js";

export type CpuProgram = "libbpf" | "bpftrace";

export interface ProgramPlan {
  /** Programs to start, in order: the next one is tried when the one before cannot start. */
  tries: CpuProgram[];
  /** Why auto skipped libbpf without trying it; null when nothing was skipped. */
  skipped: string | null;
}

export function programPlan(setting: CpuProgramSetting, loaderBuilt: boolean, loaderPath: string): ProgramPlan {
  switch (setting) {
    case "bpftrace":
      return { tries: ["bpftrace"], skipped: null };
    case "libbpf":
      return { tries: ["libbpf"], skipped: null };
    case "auto":
      return loaderBuilt
        ? { tries: ["libbpf", "bpftrace"], skipped: null }
        : { tries: ["bpftrace"], skipped: `the libbpf program ${loaderPath} is not built (scripts/build.sh builds it when clang-14, bpftool and libbpf-dev are installed)` };
  }
}

/** Positional parameters shared by bpf/cpuTime.bt and dist/bpf/cpuTime for a window length. */
export function programArgs(intervalMs: number): string[] {
  // The window probe prints a window once, on its first tick after the window ends: a short tick
  // puts the window out within WINDOW_TICK_MS of its end (the cage scheduler's latency).
  const tickMs = Math.max(1, Math.min(WINDOW_TICK_MS, Math.floor(intervalMs / 2)));
  // A few flushes per window bound how late a never-switched task's time shows up.
  const flushHz = Math.max(1, Math.min(1000, Math.ceil(4000 / intervalMs)));
  return [String(intervalMs), String(tickMs), String(flushHz)];
}

/** Most ms between a window's end and its output. */
export const WINDOW_TICK_MS = 5;

export interface ProgramCommand {
  command: string;
  args: string[];
  env: Record<string, string>;
}

/** The command line of one program; its map size goes as an argument (libbpf) or in the environment (bpftrace). */
export function programCommand(
  program: CpuProgram,
  paths: { bpftrace: string; script: string; loader: string },
  intervalMs: number,
  mapKeysMax: number,
): ProgramCommand {
  return program === "libbpf"
    ? { command: paths.loader, args: [...programArgs(intervalMs), String(mapKeysMax)], env: {} }
    : { command: paths.bpftrace, args: ["-f", "json", paths.script, ...programArgs(intervalMs)], env: { BPFTRACE_MAP_KEYS_MAX: String(mapKeysMax) } };
}
