/**
 * The per-cage aggregate the pipeline publishes on `agg.cage` (JSON, encoding 3), and the
 * collector status message on `status`. Actuators and third-party consumers read these;
 * docs/protocol.md documents every field. Add fields, never change the meaning of one
 * (bump PROTOCOL_VERSION for that).
 */
import { ProtocolError } from "./wireFormat.js";

export interface CageAggregate {
  /** Aggregate schema version; equals PROTOCOL_VERSION. */
  v: 1;
  cage: string;
  /** Wall clock at the window's end, milliseconds since the Unix epoch. */
  timeMs: number;
  /** Length of the window the CPU figures cover. */
  windowSeconds: number;
  vm: {
    /** On-CPU time of the VM's processes (or domain) over the window, % of one CPU. */
    cpuPct: number;
    pids: number[];
    rssBytes: number;
  };
  ids: {
    cpuPct: number;
    pids: number[];
    /** Sum of VmRSS of the IDS processes (latest /proc sample). */
    rssBytes: number;
    /**
     * Page cache the IDS's file reads added that is still resident (eBPF attribution, including
     * exited IDS processes' cache); 0 when the page cache collector is not running.
     */
    pageCacheBytes: number;
  };
  /** vm.cpuPct + ids.cpuPct. */
  totalPct: number;
  /** The cage's configured cap, % of one CPU. */
  capPct: number;
  idsCapPct: number | null;
  weight: number | null;
  memory: { baseBytes: number | null; floorBytes: number | null };
}

export interface CollectorStatus {
  v: 1;
  collector: string;
  /** "started" | "running" | "restarting" | "error" */
  state: string;
  message?: string;
  /** Cumulative counters since the collector process started. */
  counters: Record<string, number>;
  timeMs: number;
}

export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}

function parseObject(b: Buffer, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(b.toString("utf8"));
  } catch (err) {
    throw new ProtocolError(`frame 2 (${what})`, `not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ProtocolError(`frame 2 (${what})`, "must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}

function requireNumber(o: Record<string, unknown>, path: string, what: string): number {
  let cur: unknown = o;
  for (const k of path.split(".")) cur = (cur as Record<string, unknown> | undefined)?.[k];
  if (typeof cur !== "number" || !Number.isFinite(cur)) {
    throw new ProtocolError(`frame 2 (${what}) field ${path}`, "must be a finite number");
  }
  return cur;
}

export function decodeCageAggregate(b: Buffer): CageAggregate {
  const o = parseObject(b, "cage aggregate");
  if (o.v !== 1) throw new ProtocolError("frame 2 (cage aggregate) field v", `unsupported aggregate version ${String(o.v)}`);
  if (typeof o.cage !== "string" || o.cage === "") throw new ProtocolError("frame 2 (cage aggregate) field cage", "must be a non-empty string");
  for (const p of ["timeMs", "windowSeconds", "vm.cpuPct", "vm.rssBytes", "ids.cpuPct", "ids.rssBytes", "totalPct", "capPct"]) {
    requireNumber(o, p, "cage aggregate");
  }
  // Added within version 1: an aggregate from an older publisher lacks it and means "not measured".
  const ids = o.ids as Record<string, unknown>;
  if (ids.pageCacheBytes === undefined) ids.pageCacheBytes = 0;
  else requireNumber(o, "ids.pageCacheBytes", "cage aggregate");
  return o as unknown as CageAggregate;
}

export function decodeCollectorStatus(b: Buffer): CollectorStatus {
  const o = parseObject(b, "collector status");
  if (o.v !== 1) throw new ProtocolError("frame 2 (collector status) field v", `unsupported status version ${String(o.v)}`);
  if (typeof o.collector !== "string") throw new ProtocolError("frame 2 (collector status) field collector", "must be a string");
  if (typeof o.state !== "string") throw new ProtocolError("frame 2 (collector status) field state", "must be a string");
  return o as unknown as CollectorStatus;
}
