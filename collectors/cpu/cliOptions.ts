/** Command line of the CPU collector process, validated at the edge. Pure. */
import { commandUsage, ENDPOINT_FORMAT, parseCommandLine } from "../../runtime/commandLine.js";
import { CPU_PROGRAM_SETTINGS, type CpuProgramSetting } from "../../config/cageConfig.js";

export interface CpuCollectorOptions {
  intervalMs: number;
  endpoint: string;
  mapKeysMax: number | undefined;
  program: CpuProgramSetting;
}

export const CPU_COLLECTOR_COMMAND = {
  program: "cage collector cpu",
  summary: "Publish every process's on-CPU time per window (eBPF sched_switch) as raw.cpu batches.",
  flags: {
    "interval-ms": { type: "integer", value: "N", min: 10, max: 60_000, required: true, help: "window length, ms" },
    endpoint: { type: "string", value: "EP", format: ENDPOINT_FORMAT, required: true, help: "where to bind the PUB socket" },
    "map-keys-max": { type: "integer", value: "N", min: 16, max: 4_194_304, help: "map size (threads per window)" },
    program: { type: "string", choices: CPU_PROGRAM_SETTINGS, help: "eBPF program: libbpf, bpftrace, or auto (libbpf if built and it attaches; default)" },
  },
} as const;

export const CPU_COLLECTOR_USAGE = commandUsage(CPU_COLLECTOR_COMMAND);

/** Throws runtime/usageError.ts's UsageError, or HelpRequested for --help. */
export function parseCpuCollectorArgs(argv: readonly string[]): CpuCollectorOptions {
  const { values } = parseCommandLine(CPU_COLLECTOR_COMMAND, argv);
  return { intervalMs: values["interval-ms"], endpoint: values.endpoint, mapKeysMax: values["map-keys-max"], program: values.program ?? "auto" };
}
