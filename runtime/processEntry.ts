/**
 * What the agent's process entries share besides the runtime (processRuntime.ts): load the
 * config or report every problem (exit 2), and bind a publisher in a private directory.
 */
import { existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { AgentConfig } from "../config/cageConfig.js";
import { loadConfigFile } from "../config/loadConfig.js";
import { formatConfigProblem, isConfigError } from "../config/configError.js";
import type { Logger } from "pino";
import { MessagePublisher } from "../protocol/messageBus.js";
import { LOG_LEVEL_ENV, setLogLevel } from "./logger.js";
import { ExitCode } from "./processRuntime.js";

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

/**
 * For a process's start(): the config with its agent.logLevel applied to `log` (and to the
 * processes it starts), or ExitCode 2 after printing every problem (restarting will not help).
 */
export function loadProcessConfig(path: string, log: Logger): AgentConfig {
  const config = loadConfigOrReport(path);
  if (config === null) throw new ExitCode(2, `${path}: invalid config`);
  setLogLevel(log, config.agent.logLevel);
  // Children this process starts (the actuators' restore guardian) log at the same level.
  process.env[LOG_LEVEL_ENV] = config.agent.logLevel;
  return config;
}

/** Binds `publisher`, creating a missing ipc:// socket directory privately (never re-moding one). */
export async function bindPublisher(publisher: MessagePublisher, endpoint: string): Promise<void> {
  if (endpoint.startsWith("ipc://")) {
    const dir = dirname(endpoint.slice("ipc://".length));
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  await publisher.bind(endpoint);
}

/** A publisher bound at `endpoint`, or null after logging why not (the entry then exits 1). */
export async function openPublisher(endpoint: string, log: Logger): Promise<MessagePublisher | null> {
  const publisher = new MessagePublisher();
  try {
    await bindPublisher(publisher, endpoint);
    return publisher;
  } catch (err) {
    log.fatal({ err, endpoint }, "cannot bind the publisher socket");
    await publisher.close().catch(() => undefined);
    return null;
  }
}
