/**
 * The cages' members as the pipeline last resolved them: the `agg.members` payload (JSON,
 * encoding 3), published after every resolution while someone subscribes to it. The memory
 * collector run by `cage run` takes its membership from here instead of scanning /proc itself,
 * so the agent scans /proc once per resolveMs, not twice. docs/protocol.md documents the fields.
 */
import { isPlainObject, numberField, objectField, parseJsonObject, pidsField, startTimesField, stringField } from "./jsonFields.js";
import { encodeJson } from "./cageAggregate.js";
import { ProtocolError } from "./wireFormat.js";

/** The processes of one role of a cage: startTimes[i] is the start time of pids[i]. */
export interface RoleMembers {
  pids: number[];
  startTimes: number[];
}

export interface CageMembersEntry {
  cage: string;
  vm: RoleMembers;
  ids: RoleMembers;
}

export interface CageMembersMessage {
  /** Schema version; equals PROTOCOL_VERSION. */
  v: 1;
  /** Wall clock when the membership was resolved, ms since the Unix epoch. */
  timeMs: number;
  /** One per configured cage, in the cage file's order. */
  cages: CageMembersEntry[];
}

export function encodeCageMembers(message: CageMembersMessage): Buffer {
  return encodeJson(message);
}

const WHAT = "cage members";

/**
 * Decodes and checks an `agg.members` message. Unlike `agg.window` it is taken whole or not at
 * all: a receiver that dropped one bad cage would see that cage's processes exit.
 */
export function decodeCageMembers(b: Buffer): CageMembersMessage {
  const o = parseJsonObject(b, WHAT);
  if (o.v !== 1) throw new ProtocolError(`frame 2 (${WHAT}) field v`, `unsupported members version ${String(o.v)}`);
  const timeMs = numberField(o, "timeMs", { min: 0 }, WHAT);
  const list = o.cages;
  if (!Array.isArray(list)) throw new ProtocolError(`frame 2 (${WHAT}) field cages`, "must be an array");
  const cages: CageMembersEntry[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < list.length; i++) {
    const item: unknown = list[i];
    const path = `cages[${i}]`;
    if (!isPlainObject(item)) throw new ProtocolError(`frame 2 (${WHAT}) field ${path}`, "must be a JSON object");
    const cage = stringField(item, "cage", WHAT, true, `${path}.cage`);
    if (seen.has(cage)) throw new ProtocolError(`frame 2 (${WHAT}) field ${path}.cage`, `cage ${JSON.stringify(cage)} appears twice in one message`);
    seen.add(cage);
    cages.push({ cage, vm: roleField(item, "vm", path), ids: roleField(item, "ids", path) });
  }
  return { v: 1, timeMs, cages };
}

function roleField(o: Record<string, unknown>, role: "vm" | "ids", path: string): RoleMembers {
  const r = objectField(o, role, WHAT, `${path}.${role}`);
  const pids = pidsField(r, "pids", WHAT, `${path}.${role}.pids`);
  return { pids, startTimes: startTimesField(r, "startTimes", pids, WHAT, `${path}.${role}.startTimes`) };
}
