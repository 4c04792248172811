/**
 * Who is exporting: the host name every series and point carries (agent.host, default the
 * machine's hostname) and an instance id that tells two agents on one host apart.
 *
 * The instance id is a UUID v5 of the host name and the runtime directory, so it is stable per
 * agent installation: a restarted pipeline (or agent) keeps its series in OTLP back ends instead
 * of starting new ones, and two agents on one host need two runtime directories anyway.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { HOST_NAME_PATTERN } from "../config/configSchema.js";

export interface AgentIdentity {
  /** host.name, the InfluxDB host tag. */
  host: string;
  /** service.instance.id. */
  instanceId: string;
  /** service.name. */
  serviceName: string;
  /** service.version, from package.json. */
  serviceVersion: string;
  /** Why the host name is not the machine's own (its hostname is no host name), for a warning; null when it is. */
  hostWarning: string | null;
}

export const SERVICE_NAME = "offloadcage";

/** The namespace the OpenTelemetry semantic conventions give for generated service.instance.id values. */
const INSTANCE_ID_NAMESPACE = "4d63009a-8d0f-11ee-aad7-4c796ed8e320";

/** RFC 9562 UUID version 5 (SHA-1 of namespace and name). */
export function uuidV5(namespace: string, name: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ""), "hex");
  if (ns.length !== 16) throw new Error(`uuid v5: namespace ${JSON.stringify(namespace)} is not a UUID`);
  const bytes = createHash("sha1").update(ns).update(name, "utf8").digest().subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

let packageVersion: string | null = null;

/** The agent's version from package.json (read once). */
export function agentVersion(): string {
  if (packageVersion === null) {
    // Compiled to dist/pipeline/: package.json is two levels up.
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
    if (typeof pkg.version !== "string" || pkg.version === "") throw new Error("package.json has no version");
    packageVersion = pkg.version;
  }
  return packageVersion;
}

/**
 * The identity for `configuredHost` (agent.host; null: the machine's hostname) and the agent's
 * runtime directory. Throws when the machine's hostname is not a valid host name (agent.host
 * itself was checked by the config schema).
 */
export function agentIdentity(configuredHost: string | null, runtimeDir: string, machineHostname: () => string = hostname): AgentIdentity {
  let host = configuredHost;
  let hostWarning: string | null = null;
  if (host === null) {
    const machine = machineHostname();
    host = machine;
    if (!HOST_NAME_PATTERN.test(machine)) {
      // An unset or odd hostname ("(none)" on a bare init) must not stop the agent: data are labelled with a sane stand-in.
      host = hostNameFrom(machine);
      hostWarning = `agent.host is not set and the machine's hostname ${JSON.stringify(machine)} is not a valid host name; using ${JSON.stringify(host)}: set agent.host in the cage file`;
    }
  }
  return { host, instanceId: uuidV5(INSTANCE_ID_NAMESPACE, `${host}\n${runtimeDir}`), serviceName: SERVICE_NAME, serviceVersion: agentVersion(), hostWarning };
}

/** A host name made from an invalid one: lower case, runs of other characters as '-', "localhost" when nothing is left. */
export function hostNameFrom(name: string): string {
  const labels = name
    .toLowerCase()
    .split(".")
    .map((l) => l.replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 63))
    .filter((l) => l !== "");
  const candidate = labels.join(".").slice(0, 253);
  return HOST_NAME_PATTERN.test(candidate) ? candidate : "localhost";
}
