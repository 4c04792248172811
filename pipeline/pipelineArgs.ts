/** Command-line arguments of the pipeline process (pure: parsing only). */

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

export function parsePipelineArgs(argv: readonly string[]): ParsedPipelineArgs {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") return { help: true };
    const eq = arg.indexOf("=");
    const flag = eq > 0 && arg.startsWith("--") ? arg.slice(0, eq) : arg;
    if (flag !== "--config" && flag !== "--runtime-dir") {
      throw new PipelineArgsError(`pipeline: unknown argument ${JSON.stringify(arg)}`);
    }
    let value: string | undefined;
    if (eq > 0 && arg.startsWith("--")) {
      value = arg.slice(eq + 1);
    } else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith("--")) throw new PipelineArgsError(`pipeline: ${flag} needs a value`);
      i++;
    }
    if (value === "") throw new PipelineArgsError(`pipeline: ${flag} must not be empty`);
    if (values.has(flag)) throw new PipelineArgsError(`pipeline: ${flag} given twice`);
    values.set(flag, value);
  }
  const configPath = values.get("--config");
  if (configPath === undefined) throw new PipelineArgsError("pipeline: --config FILE is required");
  return { help: false, configPath, runtimeDir: values.get("--runtime-dir") ?? null };
}
