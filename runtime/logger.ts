/** One way to make a logger: pino JSON lines on stderr, so stdout stays for command output. */
import { pino, type Logger, type Level } from "pino";

export function createLogger(name: string, level: Level = "info"): Logger {
  return pino({ name, level }, pino.destination({ dest: 2, sync: true }));
}
