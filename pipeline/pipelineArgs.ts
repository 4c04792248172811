/** Command-line arguments of the pipeline process (pure: parsing only). */
import { integerFlag, readFlags } from "../runtime/processFlags.js";

export const PIPELINE_USAGE = "usage: pipeline --config FILE [--runtime-dir DIR] [--agent-pid PID]";

export interface PipelineArgs {
  configPath: string;
  /** Overrides agent.runtimeDir from the config. */
  runtimeDir: string | null;
  /** Root of the agent's process tree for its own CPU/memory metrics (`cage run` passes its PID); null: the pipeline alone. */
  agentPid: number | null;
}

/** A bad command line; `message` is exactly what the user sees (before the usage line). */
export class PipelineArgsError extends Error {
  override readonly name = "PipelineArgsError";
}

export type ParsedPipelineArgs = { help: true } | ({ help: false } & PipelineArgs);

function fail(message: string): never {
  throw new PipelineArgsError(message);
}

export function parsePipelineArgs(argv: readonly string[]): ParsedPipelineArgs {
  if (argv.some((a) => a === "--help" || a === "-h")) return { help: true };
  const flags = readFlags(argv, { program: "pipeline", valued: ["--config", "--runtime-dir", "--agent-pid"] }, fail);
  const configPath = flags.values.get("--config");
  if (configPath === undefined) fail("pipeline: --config FILE is required");
  const agentPid = integerFlag(flags, "--agent-pid", { program: "pipeline", min: 1, max: 4194304 }, fail) ?? null;
  return { help: false, configPath, runtimeDir: flags.values.get("--runtime-dir") ?? null, agentPid };
}
