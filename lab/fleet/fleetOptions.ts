/**
 * `cage lab fleet` options. Pure: parses argv; lab/fleet/fleetRun.ts does the I/O.
 */
import { commandUsage, parseCommandLine } from "../../runtime/commandLine.js";

export interface FleetOptions {
  hosts: number;
  cagesPerHost: number;
  /** Seconds of the measured span (points counted, alert awaited within it). */
  durationSeconds: number;
  /** The shared CPU collector's window, which is every host's agent.cpuIntervalMs. */
  windowMs: number;
  /** Every alert's `for:` in the lab's copy of the rules (the real 1m–5m would make the lab long). */
  alertForSeconds: number;
  /** Seconds influxd is down (SIGKILL, then restarted on the same data) early in the span; 0: no outage. */
  influxOutageSeconds: number;
  jsonPath: string | null;
}

export const LAB_FLEET_COMMAND = {
  program: "cage lab fleet",
  summary:
    "N simulated hosts (one pipeline and memory collector each, sharing one eBPF CPU collector) into one real Prometheus and one real influxd; injects one overrun and checks series, points and the alert (docs/lab-fleet.md).",
  flags: {
    hosts: { type: "integer", value: "N", min: 1, max: 50, required: true, help: "simulated hosts" },
    cages: { type: "integer", value: "M", min: 1, max: 200, required: true, help: "cages per host (one sleeping process each)" },
    duration: { type: "integer", value: "S", min: 20, max: 3600, help: "seconds of the measured span (default 60)" },
    "window-ms": { type: "integer", value: "MS", min: 100, max: 10_000, help: "CPU window, every host's agent.cpuIntervalMs (default 1000)" },
    "alert-for": { type: "integer", value: "S", min: 2, max: 600, help: "the `for:` of every alert in the lab's copy of the rules, seconds (default 10)" },
    "influx-outage": { type: "integer", value: "S", min: 0, max: 600, help: "seconds influxd is killed for early in the span, 0 = none (default 10)" },
    json: { type: "string", value: "FILE", help: "also write the results as JSON to FILE" },
  },
} as const;

export const LAB_FLEET_USAGE = commandUsage(LAB_FLEET_COMMAND);

/** Throws UsageError (or HelpRequested for --help). */
export function parseLabFleetArgs(args: readonly string[]): FleetOptions {
  const { values } = parseCommandLine(LAB_FLEET_COMMAND, args);
  return {
    hosts: values.hosts,
    cagesPerHost: values.cages,
    durationSeconds: values.duration ?? 60,
    windowMs: values["window-ms"] ?? 1000,
    alertForSeconds: values["alert-for"] ?? 10,
    influxOutageSeconds: values["influx-outage"] ?? 10,
    jsonPath: values.json ?? null,
  };
}
