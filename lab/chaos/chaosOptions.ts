/**
 * `cage lab chaos` options. Pure: parses argv; lab/chaos/chaosRun.ts does the I/O.
 * Short mode: a few kills for `npm test` (under a minute); long mode: the matrix.
 */
import { commandUsage, parseCommandLine } from "../../runtime/commandLine.js";
import { UsageError } from "../../runtime/usageError.js";

/** Every component the long mode kills, in the order it kills them. */
export const ALL_COMPONENTS = [
  "collector-cpu",
  "collector-memory",
  "collector-pagecache",
  "pipeline",
  "actuator-cpu",
  "actuator-limiter",
  "actuator-balloon",
  "guardian-cpu",
  "guardian-limiter",
  "cage run",
] as const;
export type ChaosComponent = (typeof ALL_COMPONENTS)[number];

export interface ChaosOptions {
  mode: "short" | "long";
  components: ChaosComponent[];
  killsPerComponent: number;
  /** Seconds of each impostor phase (and of the baseline before them); 0 skips the impostors. */
  impostorSeconds: number;
  /** Seconds of malformed aggregates; 0 skips that phase. */
  malformedSeconds: number;
  seed: number;
  jsonPath: string | null;
}

const SHORT_COMPONENTS: ChaosComponent[] = ["actuator-cpu", "actuator-limiter", "cage run"];

export const LAB_CHAOS_COMMAND = {
  program: "cage lab chaos",
  summary: "kill -9 every agent component under load, impostors, malformed aggregates; figures per component (docs/chaos.md).",
  flags: {
    mode: { type: "string", choices: ["short", "long"], required: true, help: "short: a few kills (npm test); long: the whole matrix" },
    kills: { type: "integer", value: "N", min: 1, max: 1000, help: "kills per component (default: short 1, long 20)" },
    only: { type: "string", value: "LIST", help: "comma-separated components to kill (default: short actuator-cpu,actuator-limiter,cage run; long all)" },
    "impostor-seconds": { type: "integer", value: "S", min: 0, max: 3600, help: "seconds per impostor phase, 0 = skip (default: short 0, long 30)" },
    "malformed-seconds": { type: "integer", value: "S", min: 0, max: 3600, help: "seconds of malformed aggregates, 0 = skip (default: short 3, long 60)" },
    seed: { type: "integer", value: "S", min: 0, max: 2 ** 32 - 1, help: "seed of the kill timings (default 20261204)" },
    json: { type: "string", value: "FILE", help: "also write the results as JSON to FILE" },
  },
} as const;

export const LAB_CHAOS_USAGE = commandUsage(LAB_CHAOS_COMMAND);

/** Throws UsageError (or HelpRequested for --help). */
export function parseLabChaosArgs(args: string[]): ChaosOptions {
  const { values } = parseCommandLine(LAB_CHAOS_COMMAND, args);
  const long = values.mode === "long";
  let components: ChaosComponent[] = long ? [...ALL_COMPONENTS] : SHORT_COMPONENTS;
  if (values.only !== undefined) {
    components = [];
    for (const name of values.only.split(",").map((s) => s.trim())) {
      const known = ALL_COMPONENTS.find((c) => c === name);
      if (known === undefined) throw new UsageError(`${LAB_CHAOS_COMMAND.program}: --only: unknown component ${JSON.stringify(name)}; expected ${ALL_COMPONENTS.join(", ")}`, LAB_CHAOS_USAGE);
      components.push(known);
    }
  }
  return {
    mode: long ? "long" : "short",
    components,
    killsPerComponent: values.kills ?? (long ? 20 : 1),
    impostorSeconds: values["impostor-seconds"] ?? (long ? 30 : 0),
    malformedSeconds: values["malformed-seconds"] ?? (long ? 60 : 3),
    seed: values.seed ?? 20261204,
    jsonPath: values.json ?? null,
  };
}
