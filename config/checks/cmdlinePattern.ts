/**
 * `cmdline` matcher patterns run with V8's linear-time regular expression engine (the `l` flag),
 * so no pattern can stall the resolver however long a command line is: matching time grows with
 * the length of the text times the size of the pattern, never exponentially. That engine comes
 * with Node itself (no native build, no new dependency) and refuses what it cannot run in linear
 * time: backreferences and lookaround. The length bound keeps the pattern-size factor small.
 */
import { setFlagsFromString } from "node:v8";

/** Longest `cmdline` pattern accepted, in characters. */
export const CMDLINE_PATTERN_MAX_CHARS = 512;

/** V8's flag for the linear-time engine (not in the ECMAScript standard, hence a named constant). */
const LINEAR_FLAG = "l";

let engineEnabled = false;

function enableLinearEngine(): void {
  if (engineEnabled) return;
  // The `l` flag is behind this V8 flag in Node 20; setting it at run time takes effect for later compiles.
  setFlagsFromString("--enable-experimental-regexp-engine");
  engineEnabled = true;
}

/** Why `pattern` is not an acceptable cmdline pattern, or null when it is. */
export function cmdlinePatternProblem(pattern: string): string | null {
  if (pattern.length > CMDLINE_PATTERN_MAX_CHARS) return `is ${pattern.length} characters; a cmdline pattern may have at most ${CMDLINE_PATTERN_MAX_CHARS}`;
  try {
    new RegExp(pattern);
  } catch (err) {
    return `not a valid regular expression: ${(err as Error).message}`;
  }
  try {
    compileLinear(pattern);
  } catch {
    return "cannot run in linear time (backreferences and lookaround are not allowed): the resolver tests it against every command line";
  }
  return null;
}

function compileLinear(pattern: string): RegExp {
  enableLinearEngine();
  return new RegExp(pattern, LINEAR_FLAG);
}

/** Compiles a cmdline pattern for matching; throws with the reason when it is not acceptable. */
export function compileCmdlinePattern(pattern: string): RegExp {
  const problem = cmdlinePatternProblem(pattern);
  if (problem !== null) throw new Error(`cmdline pattern ${JSON.stringify(pattern.slice(0, 80))}: ${problem}`);
  return compileLinear(pattern);
}
