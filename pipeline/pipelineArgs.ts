/** Command-line arguments of the pipeline process (pure: parsing only). */
import { commandUsage, parseCommandLine } from "../runtime/commandLine.js";
import { isHelpRequested } from "../runtime/usageError.js";

export interface PipelineArgs {
  configPath: string;
  /** Overrides agent.runtimeDir from the config. */
  runtimeDir: string | null;
  /** Root of the agent's process tree for its own CPU/memory metrics (`cage run` passes its PID); null: the pipeline alone. */
  agentPid: number | null;
}

export const PIPELINE_COMMAND = {
  program: "pipeline",
  summary: "Map the collectors' batches to cages, aggregate them per window, export metrics and publish aggregates.",
  flags: {
    config: { type: "string", value: "FILE", required: true, help: "the cage file" },
    "runtime-dir": { type: "string", value: "DIR", help: "the sockets' directory (default: agent.runtimeDir)" },
    "agent-pid": { type: "integer", value: "PID", min: 1, max: 4_194_304, help: "root of the agent's process tree, for its own CPU and memory metrics" },
  },
} as const;

export const PIPELINE_USAGE = commandUsage(PIPELINE_COMMAND);

export type ParsedPipelineArgs = { help: true } | ({ help: false } & PipelineArgs);

/** Throws runtime/usageError.ts's UsageError on a bad command line. */
export function parsePipelineArgs(argv: readonly string[]): ParsedPipelineArgs {
  let values;
  try {
    ({ values } = parseCommandLine(PIPELINE_COMMAND, argv));
  } catch (err) {
    if (isHelpRequested(err)) return { help: true };
    throw err;
  }
  return { help: false, configPath: values.config, runtimeDir: values["runtime-dir"] ?? null, agentPid: values["agent-pid"] ?? null };
}
