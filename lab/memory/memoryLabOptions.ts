/**
 * Options of `cage lab memory`, validated at the edge. Pure.
 */
import { commandUsage, parseCommandLine } from "../../runtime/commandLine.js";
import { UsageError } from "../../runtime/usageError.js";
import { BALLOON_PERFORMER_TRIPWIRE } from "../common/tripwire.js";

export type IdsKind = "malloc" | "file" | "tripwire";
export type LabVmKind = "qemu" | "libvirt" | "cgroup";

export interface MemoryLabOptions {
  ids: IdsKind;
  vm: LabVmKind;
  /** Length of the recorded experiment, seconds (one record per second). */
  durationS: number;
  /** How long the IDS holds each amount (malloc) or waits between steps (file), seconds; the paper's 15 by default. */
  holdS: number;
  /** A sample counts as settled once the IDS's memory has held still for this long, seconds. */
  settleS: number;
  /** --ids tripwire: files of the tree it checks (the paper's 27,752 by default); else null. */
  tripwireFiles: number | null;
  /** Seed of the malloc program's random sizes and the trees' file sizes (reported, so a run can be repeated). */
  seed: number;
  json: boolean;
  /** Where to write the SVG figure, or null. */
  plot: string | null;
}

/**
 * Default settle window per VM kind. After the IDS stops changing at T, the agent sees it by
 * T + 1 s (/proc and page cache are sampled every second), the actuator acts within its 0.5 s
 * period, and moves at most 256 MiB at most once a second: the lab's largest jump (about 405 MiB)
 * needs 2 moves, done by about T + 2.6 s; the lab samples on whole seconds.
 * A QEMU guest then also has to inflate or deflate its balloon: under TCG on this shared machine
 * that ran at 30 to 50 MiB/s, several seconds for a large move; the must-show allows the guest
 * 10 s to reach a target, so the window for QEMU is those 10 s. A libvirt domain is the same
 * guest under TCG, ballooned through virsh: the same 10 s. Tripwire's jumps are tens of MiB, not
 * hundreds (its RSS grows as it checks; it keeps no page cache), which a guest inflates in well
 * under a second: the agent's own 4 s, as for the cgroup VM.
 */
export function defaultSettleS(vm: LabVmKind, ids: IdsKind): number {
  return vm === "cgroup" || ids === "tripwire" ? 4 : 10;
}

export const MEMORY_LAB_COMMAND = {
  program: "cage lab memory",
  summary: "Balloon Performer's Figures 4/5 with the real agent (docs/lab-memory.md).",
  flags: {
    ids: { type: "string", choices: ["malloc", "file", "tripwire"], required: true, help: "the IDS: random allocations, or file reads into the page cache (file: AIDE; tripwire: Tripwire)" },
    vm: { type: "string", choices: ["qemu", "libvirt", "cgroup"], help: "the VM: a QEMU guest with a balloon (over QMP, or a private libvirtd's domain through virsh), or a memory cgroup (default qemu)" },
    duration: { type: "integer", value: "SECONDS", min: 10, max: 3600, help: "seconds recorded (default 90)" },
    hold: { type: "integer", value: "SECONDS", min: 2, max: 600, help: "how long the IDS holds each amount (default 15)" },
    settle: { type: "integer", value: "SECONDS", min: 0, max: 600, help: "a sample counts once the IDS held still this long (default 4 for the cgroup VM or Tripwire, else 10)" },
    files: { type: "integer", value: "N", min: 100, max: 1_000_000, help: `files of the tree Tripwire checks (--ids tripwire; default ${BALLOON_PERFORMER_TRIPWIRE.files}, the paper's)` },
    seed: { type: "integer", value: "N", min: 1, max: 2 ** 31 - 1, help: "seed of the malloc and file sizes (default: random, reported)" },
    json: { type: "boolean", help: "print the records and the summary as JSON" },
    plot: { type: "string", value: "FILE.svg", help: "write the figure" },
  },
} as const;

export const MEMORY_LAB_USAGE = commandUsage(MEMORY_LAB_COMMAND);

/** Throws runtime/usageError.ts's UsageError, or HelpRequested for --help. */
export function parseMemoryLabOptions(args: string[], randomSeed: () => number): MemoryLabOptions {
  const { values } = parseCommandLine(MEMORY_LAB_COMMAND, args);
  const fail = (message: string): never => {
    throw new UsageError(`${MEMORY_LAB_COMMAND.program}: ${message}`, MEMORY_LAB_USAGE);
  };
  const vm = values.vm ?? "qemu";
  const durationS = values.duration ?? 90;
  const holdS = values.hold ?? 15;
  const settleS = values.settle ?? defaultSettleS(vm, values.ids);
  if (settleS >= holdS) fail(`--settle (${settleS} s) must be shorter than --hold (${holdS} s), or no sample would ever be settled`);
  if (values.files !== undefined && values.ids !== "tripwire") fail("--files needs --ids tripwire");
  const tripwireFiles = values.ids === "tripwire" ? (values.files ?? BALLOON_PERFORMER_TRIPWIRE.files) : null;
  const seed = values.seed ?? randomSeed();
  const plot = values.plot ?? null;
  if (plot !== null && !plot.endsWith(".svg")) fail(`--plot must name an .svg file, got ${JSON.stringify(plot)}`);
  return { ids: values.ids, vm, durationS, holdS, settleS, tripwireFiles, seed, json: values.json, plot };
}
