/** Small, strict argument parsing shared by the subcommands: unknown flags are errors. */

import { UsageError } from "./usageError.js";

export { UsageError, isUsageError } from "./usageError.js";

export interface ParsedArgs {
  flags: Map<string, string | true>;
  positional: string[];
  /** Everything after a bare `--`, untouched. */
  rest: string[] | null;
}

/**
 * `valued` lists flags that take a value (`--x V` or `--x=V`); `boolean` lists switches.
 * Anything else starting with `--` is a UsageError naming it.
 */
export function parseArgs(args: string[], valued: string[], boolean: string[]): ParsedArgs {
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === "--") return { flags, positional, rest: args.slice(i + 1) };
    if (!a.startsWith("--")) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const name = eq === -1 ? a.slice(2) : a.slice(2, eq);
    if (valued.includes(name)) {
      const value = eq === -1 ? args[++i] : a.slice(eq + 1);
      if (value === undefined || value === "") throw new UsageError(`--${name} needs a value`);
      flags.set(name, value);
    } else if (boolean.includes(name) && eq === -1) {
      flags.set(name, true);
    } else {
      throw new UsageError(`unknown option --${name}`);
    }
  }
  return { flags, positional, rest: null };
}

export function numberFlag(p: ParsedArgs, name: string, opts: { min: number; max?: number; integer?: boolean }): number | undefined {
  const v = p.flags.get(name);
  if (v === undefined) return undefined;
  const n = typeof v === "string" ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < opts.min || (opts.max !== undefined && n > opts.max) || (opts.integer && !Number.isInteger(n))) {
    const range = opts.max === undefined ? `>= ${opts.min}` : `${opts.min}..${opts.max}`;
    throw new UsageError(`--${name}: must be ${opts.integer ? "an integer" : "a number"} ${range}, got ${JSON.stringify(v)}`);
  }
  return n;
}

export function stringFlag(p: ParsedArgs, name: string): string | undefined {
  const v = p.flags.get(name);
  return typeof v === "string" ? v : undefined;
}
