/** Command line of the memory collector process (pure: parsing and checks only). */

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

const FLAGS = ["--config", "--endpoint", "--sample-ms"] as const;
type Flag = (typeof FLAGS)[number];

export function parseMemoryCollectorArgs(argv: readonly string[]): MemoryCollectorArgs {
  const values = new Map<Flag, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (!(FLAGS as readonly string[]).includes(name)) {
      throw new MemoryCollectorArgsError(`collector-memory: unknown argument ${JSON.stringify(arg)}`);
    }
    const flag = name as Flag;
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith("--")) throw new MemoryCollectorArgsError(`collector-memory: ${flag} needs a value`);
      i++;
    }
    if (value === "") throw new MemoryCollectorArgsError(`collector-memory: ${flag} must not be empty`);
    if (values.has(flag)) throw new MemoryCollectorArgsError(`collector-memory: ${flag} given twice`);
    values.set(flag, value);
  }
  const configPath = values.get("--config");
  if (configPath === undefined) throw new MemoryCollectorArgsError("collector-memory: --config FILE is required");
  const endpoint = values.get("--endpoint");
  if (endpoint === undefined) throw new MemoryCollectorArgsError("collector-memory: --endpoint is required");
  if (!/^(ipc:\/\/\/.+|tcp:\/\/.+:[0-9]+)$/.test(endpoint)) {
    throw new MemoryCollectorArgsError(`collector-memory: --endpoint must be ipc:///absolute/path or tcp://HOST:PORT, got ${JSON.stringify(endpoint)}`);
  }
  const sampleText = values.get("--sample-ms");
  let sampleMs: number | null = null;
  if (sampleText !== undefined) {
    sampleMs = Number(sampleText);
    if (!/^[0-9]+$/.test(sampleText) || sampleMs < 10 || sampleMs > 3_600_000) {
      throw new MemoryCollectorArgsError(`collector-memory: --sample-ms must be an integer from 10 to 3600000, got ${JSON.stringify(sampleText)}`);
    }
  }
  return { configPath, endpoint, sampleMs };
}
