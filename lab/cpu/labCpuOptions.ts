/**
 * `cage lab cpu` options and the two scenarios it reproduces (the paper's cage experiments).
 * Pure: parses argv and describes the scenario; lab/cpu/labCpuRun.ts does the I/O.
 */
import { parseArgs, numberFlag, stringFlag, UsageError } from "../../runtime/cliArgs.js";

export type IdsKind = "packet" | "file";

export interface LabCpuOptions {
  ids: IdsKind;
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
}

export interface LabScenario {
  /** Cage cap, % of one CPU: VM + IDS together. */
  capPct: number;
  /** The IDS's own cap, % of one CPU (enforced by the limiter), or none. */
  idsCapPct: number | null;
  /** What the IDS is, in words, for the summary and the plot's title. */
  idsDescription: string;
}

/** The paper's two cages: (a) packet inspection, cap 50%; (b) file scanning, cap 70%, IDS cap 30%. */
export const SCENARIOS: Readonly<Record<IdsKind, LabScenario>> = Object.freeze({
  packet: {
    capPct: 50,
    idsCapPct: null,
    idsDescription: "tshark -V (full dissection) on the VM's host-side veth (Snort/Suricata are not in Debian 12)",
  },
  file: { capPct: 70, idsCapPct: 30, idsDescription: "AIDE --init (sha512 of every file) over /usr, restarted when done" },
});

export const LAB_CPU_USAGE =
  "usage: cage lab cpu --ids packet|file --actuators on|off [--duration SECONDS] [--json] [--plot FILE.svg]\n" +
  "                    [--idle-after SECONDS] [--compare-cpulimit] [--agent-log FILE]\n" +
  "                    [--period-ms MS] [--limiter-mode cgroup|sigstop]";

/** Seconds at the start that the summary's fractions leave out (the "after the first 3 s"). */
export const WARMUP_S = 3;

export function parseLabCpuArgs(args: string[]): LabCpuOptions {
  const p = parseArgs(args, ["ids", "actuators", "duration", "plot", "idle-after", "agent-log", "period-ms", "limiter-mode"], ["json", "compare-cpulimit"]);
  if (p.positional.length > 0) throw new UsageError(`lab cpu: unexpected argument ${JSON.stringify(p.positional[0])}`);
  if (p.rest !== null) throw new UsageError("lab cpu: takes no command after --");
  const ids = stringFlag(p, "ids");
  if (ids !== "packet" && ids !== "file") throw new UsageError(`lab cpu: --ids must be packet or file, got ${ids === undefined ? "nothing" : JSON.stringify(ids)}`);
  const act = stringFlag(p, "actuators");
  if (act !== "on" && act !== "off") throw new UsageError(`lab cpu: --actuators must be on or off, got ${act === undefined ? "nothing" : JSON.stringify(act)}`);
  const durationS = numberFlag(p, "duration", { min: WARMUP_S + 2, max: 3600, integer: true }) ?? 60;
  const idleAfterS = numberFlag(p, "idle-after", { min: 1, max: 3600, integer: true }) ?? null;
  // The idle phase needs its own warm-up (the VM's cap is raised one actuator period later) plus a few windows.
  if (idleAfterS !== null && idleAfterS + WARMUP_S + 2 > durationS) {
    throw new UsageError(`lab cpu: --idle-after ${idleAfterS} leaves no idle windows to measure in --duration ${durationS} (need idle-after + ${WARMUP_S + 2} <= duration)`);
  }
  const plot = stringFlag(p, "plot") ?? null;
  if (plot !== null && !plot.endsWith(".svg")) throw new UsageError(`lab cpu: --plot must name an .svg file, got ${JSON.stringify(plot)}`);
  const compareCpulimit = p.flags.has("compare-cpulimit");
  if (compareCpulimit && ids !== "file") throw new UsageError("lab cpu: --compare-cpulimit needs --ids file (the IDS with an idsCap)");
  const agentLogPath = stringFlag(p, "agent-log") ?? null;
  const actuatorPeriodMs = numberFlag(p, "period-ms", { min: 10, max: 60_000, integer: true }) ?? null;
  if (actuatorPeriodMs !== null && act !== "on") throw new UsageError("lab cpu: --period-ms needs --actuators on");
  const mode = stringFlag(p, "limiter-mode");
  if (mode !== undefined && mode !== "cgroup" && mode !== "sigstop") throw new UsageError(`lab cpu: --limiter-mode must be cgroup or sigstop, got ${JSON.stringify(mode)}`);
  if (mode !== undefined && (act !== "on" || ids !== "file")) throw new UsageError("lab cpu: --limiter-mode needs --actuators on and --ids file (the IDS with an idsCap)");
  return { ids, actuators: act === "on", durationS, json: p.flags.has("json"), plotPath: plot, idleAfterS, compareCpulimit, agentLogPath, actuatorPeriodMs, limiterMode: mode ?? null };
}
