/**
 * What every agent process entry (collectors, pipeline) does the same way: load the config or
 * print every problem and exit 2, bind its publisher in a private directory, wait for a stop
 * signal, and turn main()'s result into the exit code.
 */
import { existsSync, mkdirSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname } from "node:path";
import type { AgentConfig } from "../config/cageConfig.js";
import { loadConfigFile } from "../config/loadConfig.js";
import { formatConfigProblem, isConfigError } from "../config/configError.js";
import type { Logger } from "pino";
import { MessagePublisher } from "../protocol/messageBus.js";
import { isHelpRequested } from "./usageError.js";

/** The loaded config, or null after printing each problem as `FILE:LINE: path: message`. */
export function loadConfigOrReport(path: string, err: NodeJS.WritableStream = process.stderr): AgentConfig | null {
  try {
    return loadConfigFile(path);
  } catch (e) {
    if (!isConfigError(e)) throw e;
    for (const p of e.problems) err.write(`${formatConfigProblem(path, p)}\n`);
    return null;
  }
}

/** Binds `publisher`, creating a missing ipc:// socket directory privately (never re-moding one). */
export async function bindPublisher(publisher: MessagePublisher, endpoint: string): Promise<void> {
  if (endpoint.startsWith("ipc://")) {
    const dir = dirname(endpoint.slice("ipc://".length));
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  await publisher.bind(endpoint);
}

/** Parsed arguments, or null after printing the entry's usage error and its usage line (exit 2). */
export function argsOrReport<T>(parse: () => T, isUsageError: (err: unknown) => boolean, usage: string): T | null {
  try {
    return parse();
  } catch (err) {
    if (!isUsageError(err)) throw err;
    process.stderr.write(`${(err as Error).message}\n${usage}\n`);
    return null;
  }
}

/** A publisher bound at `endpoint`, or null after logging why not (the entry then exits 1). */
export async function openPublisher(endpoint: string, log: Logger): Promise<MessagePublisher | null> {
  const publisher = new MessagePublisher();
  try {
    await bindPublisher(publisher, endpoint);
    return publisher;
  } catch (err) {
    log.fatal({ err, endpoint }, "cannot bind the publisher socket");
    log.flush();
    return null;
  }
}

export function waitForStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
}

/** Runs an entry's main and sets the exit code; --help prints the usage (exit 0); an unexpected error is printed with its stack. */
export function runEntry(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (isHelpRequested(err)) {
        process.stdout.write(`${err.usage}\n`);
        process.exitCode = 0;
        return;
      }
      process.stderr.write(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

/**
 * Whether the module at `moduleUrl` (its import.meta.url) is the script node was started with,
 * i.e. run as a process rather than imported by the `cage` CLI.
 */
export function isEntryModule(moduleUrl: string): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}
