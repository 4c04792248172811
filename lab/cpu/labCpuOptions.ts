/**
 * `cage lab cpu` options and the two scenarios it reproduces (the paper's cage experiments).
 * Pure: parses argv and describes the scenario; lab/cpu/labCpuRun.ts does the I/O.
 */
import { commandUsage, parseCommandLine } from "../../runtime/commandLine.js";
import { UsageError } from "../../runtime/usageError.js";
import { BALLOON_PERFORMER_TRIPWIRE } from "../common/tripwire.js";

export type IdsKind = "packet" | "file" | "tripwire";
/** The lab's VM: nginx in a v1 cpu cgroup, or the test guest as a domain of a private libvirtd. */
export type LabCpuVmKind = "cgroup" | "libvirt";

export interface LabCpuOptions {
  ids: IdsKind;
  vm: LabCpuVmKind;
  /** --vm libvirt: at this second the domain is destroyed and started again (the restart check). */
  restartAtS: number | null;
  actuators: boolean;
  /** Seconds recorded (one record per second). */
  durationS: number;
  json: boolean;
  plotPath: string | null;
  /** From this second on the IDS is stopped (idle): the work-conserving phase. null: busy all along. */
  idleAfterS: number | null;
  /** Run a second, identical IDS under Debian's cpulimit (same idsCap) beside the cage's own (file only). */
  compareCpulimit: boolean;
  /** Append the agent's log lines (pino JSON: collectors, pipeline, actuators) to this file. */
  agentLogPath: string | null;
  /** The actuators' control period (`periodMs` of both sections), or null for their default. */
  actuatorPeriodMs: number | null;
  /** The IDS limiter's mode (`agent.actuators.limiter.mode`), or null for its default. */
  limiterMode: "cgroup" | "sigstop" | null;
  /** --ids tripwire: regular files its policy covers, whole directories picked from TRIPWIRE_ROOT; else null. */
  tripwireFiles: number | null;
}

export interface LabScenario {
  /** Cage cap, % of one CPU: VM + IDS together. */
  capPct: number;
  /** The IDS's own cap, % of one CPU (enforced by the limiter), or none. */
  idsCapPct: number | null;
  /** What the IDS is, in words, for the summary and the plot's title. */
  idsDescription: string;
}

/**
 * The paper's two cages: (a) packet inspection, cap 50%; (b) file scanning, cap 70%, IDS cap 30%
 * (the paper's file scanner was Tripwire; AIDE or Tripwire here).
 */
export const SCENARIOS: Readonly<Record<IdsKind, LabScenario>> = Object.freeze({
  packet: {
    capPct: 50,
    idsCapPct: null,
    idsDescription: "tshark -V (full dissection) on the VM's host-side veth (Snort/Suricata are not in Debian 12)",
  },
  file: { capPct: 70, idsCapPct: 30, idsDescription: "AIDE --init (sha512 of every file) over /usr, restarted when done" },
  tripwire: {
    capPct: 70,
    idsCapPct: 30,
    idsDescription: "Open Source Tripwire --check (its ReadOnly rule: metadata, CRC32 and MD5 of every file) of directories picked from /usr against a baseline made before the run, restarted when done",
  },
});

/** Where --ids tripwire picks its directories from, and how many files by default (the paper's Tripwire checked 27,752). */
export const TRIPWIRE_ROOT = "/usr";
export const TRIPWIRE_DEFAULT_FILES = BALLOON_PERFORMER_TRIPWIRE.files;

/** Seconds at the start that the summary's fractions leave out: the warm-up before the cage's caps settle. */
export const WARMUP_S = 3;

