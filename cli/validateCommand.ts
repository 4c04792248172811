/**
 * `cage validate FILE [--json]`: checks a cage file and lists every problem as
 * `FILE:LINE: path: message` on `err`, or with --json one object on `out`:
 *   {"file": F, "valid": bool, "cages": N | null, "problems": [{"file", "line" (null if unknown), "path", "message"}]}
 * Exit codes: 0 valid, 2 invalid, unreadable or bad usage (the CLI's code for bad input).
 */
import { commandUsage, parseCommandLine } from "../runtime/commandLine.js";
import { isHelpRequested, isUsageError } from "../runtime/usageError.js";
import { formatConfigProblem, isConfigError } from "../config/configError.js";
import { loadConfigFile } from "../config/loadConfig.js";

export const VALIDATE_COMMAND = {
  program: "cage validate",
  summary: "Check a cage file (YAML or JSON) and list every problem; exit 0 = valid, 2 = problems.",
  positionals: [{ name: "FILE", required: true }],
  flags: {
    json: { type: "boolean", help: "print the result as one JSON object on stdout" },
  },
} as const;

export const VALIDATE_USAGE = commandUsage(VALIDATE_COMMAND);

/** One problem of `cage validate --json`. */
export interface ValidateJsonProblem {
  file: string;
  line: number | null;
  path: string;
  message: string;
}

export interface ValidateJsonResult {
  file: string;
  valid: boolean;
  /** Number of cages when valid, else null. */
  cages: number | null;
  problems: ValidateJsonProblem[];
}

export async function runValidate(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  let file: string;
  let json: boolean;
  try {
    const parsed = parseCommandLine(VALIDATE_COMMAND, args);
    file = parsed.positionals[0] as string;
    json = parsed.values.json;
  } catch (e) {
    if (isHelpRequested(e)) {
      await write(out, `${e.usage}\n`);
      return 0;
    }
    if (!isUsageError(e)) throw e;
    await write(err, `${e.message}\n${VALIDATE_USAGE}\n`);
    return 2;
  }
  try {
    const n = loadConfigFile(file).cages.length;
    if (json) await write(out, `${JSON.stringify({ file, valid: true, cages: n, problems: [] } satisfies ValidateJsonResult)}\n`);
    else await write(out, `${file}: ok (${n} cage${n === 1 ? "" : "s"})\n`);
    return 0;
  } catch (e) {
    if (!isConfigError(e)) throw e;
    if (json) {
      const problems = e.problems.map((p) => ({ file, line: p.line ?? null, path: p.path, message: p.message }));
      await write(out, `${JSON.stringify({ file, valid: false, cages: null, problems } satisfies ValidateJsonResult)}\n`);
    } else {
      await write(err, e.problems.map((p) => `${formatConfigProblem(file, p)}\n`).join(""));
    }
    return 2;
  }
}

/** Resolves once the stream has taken the text, so a caller that exits next loses nothing. */
function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (e?: Error | null) => (e ? reject(e) : resolve()));
  });
}
