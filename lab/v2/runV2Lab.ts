/**
 * Runs one v2 lab boot by hand (scripts/v2-lab.sh calls this after building):
 *   node dist/lab/v2/runV2Lab.js [--phases smoke|service,cage] [--cap PCT] ...   (`--help` lists every flag)
 * Prints the progress markers as they come, then a JSON summary (timings, results) on stdout.
 */
import type { V2ScenarioSpec } from "./labScenario.js";
import { runV2Scenario } from "./v2Lab.js";
import { exitWith, printMarker, reportRun } from "../common/guestBoot.js";
import { commandLineExitCode, parseCommandLine } from "../../runtime/commandLine.js";

const V2_LAB_COMMAND = {
  program: "v2-lab",
  summary: "Boot the cgroup-v2 systemd guest under QEMU and run one lab scenario in it; prints progress, then a JSON summary.",
  flags: {
    phases: { type: "string", value: "PHASES", help: "comma list of service, cage, or smoke alone (default smoke)" },
    cap: { type: "number", value: "PCT", min: 0, help: "the cage's CPU cap, % of one CPU (default 50)" },
    "ids-cap": { type: "number", value: "PCT", min: 0, help: "the IDS's own cap, % (default 25)" },
    duration: { type: "number", value: "S", min: 0, help: "1 s windows recorded in the cage phase (default 30)" },
    "vm-mem": { type: "number", value: "MIB", min: 0, help: "the VM workload's memory (default 128)" },
    out: { type: "string", value: "DIR", help: "where the console log and results go" },
    timeout: { type: "number", value: "S", min: 60, max: 3600, help: "the boot's limit from QEMU's start (default 2400)" },
  },
} as const;

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseCommandLine(V2_LAB_COMMAND, process.argv.slice(2)));
  } catch (err) {
    return commandLineExitCode(err, process.stdout, process.stderr);
  }
  const spec: V2ScenarioSpec = {
    phases: (values.phases?.split(",") ?? ["smoke"]) as V2ScenarioSpec["phases"],
    capPct: values.cap ?? 50,
    idsCapPct: values["ids-cap"] ?? 25,
    durationS: values.duration ?? 30,
    vmMemMiB: values["vm-mem"] ?? 128,
  };
  const r = await runV2Scenario({
    spec,
    outDir: values.out,
    timeoutMs: (values.timeout ?? 2400) * 1000,
    onMarker: printMarker,
  });
  return reportRun(r, { stage1S: "stage1", systemdUpS: "systemd-up", scenarioStartS: "scenario-start", poweroffS: "poweroff" });
}

exitWith(V2_LAB_COMMAND.program, main);
