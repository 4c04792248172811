// Command line of the balloon actuator process (pure: parsing and checks only).

import { readFlags } from "../../cli/processFlags.js";

export const BALLOON_ACTUATOR_USAGE = "usage: cage actuator balloon --config FILE [--dry-run] [--endpoint AGG_EP] [--publish EP]";

export interface BalloonActuatorArgs {
  configPath: string;
  /** --dry-run: decide and log, never touch a VM (also agent.actuators.balloon.dryRun). */
  dryRun: boolean;
  /** The pipeline's aggregates endpoint; undefined = the runtime dir's default. */
  aggregates: string | undefined;
  /** Where to bind act.decision/act.state; undefined = the runtime dir's default. */
  publish: string | undefined;
}

/** A bad command line; `message` is exactly what the user sees (before the usage line). */
export class BalloonActuatorArgsError extends Error {
  override readonly name = "BalloonActuatorArgsError";
}

const PROGRAM = "actuator-balloon";
const ENDPOINT = /^(ipc:\/\/\/.+|tcp:\/\/.+:[0-9]+)$/;

function fail(message: string): never {
  throw new BalloonActuatorArgsError(message);
}

export function parseBalloonActuatorArgs(argv: readonly string[]): BalloonActuatorArgs {
  const flags = readFlags(argv, { program: PROGRAM, valued: ["--config", "--endpoint", "--publish"], switches: ["--dry-run"] }, fail);
  const configPath = flags.values.get("--config");
  if (configPath === undefined) fail(`${PROGRAM}: --config is required`);
  for (const name of ["--endpoint", "--publish"]) {
    const v = flags.values.get(name);
    if (v !== undefined && !ENDPOINT.test(v)) fail(`${PROGRAM}: ${name} must be ipc:///absolute/path or tcp://HOST:PORT, got ${JSON.stringify(v)}`);
  }
  return {
    configPath,
    dryRun: flags.switches.has("--dry-run"),
    aggregates: flags.values.get("--endpoint"),
    publish: flags.values.get("--publish"),
  };
}
