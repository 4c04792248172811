/** Command line of the CPU collector process, validated at the edge. Pure. */

export interface CpuCollectorOptions {
  intervalMs: number;
  endpoint: string;
  mapKeysMax: number | undefined;
}

export const CPU_COLLECTOR_USAGE = "usage: collector-cpu --interval-ms N --endpoint ipc://PATH [--map-keys-max N]";

export class UsageError extends Error {
  override readonly name = "UsageError";
}

export function parseCpuCollectorArgs(argv: readonly string[]): CpuCollectorOptions {
  let intervalMs: number | undefined;
  let endpoint: string | undefined;
  let mapKeysMax: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag !== "--interval-ms" && flag !== "--endpoint" && flag !== "--map-keys-max") {
      throw new UsageError(`collector-cpu: unknown argument ${JSON.stringify(flag)} (${CPU_COLLECTOR_USAGE})`);
    }
    const value = argv[++i];
    if (value === undefined) throw new UsageError(`collector-cpu: ${flag} needs a value (${CPU_COLLECTOR_USAGE})`);
    if (flag === "--interval-ms") intervalMs = parseIntIn(flag, value, 10, 60_000);
    else if (flag === "--map-keys-max") mapKeysMax = parseIntIn(flag, value, 16, 4_194_304);
    else {
      if (!/^(ipc|tcp):\/\/\S+$/.test(value)) {
        throw new UsageError(`collector-cpu: --endpoint must be an ipc:// or tcp:// address, got ${JSON.stringify(value)}`);
      }
      endpoint = value;
    }
  }
  if (intervalMs === undefined) throw new UsageError(`collector-cpu: --interval-ms is required (${CPU_COLLECTOR_USAGE})`);
  if (endpoint === undefined) throw new UsageError(`collector-cpu: --endpoint is required (${CPU_COLLECTOR_USAGE})`);
  return { intervalMs, endpoint, mapKeysMax };
}

function parseIntIn(flag: string, value: string, min: number, max: number): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`collector-cpu: ${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}
