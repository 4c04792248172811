/**
 * Command lines of `cage run` (the agent on a cage file) and `cage demo` (the agent on the
 * embedded demo cage, with its workloads). Pure; cli/runCommand.ts does the starting.
 */
import { commandUsage, parseCommandLine } from "../runtime/commandLine.js";
import { DEMO_PROMETHEUS_PORT } from "./demo/demoConfig.js";

/** Where `cage run` looks for the cage file when no --config is given. */
export const DEFAULT_CONFIG_PATH = "/etc/offloadcage/cages.yaml";

export const RUN_COMMAND = {
  program: "cage run",
  summary: "Start the collectors, the pipeline and the configured actuators for a cage file, supervised.",
  flags: {
    config: { type: "string", value: "FILE", help: `the cage file (default ${DEFAULT_CONFIG_PATH})` },
    top: { type: "boolean", help: "show the live cage view" },
    duration: { type: "number", value: "SECONDS", min: 1, help: "stop after this long (default: until Ctrl-C)" },
  },
} as const;

export const DEMO_COMMAND = {
  program: "cage demo",
  summary: "Start a demo VM workload and a demo IDS workload in one cage, the agent, and the live view (npm start).",
  flags: {
    "no-top": { type: "boolean", help: "do not show the live cage view" },
    duration: { type: "number", value: "SECONDS", min: 1, help: "stop after this long (default: until Ctrl-C)" },
    "prometheus-port": { type: "integer", value: "N", min: 0, max: 65535, help: `the metrics port (default ${DEMO_PROMETHEUS_PORT})` },
    influx: { type: "string", value: "URL", help: "also write the history to this InfluxDB (docs/grafana.md)" },
  },
} as const;

export const RUN_USAGE = commandUsage(RUN_COMMAND);
export const DEMO_USAGE = commandUsage(DEMO_COMMAND);

export interface RunOptions {
  /** The cage file; null: the embedded demo. */
  configPath: string | null;
  /** True when --config was not given and configPath is DEFAULT_CONFIG_PATH. */
  defaultConfig: boolean;
  top: boolean;
  durationS: number | undefined;
  /** Demo only: the Prometheus port of the demo config. */
  prometheusPort: number;
  /** Demo only: write the history to this InfluxDB. */
  influxUrl: string | undefined;
}

/** Throws runtime/usageError.ts's UsageError, or HelpRequested for --help. */
export function parseRunArgs(args: readonly string[]): RunOptions {
  const { values } = parseCommandLine(RUN_COMMAND, args);
  return {
    configPath: values.config ?? DEFAULT_CONFIG_PATH,
    defaultConfig: values.config === undefined,
    top: values.top,
    durationS: values.duration,
    prometheusPort: DEMO_PROMETHEUS_PORT,
    influxUrl: undefined,
  };
}

/** Throws runtime/usageError.ts's UsageError, or HelpRequested for --help. */
export function parseDemoArgs(args: readonly string[]): RunOptions {
  const { values } = parseCommandLine(DEMO_COMMAND, args);
  return {
    configPath: null,
    defaultConfig: false,
    top: !values["no-top"],
    durationS: values.duration,
    prometheusPort: values["prometheus-port"] ?? DEMO_PROMETHEUS_PORT,
    influxUrl: values.influx,
  };
}
