/**
 * The one command-line parser: every `cage` command and every agent process describes its
 * flags as a CommandSpec and parses with parseCommandLine (node:util parseArgs, strict). The
 * usage text is generated from the same spec. Pure: it throws, the caller prints and exits.
 *   --help / -h      → HelpRequested carrying the usage (print it on stdout, exit 0)
 *   anything wrong   → UsageError naming the program and the word (exit 2, nothing started)
 */
import { parseArgs } from "node:util";
import { HelpRequested, UsageError } from "./usageError.js";

interface FlagBase {
  /** One line for the usage text. */
  readonly help: string;
}

export interface StringFlagSpec extends FlagBase {
  readonly type: "string";
  /** Placeholder in the usage, e.g. FILE; defaults to the choices joined by "|". */
  readonly value?: string;
  readonly choices?: readonly string[];
  /** A value must match `pattern`; the message says it must be `description`. */
  readonly format?: { readonly pattern: RegExp; readonly description: string };
  readonly required?: boolean;
}

export interface IntegerFlagSpec extends FlagBase {
  readonly type: "integer";
  readonly value: string;
  readonly min: number;
  readonly max: number;
  readonly required?: boolean;
}

export interface NumberFlagSpec extends FlagBase {
  readonly type: "number";
  readonly value: string;
  readonly min: number;
  readonly max?: number;
  readonly required?: boolean;
}

export interface BooleanFlagSpec extends FlagBase {
  readonly type: "boolean";
}

/** A string flag that may be given more than once; its values in order. */
export interface RepeatedFlagSpec extends FlagBase {
  readonly type: "repeated";
  readonly value: string;
}

export type FlagSpec = StringFlagSpec | IntegerFlagSpec | NumberFlagSpec | BooleanFlagSpec | RepeatedFlagSpec;

export interface PositionalSpec {
  /** Placeholder in the usage and in "is missing" messages, e.g. FILE. */
  readonly name: string;
  readonly required?: boolean;
}

export interface CommandSpec {
  /** Names the command in the usage and in every message, e.g. "cage run" or "collector-memory". */
  readonly program: string;
  /** What the command does, one line. */
  readonly summary: string;
  /** Keyed by the long name without dashes. `help` is reserved (every command answers it). */
  readonly flags: Readonly<Record<string, FlagSpec>>;
  readonly positionals?: readonly PositionalSpec[];
  /** Placeholder of what may follow a bare `--` (e.g. "COMMAND [ARGS...]"); absent: words after `--` are positionals. */
  readonly rest?: string;
  /** Lines printed after the flag list. */
  readonly notes?: readonly string[];
}

type Present<S, T> = S extends { readonly required: true } ? T : T | undefined;

export type FlagValue<S extends FlagSpec> = S extends BooleanFlagSpec
  ? boolean
  : S extends RepeatedFlagSpec
    ? string[]
    : S extends IntegerFlagSpec | NumberFlagSpec
      ? Present<S, number>
      : S extends { readonly choices: readonly (infer C)[] }
        ? Present<S, C>
        : Present<S, string>;

export interface CommandLine<C extends CommandSpec> {
  values: { -readonly [K in keyof C["flags"]]: FlagValue<C["flags"][K]> };
  /** The words that are not flags, in order (before `--` when the spec has a rest). */
  positionals: string[];
  /** The words after a bare `--` when the spec takes a rest; null when there was no `--`. */
  rest: string[] | null;
}

/** The ZeroMQ endpoints the agent's processes bind and connect: one format for every --endpoint. */
export const ENDPOINT_FORMAT = { pattern: /^(ipc:\/\/\/.+|tcp:\/\/.+:[0-9]+)$/, description: "ipc:///absolute/path or tcp://HOST:PORT" } as const;

const HELP_LINE = "print this help and exit";

/** The usage text of `spec`: the synopsis, the summary, one line per flag, the notes. */
export function commandUsage(spec: CommandSpec): string {
  const words: string[] = [`usage: ${spec.program}`];
  for (const p of spec.positionals ?? []) words.push(p.required ? p.name : `[${p.name}]`);
  const rows: [string, string][] = [];
  for (const [name, flag] of Object.entries(spec.flags)) {
    const word = flag.type === "boolean" ? `--${name}` : `--${name} ${placeholder(flag)}`;
    const required = flag.type !== "boolean" && flag.type !== "repeated" && flag.required === true;
    words.push(required ? word : flag.type === "repeated" ? `[${word}]...` : `[${word}]`);
    rows.push([word, flag.help]);
  }
  if (spec.rest !== undefined) words.push(`[-- ${spec.rest}]`);
  rows.push(["-h, --help", HELP_LINE]);
  const width = Math.max(...rows.map(([w]) => w.length)) + 2;
  const lines = [words.join(" "), spec.summary, "", ...rows.map(([w, h]) => `  ${w.padEnd(width)}${h}`)];
  if (spec.notes !== undefined && spec.notes.length > 0) lines.push("", ...spec.notes);
  return lines.join("\n");
}

function placeholder(flag: Exclude<FlagSpec, BooleanFlagSpec>): string {
  if (flag.type === "string") return flag.value ?? flag.choices?.join("|") ?? "VALUE";
  return flag.value;
}

/** "a", "a or b", "a, b or c". */
function alternatives(words: readonly string[]): string {
  return words.length <= 1 ? (words[0] ?? "") : `${words.slice(0, -1).join(", ")} or ${words[words.length - 1]}`;
}

