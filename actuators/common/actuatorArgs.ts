/**
 * The command line every actuator shares (pure):
 *   cage actuator cpu|limiter|balloon --config FILE [--dry-run] [--endpoint AGG_EP] [--publish EP]
 * --endpoint: the pipeline's aggregates (default: the runtime dir's aggregates.sock);
 * --publish: where to bind act.decision/act.state (default: the runtime dir's actuator-NAME.sock).
 */
import { commandUsage, parseCommandLine, type CommandSpec } from "../../runtime/commandLine.js";
import { isHelpRequested } from "../../runtime/usageError.js";

export interface ActuatorArgs {
  configPath: string;
  dryRun: boolean;
  endpoint: string | null;
  publish: string | null;
}

const ENDPOINT_FORMAT = { pattern: /^(ipc:\/\/\/.+|tcp:\/\/.+:[0-9]+|inproc:\/\/.+)$/, description: "ipc:///absolute/path or tcp://HOST:PORT" } as const;

const SUMMARIES: Readonly<Record<string, string>> = {
  cpu: "The cage scheduler: caps each cage's VM at the cage's cap minus what its IDS used.",
  limiter: "The IDS limiter: keeps each cage's IDS under its idsCap.",
  balloon: "The balloon actuator: moves the IDS's memory from the VM to the host.",
};

export function actuatorCommand(name: string) {
  return {
    program: `cage actuator ${name}`,
    summary: SUMMARIES[name] ?? `The ${name} actuator.`,
    flags: {
      config: { type: "string", value: "FILE", required: true, help: "the cage file" },
      "dry-run": { type: "boolean", help: "decide and publish, but change nothing on the host" },
      endpoint: { type: "string", value: "AGG_EP", format: ENDPOINT_FORMAT, help: "the pipeline's aggregates (default: RUNTIME_DIR/aggregates.sock)" },
      publish: { type: "string", value: "EP", format: ENDPOINT_FORMAT, help: `where to bind act.decision/act.state (default: RUNTIME_DIR/actuator-${name}.sock)` },
    },
  } as const satisfies CommandSpec;
}

export function actuatorUsage(name: string): string {
  return commandUsage(actuatorCommand(name));
}

/** Throws runtime/usageError.ts's UsageError on a bad command line. */
export function parseActuatorArgs(name: string, argv: readonly string[]): { help: true } | ({ help: false } & ActuatorArgs) {
  let values;
  try {
    ({ values } = parseCommandLine(actuatorCommand(name), argv));
  } catch (err) {
    if (isHelpRequested(err)) return { help: true };
    throw err;
  }
  return { help: false, configPath: values.config, dryRun: values["dry-run"], endpoint: values.endpoint ?? null, publish: values.publish ?? null };
}
