/**
 * The one logger factory of every agent process: pino JSON lines on stderr (stdout stays for
 * command output), `err` fields serialised with their stack. The level is the config's
 * agent.logLevel: a process with --config applies it itself (setLogLevel); `cage run` also hands
 * it to every child in LOG_LEVEL_ENV, so a child without a config (cpu, xentrace) honours it too.
 */
import { pino, type Logger, type Level } from "pino";

export type LogLevel = Level;

/** Set by `cage run` for its children from agent.logLevel. */
export const LOG_LEVEL_ENV = "OFFLOADCAGE_LOG_LEVEL";

const LEVELS: readonly string[] = ["trace", "debug", "info", "warn", "error", "fatal"];

/** $OFFLOADCAGE_LOG_LEVEL when set, else "info"; throws naming the variable on a bad value. */
export function logLevelFromEnv(env: NodeJS.ProcessEnv = process.env): LogLevel {
  const raw = env[LOG_LEVEL_ENV];
  if (raw === undefined || raw === "") return "info";
  if (!LEVELS.includes(raw)) throw new Error(`${LOG_LEVEL_ENV} must be one of ${LEVELS.join(", ")}, got ${JSON.stringify(raw)}`);
  return raw as LogLevel;
}

/** @param file append to this file instead of stderr (`cage run --top`: the screen is the top view's). */
export function createLogger(name: string, level: LogLevel = logLevelFromEnv(), file?: string): Logger {
  return pino(
    { name, level, serializers: { err: pino.stdSerializers.err } },
    // Synchronous: a process that exits right after logging (a failed start) loses no line.
    pino.destination(file === undefined ? { dest: 2, sync: true } : { dest: file, sync: true, append: true, mkdir: false }),
  );
}

/** Applies the config's agent.logLevel to a logger made before the config was loaded. */
export function setLogLevel(log: Logger, level: LogLevel): void {
  log.level = level;
}
