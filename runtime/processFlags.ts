/**
 * The command-line tokenizer shared by the agent's process entries (collectors, pipeline):
 * `--flag VALUE`, `--flag=VALUE` and bare switches, each flag at most once. Pure; every
 * message names the program and the flag, and `fail` throws the caller's own error class.
 */
export interface FlagSpec {
  /** Names the program in messages, e.g. "collector-memory". */
  program: string;
  valued: readonly string[];
  switches?: readonly string[];
}

export interface Flags {
  values: Map<string, string>;
  switches: Set<string>;
}

export function readFlags(argv: readonly string[], spec: FlagSpec, fail: (message: string) => never): Flags {
  const values = new Map<string, string>();
  const switches = new Set<string>();
  const p = spec.program;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (eq < 0 && spec.switches?.includes(name)) {
      switches.add(name);
      continue;
    }
    if (!spec.valued.includes(name)) fail(`${p}: unknown argument ${JSON.stringify(arg)}`);
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith("--")) fail(`${p}: ${name} needs a value`);
      i++;
    }
    if (value === "") fail(`${p}: ${name} must not be empty`);
    if (values.has(name)) fail(`${p}: ${name} given twice`);
    values.set(name, value);
  }
  return { values, switches };
}

/** The `--endpoint` value, which must be ipc:///absolute/path or tcp://HOST:PORT. */
export function requireEndpoint(flags: Flags, program: string, fail: (message: string) => never): string {
  const endpoint = flags.values.get("--endpoint");
  if (endpoint === undefined) fail(`${program}: --endpoint is required`);
  if (!/^(ipc:\/\/\/.+|tcp:\/\/.+:[0-9]+)$/.test(endpoint)) {
    fail(`${program}: --endpoint must be ipc:///absolute/path or tcp://HOST:PORT, got ${JSON.stringify(endpoint)}`);
  }
  return endpoint;
}

/** An optional integer flag within [min, max]; undefined when absent. */
export function integerFlag(flags: Flags, name: string, range: { program: string; min: number; max: number }, fail: (message: string) => never): number | undefined {
  const text = flags.values.get(name);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || n < range.min || n > range.max) {
    fail(`${range.program}: ${name} must be an integer from ${range.min} to ${range.max}, got ${JSON.stringify(text)}`);
  }
  return n;
}
