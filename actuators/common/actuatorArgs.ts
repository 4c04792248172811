/**
 * The command line every actuator shares (pure):
 *   cage actuator cpu|limiter|... --config FILE [--dry-run] [--endpoint AGG_EP] [--publish EP]
 * --endpoint: the pipeline's aggregates (default: the runtime dir's aggregates.sock);
 * --publish: where to bind act.decision/act.state (default: the runtime dir's actuator-NAME.sock).
 */
import { readFlags } from "../../runtime/processFlags.js";

export interface ActuatorArgs {
  configPath: string;
  dryRun: boolean;
  endpoint: string | null;
  publish: string | null;
}

export class ActuatorArgsError extends Error {
  override readonly name = "ActuatorArgsError";
}

export function actuatorUsage(name: string): string {
  return `usage: cage actuator ${name} --config FILE [--dry-run] [--endpoint AGG_EP] [--publish EP]`;
}

const ENDPOINT = /^(ipc:\/\/\/.+|tcp:\/\/.+:[0-9]+|inproc:\/\/.+)$/;

export function parseActuatorArgs(name: string, argv: readonly string[]): { help: true } | ({ help: false } & ActuatorArgs) {
  if (argv.some((a) => a === "--help" || a === "-h")) return { help: true };
  const program = `cage actuator ${name}`;
  const fail = (message: string): never => {
    throw new ActuatorArgsError(message);
  };
  const flags = readFlags(argv, { program, valued: ["--config", "--endpoint", "--publish"], switches: ["--dry-run"] }, fail);
  const configPath = flags.values.get("--config");
  if (configPath === undefined) fail(`${program}: --config FILE is required`);
  for (const f of ["--endpoint", "--publish"]) {
    const v = flags.values.get(f);
    if (v !== undefined && !ENDPOINT.test(v)) fail(`${program}: ${f} must be ipc:///absolute/path or tcp://HOST:PORT, got ${JSON.stringify(v)}`);
  }
  return { help: false, configPath: configPath as string, dryRun: flags.switches.has("--dry-run"), endpoint: flags.values.get("--endpoint") ?? null, publish: flags.values.get("--publish") ?? null };
}
