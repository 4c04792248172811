/**
 * Options of `cage lab memory`, validated at the edge. Pure.
 */
import { parseArgs, numberFlag, stringFlag, UsageError } from "../../runtime/cliArgs.js";

export type IdsKind = "malloc" | "file";
export type LabVmKind = "qemu" | "cgroup";

export interface MemoryLabOptions {
  ids: IdsKind;
  vm: LabVmKind;
  /** Length of the recorded experiment, seconds (one record per second). */
  durationS: number;
  /** How long the IDS holds each amount (malloc) or waits between steps (file), seconds; the paper's 15 by default. */
  holdS: number;
  /** A sample counts as settled once the IDS's memory has held still for this long, seconds. */
  settleS: number;
  /** Seed of the malloc program's random sizes (reported, so a run can be repeated). */
  seed: number;
  json: boolean;
  /** Where to write the SVG figure, or null. */
  plot: string | null;
}

export const MEMORY_LAB_USAGE =
  "usage: cage lab memory --ids malloc|file [--vm qemu|cgroup] [--duration SECONDS] [--hold SECONDS] [--settle SECONDS] [--seed N] [--json] [--plot FILE.svg]\n";

/**
 * Default settle window per VM kind. After the IDS stops changing at T, the agent sees it by
 * T + 1 s (/proc and page cache are sampled every second), the actuator acts within its 0.5 s
 * period, and moves at most 256 MiB at most once a second: the lab's largest jump (about 405 MiB)
 * needs 2 moves, done by about T + 2.6 s; the lab samples on whole seconds.
 * A QEMU guest then also has to inflate or deflate its balloon: under TCG on this shared machine
 * that ran at 30 to 50 MiB/s, several seconds for a large move; the must-show allows the guest
 * 10 s to reach a target, so the window for QEMU is those 10 s.
 */
export function defaultSettleS(vm: LabVmKind): number {
  return vm === "qemu" ? 10 : 4;
}

export function parseMemoryLabOptions(args: string[], randomSeed: () => number): MemoryLabOptions {
  const p = parseArgs(args, ["ids", "vm", "duration", "hold", "settle", "seed", "plot"], ["json"]);
  if (p.positional.length > 0 || p.rest !== null) throw new UsageError(`lab memory: unexpected argument ${JSON.stringify(p.positional[0] ?? "--")}`);
  const ids = stringFlag(p, "ids");
  if (ids !== "malloc" && ids !== "file") throw new UsageError(`lab memory: --ids must be "malloc" or "file", got ${JSON.stringify(ids ?? null)}`);
  const vm = stringFlag(p, "vm") ?? "qemu";
  if (vm !== "qemu" && vm !== "cgroup") throw new UsageError(`lab memory: --vm must be "qemu" or "cgroup", got ${JSON.stringify(vm)}`);
  const durationS = numberFlag(p, "duration", { min: 10, max: 3600, integer: true }) ?? 90;
  const holdS = numberFlag(p, "hold", { min: 2, max: 600, integer: true }) ?? 15;
  const settleS = numberFlag(p, "settle", { min: 0, max: 600, integer: true }) ?? defaultSettleS(vm);
  if (settleS >= holdS) throw new UsageError(`lab memory: --settle (${settleS} s) must be shorter than --hold (${holdS} s), or no sample would ever be settled`);
  const seed = numberFlag(p, "seed", { min: 1, max: 2 ** 31 - 1, integer: true }) ?? randomSeed();
  const plot = stringFlag(p, "plot") ?? null;
  if (plot !== null && !plot.endsWith(".svg")) throw new UsageError(`lab memory: --plot must name an .svg file, got ${JSON.stringify(plot)}`);
  return { ids, vm, durationS, holdS, settleS, seed, json: p.flags.has("json"), plot };
}
