/**
 * The embedded default: one cage holding the demo VM workload and the demo IDS workload,
 * matched by their command lines. Written in the config file format so the agent's processes
 * load it exactly as they would a user's file.
 */
import { join } from "node:path";
import { DEFAULT_AGENT } from "../../config/defaults.js";

export const DEMO_PROMETHEUS_PORT = 9464;
/** The demo's own state (history spool, sequence state), apart from an installed agent's. */
export const DEMO_STATE_DIR = join(DEFAULT_AGENT.stateDir, "demo");

/** `influxUrl` (`cage run --influx URL`): also write the demo's history to that InfluxDB. */
export function demoConfigDocument(runtimeDir: string, prometheusPort = DEMO_PROMETHEUS_PORT, influxUrl?: string): object {
  return {
    agent: {
      runtimeDir,
      stateDir: DEMO_STATE_DIR,
      prometheus: { host: "127.0.0.1", port: prometheusPort },
      ...(influxUrl !== undefined ? { influx: { url: influxUrl } } : {}),
    },
    cages: [
      {
        name: "demo",
        vm: { kind: "process", match: [{ cmdline: "demoWorkload\\.js --kind vm" }] },
        ids: [{ cmdline: "demoWorkload\\.js --kind ids", uid: 0 }],
        cpu: { cap: 60, idsCap: 25 },
        memory: { base: "512MiB", floor: "128MiB" },
      },
    ],
  };
}
