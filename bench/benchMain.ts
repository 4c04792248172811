/**
 * What every bench's entry shares: its command line (`bench NAME`, --json beside its own flags,
 * --help as every command answers it) and running main() when node was started on its file.
 */
import { pathToFileURL } from "node:url";
import type { FlagSpec } from "../runtime/commandLine.js";
import { isHelpRequested, isUsageError } from "../runtime/usageError.js";

/** Every bench prints one JSON document instead of its table with --json. */
const JSON_FLAG = { type: "boolean", help: "one JSON document" } as const;

/** The CommandSpec of bench `name` (for parseCommandLine): --json, then `flags`. */
export function benchCommand<const F extends Readonly<Record<string, FlagSpec>>>(
  name: string,
  summary: string,
  flags: F,
): { readonly program: string; readonly summary: string; readonly flags: { readonly json: typeof JSON_FLAG } & F } {
  return { program: `bench ${name}`, summary, flags: { json: JSON_FLAG, ...flags } };
}

/**
 * Runs `main` on the command line when `moduleUrl` (the bench's import.meta.url) is the file node
 * was started with; imported (by runAll or a test) it does nothing. --help prints the usage on
 * stdout (exit 0), a bad command line its message and the usage (exit 2), any other failure its
 * message after `failurePrefix` (exit 1).
 */
export function runBenchMain(moduleUrl: string, main: (argv: string[]) => Promise<void>, failurePrefix = ""): void {
  const started = process.argv[1];
  if (started === undefined || moduleUrl !== pathToFileURL(started).href) return;
  main(process.argv.slice(2)).catch((err: unknown) => {
    if (isHelpRequested(err)) {
      process.stdout.write(`${err.usage}\n`);
    } else if (isUsageError(err)) {
      process.stderr.write(err.usage !== undefined ? `${err.message}\n${err.usage}\n` : `${err.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`${failurePrefix}${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
  });
}
