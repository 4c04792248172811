/** Command line of the memory collector process (pure: parsing and checks only). */
import { integerFlag, readFlags, requireEndpoint } from "../../runtime/processFlags.js";

export const MEMORY_COLLECTOR_USAGE =
  "usage: collector-memory --config FILE --endpoint ipc://PATH|tcp://HOST:PORT [--sample-ms N]";

export interface MemoryCollectorArgs {
  configPath: string;
  /** Where to bind the PUB socket. */
  endpoint: string;
  /** Overrides agent.memorySampleMs from the config. */
  sampleMs: number | null;
}

/** A bad command line; `message` is exactly what the user sees (before the usage line). */
export class MemoryCollectorArgsError extends Error {
  override readonly name = "MemoryCollectorArgsError";
}

const PROGRAM = "collector-memory";

function fail(message: string): never {
  throw new MemoryCollectorArgsError(message);
}

export function parseMemoryCollectorArgs(argv: readonly string[]): MemoryCollectorArgs {
  const flags = readFlags(argv, { program: PROGRAM, valued: ["--config", "--endpoint", "--sample-ms"] }, fail);
  const configPath = flags.values.get("--config");
  if (configPath === undefined) fail(`${PROGRAM}: --config FILE is required`);
  const endpoint = requireEndpoint(flags, PROGRAM, fail);
  const sampleMs = integerFlag(flags, "--sample-ms", { program: PROGRAM, min: 10, max: 3_600_000 }, fail) ?? null;
  return { configPath, endpoint, sampleMs };
}
