/** Command-line arguments of the pipeline process (pure: parsing only). */
import { readFlags } from "../cli/processFlags.js";

export const PIPELINE_USAGE = "usage: pipeline --config FILE [--runtime-dir DIR]";

export interface PipelineArgs {
  configPath: string;
  /** Overrides agent.runtimeDir from the config. */
  runtimeDir: string | null;
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
  const flags = readFlags(argv, { program: "pipeline", valued: ["--config", "--runtime-dir"] }, fail);
  const configPath = flags.values.get("--config");
  if (configPath === undefined) fail("pipeline: --config FILE is required");
  return { help: false, configPath, runtimeDir: flags.values.get("--runtime-dir") ?? null };
}
