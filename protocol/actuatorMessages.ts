/**
 * What actuators publish (JSON, encoding 3) on their own PUB socket, so the pipeline can export
 * their state as metrics and write their decisions to history, and operators can audit them:
 *   `act.decision`  one message per change an actuator made (or, in dry-run, would have made)
 *   `act.state`     each actuator's current per-cage state, about once a second
 * docs/protocol.md documents every field; a third-party actuator publishes the same.
 */
import { nullableNumberField, numberField, objectField, parseJsonObject, stringField } from "./jsonFields.js";
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
  /** Aggregates this actuator received and rejected as malformed since it started; a counter. */
  "invalidAggregates",
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

/** The fields both messages share: v, actuator, cage, timeMs. */
function parseCommon(b: Buffer, what: string): Record<string, unknown> {
  const o = parseJsonObject(b, what);
  if (o.v !== 1) throw new ProtocolError(`frame 2 (${what}) field v`, `unsupported version ${String(o.v)}`);
  stringField(o, "actuator", what, true);
  stringField(o, "cage", what, true);
  numberField(o, "timeMs", { min: 0 }, what);
  return o;
}

const MODES: readonly string[] = ["active", "failsafe", "dry-run", "error"];
const VALUE_KEYS: ReadonlySet<string> = new Set(ActuatorValueKeys);

export function decodeActuatorState(b: Buffer): ActuatorState {
  const what = "actuator state";
  const o = parseCommon(b, what);
  if (typeof o.mode !== "string" || !MODES.includes(o.mode)) throw new ProtocolError(`frame 2 (${what}) field mode`, `must be one of ${MODES.join(", ")}`);
  stringField(o, "backend", what, false);
  const values = objectField(o, "values", what);
  for (const k of Object.keys(values)) {
    if (!VALUE_KEYS.has(k)) throw new ProtocolError(`frame 2 (${what}) field values.${k.slice(0, 40)}`, `unknown value; known: ${ActuatorValueKeys.join(", ")}`);
    numberField(values, k, {}, what, `values.${k}`);
  }
  return o as unknown as ActuatorState;
}

export function decodeActuatorDecision(b: Buffer): ActuatorDecision {
  const what = "actuator decision";
  const o = parseCommon(b, what);
  stringField(o, "setting", what, true);
  nullableNumberField(o, "from", {}, what);
  nullableNumberField(o, "to", {}, what);
  stringField(o, "reason", what, false);
  if (typeof o.dryRun !== "boolean") throw new ProtocolError(`frame 2 (${what}) field dryRun`, "must be a boolean");
  if (o.error !== undefined) stringField(o, "error", what, false);
  return o as unknown as ActuatorDecision;
}
