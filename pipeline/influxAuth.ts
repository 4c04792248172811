/**
 * InfluxDB 1.x authentication: the user from agent.influx.username, the password from the file
 * agent.influx.passwordFile (never a literal in the cage file, which is world-readable more
 * often than a credential file, e.g. a systemd LoadCredential= file).
 */
import { readFileSync } from "node:fs";
import type { InfluxSpec } from "../config/cageConfig.js";

export interface InfluxCredentials {
  username: string;
  password: string;
}

/** Reads the password file; null when the spec has no user. Throws naming the file when it cannot. */
export function readInfluxCredentials(spec: Pick<InfluxSpec, "username" | "passwordFile">): InfluxCredentials | null {
  if (spec.username === null && spec.passwordFile === null) return null;
  if (spec.username === null || spec.passwordFile === null) throw new Error("agent.influx: username and passwordFile must be set together");
  let text: string;
  try {
    text = readFileSync(spec.passwordFile, "utf8");
  } catch (err) {
    throw new Error(`agent.influx.passwordFile ${JSON.stringify(spec.passwordFile)}: cannot read it: ${(err as Error).message}`, { cause: err });
  }
  const password = text.replace(/\r?\n$/, "");
  if (password === "") throw new Error(`agent.influx.passwordFile ${JSON.stringify(spec.passwordFile)}: is empty`);
  if (/[\r\n]/.test(password)) throw new Error(`agent.influx.passwordFile ${JSON.stringify(spec.passwordFile)}: must hold one line`);
  return { username: spec.username, password };
}

/**
 * When `err` is InfluxDB refusing who we are (401: unknown user or wrong password; 403: the
 * user may not do this), the sentence that says so and what to check; otherwise null.
 */
export function influxAuthFailure(err: unknown, spec: Pick<InfluxSpec, "username" | "url">): string | null {
  const status = (err as { res?: { statusCode?: number } } | null)?.res?.statusCode;
  if (status === 401) {
    return spec.username === null
      ? `InfluxDB at ${spec.url} requires authentication (HTTP 401): set agent.influx.username and passwordFile`
      : `InfluxDB at ${spec.url} refused user ${JSON.stringify(spec.username)} (HTTP 401): wrong password or unknown user; check agent.influx.username and passwordFile`;
  }
  if (status === 403) {
    return `InfluxDB at ${spec.url} denied user ${JSON.stringify(spec.username ?? "")} (HTTP 403): it lacks a privilege (creating the database and policies needs an admin, writing needs WRITE on the database)`;
  }
  return null;
}
