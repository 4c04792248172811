/**
 * What actuators publish (JSON, encoding 3) on their own PUB socket, so the pipeline can export
 * their state as metrics and write their decisions to history, and operators can audit them:
 *   `act.decision`  one message per change an actuator made (or, in dry-run, would have made)
 *   `act.state`     each actuator's current per-cage state, about once a second
 * docs/protocol.md documents every field; a third-party actuator publishes the same.
 */
import { ProtocolError } from "./wireFormat.js";

/** Values an actuator may report in `act.state`; the pipeline exports each as a metric. */
export const ActuatorValueKeys = [
  /** CPU cap applied to the VM, % of one CPU. */
  "vmCpuCapPct",
  /** Weight / shares applied to the VM. */
  "vmCpuWeight",
  /** The IDS's cap the limiter enforces, % of one CPU. */
  "idsCapPct",
  /** IDS processes the limiter holds stopped right now (SIGSTOP mode). */
  "idsStoppedPids",
  /** Balloon target the actuator last set for the VM, bytes. */
  "vmTargetBytes",
  /** The VM's actual memory as its back end reports it, bytes. */
  "vmActualBytes",
  /** Memory taken from the VM and given to the host, bytes (base − target). */
  "movedBytes",
  /** The host side's (dom0's) target, bytes, where the back end has one. */
  "hostTargetBytes",
  /** 1 when the VM has not reached its target in time and the actuator stopped pushing. */
  "balloonStuck",
  /** Back-end failures (command, socket, file) for this cage since the actuator started; a counter. */
  "backendErrors",
] as const;
export type ActuatorValueKey = (typeof ActuatorValueKeys)[number];

/** `active`: acting on fresh data; `failsafe`: data went stale, fail-safe applied; `dry-run`; `error`: the back end fails. */
export type ActuatorMode = "active" | "failsafe" | "dry-run" | "error";

export interface ActuatorState {
  v: 1;
  /** Actuator name, e.g. `cpu`, `limiter`, `balloon`, or a third party's own. */
  actuator: string;
  cage: string;
  timeMs: number;
  mode: ActuatorMode;
  /** Back end in use, e.g. `cgroup-v1`, `xl-credit2`, `qmp`. */
  backend: string;
  values: Partial<Record<ActuatorValueKey, number>>;
}

export interface ActuatorDecision {
  v: 1;
  actuator: string;
  cage: string;
  timeMs: number;
  /** What was set, e.g. `vm.cpu.cap`, `vm.cpu.weight`, `ids.cap`, `vm.memory.target`. */
  setting: string;
  /** The value before and after (null: none / unlimited). Units: % of one CPU, weight, or bytes. */
  from: number | null;
  to: number | null;
  /** Why, in words (e.g. `ids 35% of cap 50%`, `stale for 2.1 s: fail-safe`). */
  reason: string;
  dryRun: boolean;
  /** Set when applying failed; the decision was not carried out. */
  error?: string;
}

function parseObject(b: Buffer, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(b.toString("utf8"));
  } catch (err) {
    throw new ProtocolError(`frame 2 (${what})`, `not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new ProtocolError(`frame 2 (${what})`, "must be a JSON object");
  const o = parsed as Record<string, unknown>;
  if (o.v !== 1) throw new ProtocolError(`frame 2 (${what}) field v`, `unsupported version ${String(o.v)}`);
  for (const k of ["actuator", "cage"]) {
    if (typeof o[k] !== "string" || o[k] === "") throw new ProtocolError(`frame 2 (${what}) field ${k}`, "must be a non-empty string");
  }
  if (typeof o.timeMs !== "number" || !Number.isFinite(o.timeMs)) throw new ProtocolError(`frame 2 (${what}) field timeMs`, "must be a finite number");
  return o;
}

const MODES: readonly string[] = ["active", "failsafe", "dry-run", "error"];

export function decodeActuatorState(b: Buffer): ActuatorState {
  const o = parseObject(b, "actuator state");
  if (typeof o.mode !== "string" || !MODES.includes(o.mode)) throw new ProtocolError("frame 2 (actuator state) field mode", `must be one of ${MODES.join(", ")}`);
  if (typeof o.backend !== "string") throw new ProtocolError("frame 2 (actuator state) field backend", "must be a string");
  if (typeof o.values !== "object" || o.values === null || Array.isArray(o.values)) throw new ProtocolError("frame 2 (actuator state) field values", "must be an object");
  for (const [k, v] of Object.entries(o.values)) {
    if (typeof v !== "number" || !Number.isFinite(v)) throw new ProtocolError(`frame 2 (actuator state) field values.${k}`, "must be a finite number");
  }
  return o as unknown as ActuatorState;
}

export function decodeActuatorDecision(b: Buffer): ActuatorDecision {
  const o = parseObject(b, "actuator decision");
  if (typeof o.setting !== "string" || o.setting === "") throw new ProtocolError("frame 2 (actuator decision) field setting", "must be a non-empty string");
  for (const k of ["from", "to"]) {
    const v = o[k];
    if (v !== null && (typeof v !== "number" || !Number.isFinite(v))) throw new ProtocolError(`frame 2 (actuator decision) field ${k}`, "must be a finite number or null");
  }
  if (typeof o.reason !== "string") throw new ProtocolError("frame 2 (actuator decision) field reason", "must be a string");
  if (typeof o.dryRun !== "boolean") throw new ProtocolError("frame 2 (actuator decision) field dryRun", "must be a boolean");
  return o as unknown as ActuatorDecision;
}
