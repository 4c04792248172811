/** Command line of the memory collector process (pure: parsing and checks only). */
import { commandUsage, ENDPOINT_FORMAT, parseCommandLine } from "../../runtime/commandLine.js";

export interface MemoryCollectorArgs {
  configPath: string;
  /** Where to bind the PUB socket. */
  endpoint: string;
  /** Overrides agent.memorySampleMs from the config. */
  sampleMs: number | null;
  /** The pipeline's aggregates endpoint to take the membership from (`agg.members`); null: scan /proc. */
  members: string | null;
}

export const MEMORY_COLLECTOR_COMMAND = {
  program: "cage collector memory",
  summary: "Sample the cages' processes' memory from /proc and publish it as raw.memory batches.",
  flags: {
    config: { type: "string", value: "FILE", required: true, help: "the cage file" },
    endpoint: { type: "string", value: "EP", format: ENDPOINT_FORMAT, required: true, help: "where to bind the PUB socket" },
    "sample-ms": { type: "integer", value: "N", min: 10, max: 3_600_000, help: "sampling period, ms (default: agent.memorySampleMs)" },
    members: { type: "string", value: "EP", format: ENDPOINT_FORMAT, help: "take the cages' processes from the pipeline's agg.members at EP instead of scanning /proc" },
  },
} as const;

export const MEMORY_COLLECTOR_USAGE = commandUsage(MEMORY_COLLECTOR_COMMAND);

/** Throws runtime/usageError.ts's UsageError, or HelpRequested for --help. */
export function parseMemoryCollectorArgs(argv: readonly string[]): MemoryCollectorArgs {
  const { values } = parseCommandLine(MEMORY_COLLECTOR_COMMAND, argv);
  return { configPath: values.config, endpoint: values.endpoint, sampleMs: values["sample-ms"] ?? null, members: values.members ?? null };
}
