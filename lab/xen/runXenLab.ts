/**
 * Runs one Xen lab scenario by hand (scripts/xen-lab.sh calls this after building):
 *   node dist/lab/xen/runXenLab.js [--phases smoke|cpu-off,cpu-on,balloon] [--scheduler credit|credit2] ...
 * (`--help` lists every flag.)
 * --project carries another built checkout into dom0 (this tree's dist/lab/xen laid over it),
 * e.g. a branch whose actuator is not merged here yet.
 * Prints the progress markers, then a JSON summary (timings, results) on stdout.
 */
import { DEFAULT_CR3_DOMU, type LabScenarioSpec } from "./labScenario.js";
import { runLabScenario } from "./xenLab.js";
import { exitWith, printMarker, reportRun } from "../common/guestBoot.js";
import { commandLineExitCode, commandUsage, parseCommandLine } from "../../runtime/commandLine.js";
import { UsageError } from "../../runtime/usageError.js";

const XEN_LAB_COMMAND = {
  program: "xen-lab",
  summary: "Boot Xen under QEMU and run one lab scenario in its dom0; prints progress, then a JSON summary.",
  flags: {
    phases: { type: "string", value: "PHASES", help: "comma list of cpu-off, cpu-on, balloon; or smoke, domu-probe, cr3-trace, cr3-ids alone; or cr3-ids,cr3-paper (default cpu-off)" },
    scheduler: { type: "string", choices: ["credit", "credit2"], help: "Xen's scheduler (default credit)" },
    cap: { type: "number", value: "PCT", min: 0, help: "the cage's CPU cap, % of one CPU (default 50)" },
    "ids-cap": { type: "number", value: "PCT", min: 0, help: "the IDS's own cap, % (default 25)" },
    duration: { type: "number", value: "S", min: 0, help: "windows recorded per CPU phase (default 20)" },
    ids: { type: "string", choices: ["aide", "burn"], help: "the IDS in dom0 (default aide)" },
    "domu-mem": { type: "number", value: "MIB", min: 0, help: "the domU's memory (default 256)" },
    "balloon-step": { type: "number", value: "MIB", min: 0, help: "the IDS's growth per balloon step (default 24)" },
    "balloon-steps": { type: "number", value: "N", min: 0, help: "balloon steps (default 4)" },
    "probe-load": { type: "string", value: "LOADS", help: "domu-probe only: comma list of burn, xentrace, bpftrace" },
    "cr3-hap": { type: "string", choices: ["0", "1"], help: "cr3-trace and cr3-ids: the PVH domU's hap (default 1; 0 is shadow paging)" },
    "cr3-monitor": { type: "string", choices: ["on", "off"], help: "cr3-trace and cr3-ids: Xen's CR3-write monitor on the domU (default on)" },
    "cr3-cpuid": { type: "string", value: "CPUID", help: `cr3-trace and cr3-ids: the PVH domU's xl cpuid (default ${DEFAULT_CR3_DOMU.cpuid}; "" for none)` },
    out: { type: "string", value: "DIR", help: "where the results go" },
    timeout: { type: "number", value: "S", min: 60, max: 3600, help: "the whole boot's limit (default 300)" },
    project: { type: "string", value: "BUILT_TREE", help: "an absolute path: carry that built checkout into dom0" },
  },
} as const;

/** Throws runtime/usageError.ts's UsageError, or HelpRequested for --help; the spec itself is checked by runLabScenario. */
function parseXenLabArgs(argv: readonly string[]): { spec: LabScenarioSpec; outDir: string | undefined; timeoutS: number; projectRoot: string | undefined } {
  const { values } = parseCommandLine(XEN_LAB_COMMAND, argv);
  const projectRoot = values.project;
  if (projectRoot !== undefined && !projectRoot.startsWith("/")) {
    throw new UsageError(`${XEN_LAB_COMMAND.program}: --project needs an absolute path, got ${JSON.stringify(projectRoot)}`, commandUsage(XEN_LAB_COMMAND));
  }
  const spec: LabScenarioSpec = {
    phases: (values.phases?.split(",") ?? ["cpu-off"]) as LabScenarioSpec["phases"],
    scheduler: values.scheduler ?? "credit",
    capPct: values.cap ?? 50,
    idsCapPct: values["ids-cap"] ?? 25,
    durationS: values.duration ?? 20,
    ids: values.ids ?? "aide",
    domuMemMiB: values["domu-mem"] ?? 256,
    balloonStepMiB: values["balloon-step"] ?? 24,
    balloonSteps: values["balloon-steps"] ?? 4,
    cr3Domu: {
      hap: values["cr3-hap"] === undefined ? DEFAULT_CR3_DOMU.hap : values["cr3-hap"] === "1",
      monitor: values["cr3-monitor"] === undefined ? DEFAULT_CR3_DOMU.monitor : values["cr3-monitor"] === "on",
      cpuid: values["cr3-cpuid"] ?? DEFAULT_CR3_DOMU.cpuid,
    },
    ...(values["probe-load"] !== undefined ? { probeLoad: values["probe-load"].split(",").filter(Boolean) as NonNullable<LabScenarioSpec["probeLoad"]> } : {}),
  };
  return { spec, outDir: values.out, timeoutS: values.timeout ?? 300, projectRoot };
}

async function main(): Promise<number> {
  let opts;
  try {
    opts = parseXenLabArgs(process.argv.slice(2));
  } catch (err) {
    return commandLineExitCode(err, process.stdout, process.stderr);
  }
  const r = await runLabScenario({
    spec: opts.spec,
    outDir: opts.outDir,
    timeoutMs: opts.timeoutS * 1000,
    projectRoot: opts.projectRoot,
    onMarker: printMarker,
  });
  return reportRun(r, { dom0Stage1S: "stage1", xenReadyS: "xen-ready", scenarioStartS: "scenario-start", poweroffS: "poweroff" });
}

exitWith(XEN_LAB_COMMAND.program, main);