/**
 * Parses `argv` against `spec`. Throws HelpRequested for --help/-h (anywhere before `--`, even
 * beside mistakes), else a UsageError naming the first bad word; the error carries the usage.
 */
export function parseCommandLine<C extends CommandSpec>(spec: C, argv: readonly string[]): CommandLine<C> {
  if (Object.hasOwn(spec.flags, "help")) throw new Error(`${spec.program}: the flag name "help" is reserved`);
  const usage = commandUsage(spec);
  const fail = (message: string): never => {
    throw new UsageError(`${spec.program}: ${message}`, usage);
  };
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> = { help: { type: "boolean", short: "h" } };
  for (const [name, flag] of Object.entries(spec.flags)) {
    options[name] = { type: flag.type === "boolean" ? "boolean" : "string", ...(flag.type === "repeated" ? { multiple: true } : {}) };
  }
  const args = [...argv];
  // A lenient pass first: its tokens let every message name the exact word; the strict pass below then cannot fail.
  const { tokens } = parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true });
  if (tokens.some((t) => t.kind === "option" && t.name === "help")) throw new HelpRequested(usage);

  const seen = new Set<string>();
  const positionals: string[] = [];
  let rest: string[] | null = null;
  for (const t of tokens) {
    if (t.kind === "option-terminator") {
      if (spec.rest !== undefined) {
        rest = args.slice(t.index + 1);
        break;
      }
      continue;
    }
    if (t.kind === "positional") {
      positionals.push(t.value);
      continue;
    }
    const flag = spec.flags[t.name];
    if (flag === undefined) return fail(`unknown option ${JSON.stringify(t.rawName)}`);
    const name = `--${t.name}`;
    if (flag.type === "boolean") {
      if (t.value !== undefined) fail(`${name} takes no value`);
    } else {
      // Without `=`, a value that looks like a flag is the flag forgotten after it, as node's strict mode also holds.
      if (t.value === undefined || (!t.inlineValue && t.value.length > 1 && t.value.startsWith("-"))) fail(`${name} needs a value`);
      if (t.value === "") fail(`${name} must not be empty`);
      if (flag.type !== "repeated" && seen.has(t.name)) fail(`${name} given twice`);
    }
    seen.add(t.name);
  }
  const allowed = spec.positionals ?? [];
  if (positionals.length > allowed.length) fail(`unexpected argument ${JSON.stringify(positionals[allowed.length])}`);
  const missing = allowed.slice(positionals.length).find((p) => p.required === true);
  if (missing !== undefined) fail(`${missing.name} is missing`);

  let strict;
  try {
    strict = parseArgs({ args: rest === null ? args : args.slice(0, args.length - rest.length - 1), options, strict: true, allowPositionals: true });
  } catch (err) {
    return fail((err as Error).message);
  }
  const raw = strict.values as Record<string, string | boolean | string[] | undefined>;
  const values: Record<string, unknown> = {};
  for (const [key, flag] of Object.entries(spec.flags)) {
    values[key] = flagValue(`--${key}`, flag, raw[key], fail);
  }
  return { values: values as CommandLine<C>["values"], positionals, rest };
}

function flagValue(name: string, flag: FlagSpec, raw: string | boolean | string[] | undefined, fail: (message: string) => never): unknown {
  switch (flag.type) {
    case "boolean":
      return raw === true;
    case "repeated":
      return Array.isArray(raw) ? raw : [];
    default:
      break;
  }
  if (typeof raw !== "string") {
    if (flag.required === true) fail(`${name} ${placeholder(flag)} is required`);
    return undefined;
  }
  if (flag.type === "string") {
    if (flag.choices !== undefined && !flag.choices.includes(raw)) fail(`${name} must be ${alternatives(flag.choices)}, got ${JSON.stringify(raw)}`);
    if (flag.format !== undefined && !flag.format.pattern.test(raw)) fail(`${name} must be ${flag.format.description}, got ${JSON.stringify(raw)}`);
    return raw;
  }
  if (flag.type === "integer") {
    const n = /^-?[0-9]+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n) || n < flag.min || n > flag.max) fail(`${name} must be an integer from ${flag.min} to ${flag.max}, got ${JSON.stringify(raw)}`);
    return n;
  }
  const n = raw.trim() === "" ? NaN : Number(raw);
  if (!Number.isFinite(n) || n < flag.min || (flag.max !== undefined && n > flag.max)) {
    const range = flag.max === undefined ? `>= ${flag.min}` : `from ${flag.min} to ${flag.max}`;
    fail(`${name} must be a number ${range}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

/**
 * What a command does with a thrown HelpRequested or UsageError: the usage on `out` (exit 0),
 * or the message and the usage on `err` (exit 2). Any other error is not ours: rethrown.
 */
export function commandLineExitCode(thrown: unknown, out: NodeJS.WritableStream, err: NodeJS.WritableStream, fallbackUsage?: string): number {
  if (thrown instanceof HelpRequested) {
    out.write(`${thrown.usage}\n`);
    return 0;
  }
  if (thrown instanceof UsageError) {
    const usage = thrown.usage ?? fallbackUsage;
    err.write(`${thrown.message}\n${usage === undefined ? "" : `${usage}\n`}`);
    return 2;
  }
  throw thrown;
}
