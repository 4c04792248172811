/**
 * `cage validate FILE`: checks a cage file and lists every problem as `FILE:LINE: path: message`
 * on `err`. Exit codes: 0 valid, 2 invalid, unreadable or bad usage (the CLI's code for bad input).
 */
import { formatConfigProblem, isConfigError } from "./configError.js";
import { loadConfigFile } from "./loadConfig.js";

export const VALIDATE_USAGE = "usage: cage validate FILE   (checks a cage file, YAML or JSON; exit 0 = valid, 2 = problems)";

export async function runValidate(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  if (args.length === 1 && (args[0] === "-h" || args[0] === "--help")) {
    await write(out, `${VALIDATE_USAGE}\n`);
    return 0;
  }
  const file = args[0];
  if (args.length !== 1 || file === undefined || file === "" || file.startsWith("-")) {
    const why = args.length === 0 ? "missing FILE" : `expected exactly one FILE, got ${args.map((a) => JSON.stringify(a)).join(" ")}`;
    await write(err, `cage validate: ${why}\n${VALIDATE_USAGE}\n`);
    return 2;
  }
  try {
    const n = loadConfigFile(file).cages.length;
    await write(out, `${file}: ok (${n} cage${n === 1 ? "" : "s"})\n`);
    return 0;
  } catch (e) {
    if (!isConfigError(e)) throw e;
    await write(err, e.problems.map((p) => `${formatConfigProblem(file, p)}\n`).join(""));
    return 2;
  }
}

/** Resolves once the stream has taken the text, so a caller that exits next loses nothing. */
function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (e?: Error | null) => (e ? reject(e) : resolve()));
  });
}