export const LAB_CPU_COMMAND = {
  program: "cage lab cpu",
  summary: "The paper's CPU cage experiments with the real agent (docs/lab-cpu.md).",
  flags: {
    ids: { type: "string", choices: ["packet", "file", "tripwire"], required: true, help: "the IDS: tshark on the VM's veth, AIDE over /usr, or Tripwire over files from /usr" },
    actuators: { type: "string", choices: ["on", "off"], required: true, help: "run the cage scheduler (and the IDS limiter) or only measure" },
    duration: { type: "integer", value: "SECONDS", min: WARMUP_S + 2, max: 3600, help: "seconds recorded (default 60)" },
    json: { type: "boolean", help: "print the records and the summary as JSON" },
    plot: { type: "string", value: "FILE.svg", help: "write the figure" },
    "idle-after": { type: "integer", value: "SECONDS", min: 1, max: 3600, help: "stop the IDS from this second on (the work-conserving phase)" },
    files: { type: "integer", value: "N", min: 100, max: 10_000_000, help: `regular files Tripwire checks, whole directories of ${TRIPWIRE_ROOT} (--ids tripwire; default ${TRIPWIRE_DEFAULT_FILES})` },
    "compare-cpulimit": { type: "boolean", help: "also run the IDS under Debian's cpulimit (--ids file)" },
    "agent-log": { type: "string", value: "FILE", help: "append the agent's log lines to FILE" },
    "period-ms": { type: "integer", value: "MS", min: 10, max: 60_000, help: "the actuators' control period (--actuators on)" },
    "limiter-mode": { type: "string", choices: ["cgroup", "sigstop"], help: "the IDS limiter's mode (--actuators on, --ids file or tripwire)" },
    vm: { type: "string", choices: ["cgroup", "libvirt"], help: "the VM: nginx under wrk load in a cgroup, or a TCG guest burning CPU in a private libvirtd (default cgroup)" },
    "restart-at": { type: "integer", value: "SECONDS", min: 1, max: 3600, help: "virsh destroy + start the domain at this second (--vm libvirt --actuators on)" },
  },
} as const;

export const LAB_CPU_USAGE = commandUsage(LAB_CPU_COMMAND);

/** Throws runtime/usageError.ts's UsageError, or HelpRequested for --help. */
export function parseLabCpuArgs(args: string[]): LabCpuOptions {
  const { values } = parseCommandLine(LAB_CPU_COMMAND, args);
  const fail = (message: string): never => {
    throw new UsageError(`${LAB_CPU_COMMAND.program}: ${message}`, LAB_CPU_USAGE);
  };
  const { ids, actuators: act } = values;
  const durationS = values.duration ?? 60;
  const idleAfterS = values["idle-after"] ?? null;
  // The idle phase needs its own warm-up (the VM's cap is raised one actuator period later) plus a few windows.
  if (idleAfterS !== null && idleAfterS + WARMUP_S + 2 > durationS) {
    fail(`--idle-after ${idleAfterS} leaves no idle windows to measure in --duration ${durationS} (need idle-after + ${WARMUP_S + 2} <= duration)`);
  }
  const plot = values.plot ?? null;
  if (plot !== null && !plot.endsWith(".svg")) fail(`--plot must name an .svg file, got ${JSON.stringify(plot)}`);
  const compareCpulimit = values["compare-cpulimit"];
  if (compareCpulimit && ids !== "file") fail("--compare-cpulimit needs --ids file (a second AIDE runs under cpulimit)");
  const actuatorPeriodMs = values["period-ms"] ?? null;
  if (actuatorPeriodMs !== null && act !== "on") fail("--period-ms needs --actuators on");
  const vm = values.vm ?? "cgroup";
  // The packet IDS watches the VM's veth to nginx; the libvirt guest has no web server.
  if (vm === "libvirt" && ids === "packet") fail("--vm libvirt needs --ids file or tripwire (the guest serves no HTTP for the packet IDS to watch)");
  if (vm === "libvirt" && compareCpulimit) fail("--compare-cpulimit needs --vm cgroup");
  const restartAtS = values["restart-at"] ?? null;
  if (restartAtS !== null && (vm !== "libvirt" || act !== "on")) fail("--restart-at needs --vm libvirt and --actuators on (it checks that the actuators follow the restarted domain)");
  if (restartAtS !== null && restartAtS < WARMUP_S) fail(`--restart-at ${restartAtS} falls in the ${WARMUP_S} s warm-up`);
  if (restartAtS !== null && restartAtS + 5 > durationS) fail(`--restart-at ${restartAtS} leaves under 5 s to follow the restart in --duration ${durationS} (need restart-at + 5 <= duration)`);
  if (restartAtS !== null && idleAfterS !== null) fail("--restart-at and --idle-after are separate runs");
  const mode = values["limiter-mode"];
  if (mode !== undefined && (act !== "on" || SCENARIOS[ids].idsCapPct === null)) fail("--limiter-mode needs --actuators on and --ids file or tripwire (an IDS with an idsCap)");
  const files = values.files;
  if (files !== undefined && ids !== "tripwire") fail("--files needs --ids tripwire");
  const tripwireFiles = ids === "tripwire" ? (files ?? TRIPWIRE_DEFAULT_FILES) : null;
  return { ids, vm, restartAtS, actuators: act === "on", durationS, json: values.json, plotPath: plot, idleAfterS, compareCpulimit, agentLogPath: values["agent-log"] ?? null, actuatorPeriodMs, limiterMode: mode ?? null, tripwireFiles };
}
