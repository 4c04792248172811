/**
 * Payload of `raw.xen` (Topic.rawXen, Encoding.json): on-CPU time per Xen domain and vCPU over one
 * collector window, measured from the hypervisor's own trace records (`cage collector xentrace`).
 * docs/xentrace.md ("raw.xen") documents every field. Add fields, never change the meaning of one.
 */
import { ProtocolError } from "./wireFormat.js";

export interface XenVcpuCpu {
  vcpu: number;
  /** Nanoseconds this vCPU was in the `running` runstate during the window. */
  runNs: number;
  /** Run time per guest address space (CR3), largest first; present for domains whose CR3 writes are traced. */
  cr3s?: XenCr3Cpu[];
  /** Run time in address spaces left out of `cr3s` by the per-payload bound. */
  cr3OtherNs?: number;
  /** Run time with no address space known: before the vCPU's first traced CR3 write, or beyond the CR3 table's bound. */
  cr3UnknownNs?: number;
}

export interface XenCr3Cpu {
  /** CR3 as 0x-prefixed lower-case hex, the value the guest wrote (PCID bits included). */
  cr3: string;
  runNs: number;
}

export interface XenDomainCpuEntry {
  /** Xen domain ID; 32767 is the idle domain (time a pCPU ran nothing). */
  domain: number;
  /** From `xl list`, when known. */
  name?: string;
  /** Sum of the vCPUs' runNs. */
  runNs: number;
  vcpus: XenVcpuCpu[];
}

export interface XenDomainCpu {
  v: 1;
  /** Trace time the window covers (TSC span / cpuHz): the denominator for CPU %. */
  windowSeconds: number;
  /** Wall clock when the window was published, milliseconds since the Unix epoch. */
  timeMs: number;
  /** TSC rate used to turn cycles into nanoseconds. */
  cpuHz: number;
  /** Counts xentrace runs since the collector started (1 = first); a change means the trace restarted. */
  session: number;
  /** True for the last window of a session (xentrace exited; its final records are in it). */
  final: boolean;
  /** Domains with time in the window, by domain ID. */
  domains: XenDomainCpuEntry[];
  /** Trace records the hypervisor reported as dropped during the window (figures may be low). */
  lostRecords: number;
  /** Corruption events the parser found and skipped during the window. */
  corrupt: number;
  /** Run time the collector could not charge to a CR3 because its table was full; present when CR3s are traced. */
  cr3TableFullNs?: number;
}

/** Bound on (vCPU, CR3) entries a decoded payload may carry. */
export const MAX_CR3_ENTRIES_PER_PAYLOAD = 65536;

const CR3_TEXT = /^0x[0-9a-f]{1,16}$/;

const WHAT = "frame 2 (xen domain cpu)";

export function encodeXenDomainCpu(message: XenDomainCpu): Buffer {
  return Buffer.from(JSON.stringify(message), "utf8");
}

function fail(field: string, reason: string): never {
  throw new ProtocolError(`${WHAT} field ${field}`, reason);
}

function finiteAtLeast(value: unknown, min: number, field: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min) fail(field, `must be a finite number >= ${min}`);
  return value;
}

function integerIn(value: unknown, min: number, max: number, field: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) fail(field, `must be an integer from ${min} to ${max}`);
  return value;
}

function object(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(field, "must be a JSON object");
  return value as Record<string, unknown>;
}

/** Parses and checks a raw.xen payload; throws ProtocolError naming the first bad field. */
export function decodeXenDomainCpu(payload: Buffer): XenDomainCpu {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString("utf8"));
  } catch (err) {
    throw new ProtocolError(WHAT, `not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new ProtocolError(WHAT, "must be a JSON object");
  const o = parsed as Record<string, unknown>;
  if (o.v !== 1) fail("v", `unsupported version ${JSON.stringify(o.v)}, expected 1`);
  const windowSeconds = finiteAtLeast(o.windowSeconds, 0, "windowSeconds");
  const timeMs = finiteAtLeast(o.timeMs, 0, "timeMs");
  const cpuHz = finiteAtLeast(o.cpuHz, 1, "cpuHz");
  const session = integerIn(o.session, 1, Number.MAX_SAFE_INTEGER, "session");
  if (typeof o.final !== "boolean") fail("final", "must be true or false");
  const lostRecords = integerIn(o.lostRecords, 0, Number.MAX_SAFE_INTEGER, "lostRecords");
  const corrupt = integerIn(o.corrupt, 0, Number.MAX_SAFE_INTEGER, "corrupt");
  if (!Array.isArray(o.domains)) fail("domains", "must be an array");
  let cr3Entries = 0;
  const domains = (o.domains as unknown[]).map((d, i): XenDomainCpuEntry => {
    const at = `domains[${i}]`;
    const dom = object(d, at);
    const domain = integerIn(dom.domain, 0, 65535, `${at}.domain`);
    if (dom.name !== undefined && typeof dom.name !== "string") fail(`${at}.name`, "must be a string when present");
    const runNs = finiteAtLeast(dom.runNs, 0, `${at}.runNs`);
    if (!Array.isArray(dom.vcpus)) fail(`${at}.vcpus`, "must be an array");
    const vcpus = (dom.vcpus as unknown[]).map((v, j): XenVcpuCpu => {
      const vat = `${at}.vcpus[${j}]`;
      const vc = object(v, vat);
      const entry: XenVcpuCpu = { vcpu: integerIn(vc.vcpu, 0, 65535, `${vat}.vcpu`), runNs: finiteAtLeast(vc.runNs, 0, `${vat}.runNs`) };
      if (vc.cr3s !== undefined) {
        if (!Array.isArray(vc.cr3s)) fail(`${vat}.cr3s`, "must be an array when present");
        cr3Entries += (vc.cr3s as unknown[]).length;
        if (cr3Entries > MAX_CR3_ENTRIES_PER_PAYLOAD) fail(`${vat}.cr3s`, `more than ${MAX_CR3_ENTRIES_PER_PAYLOAD} CR3 entries in one payload`);
        entry.cr3s = (vc.cr3s as unknown[]).map((c, k): XenCr3Cpu => {
          const cat = `${vat}.cr3s[${k}]`;
          const cr = object(c, cat);
          if (typeof cr.cr3 !== "string" || !CR3_TEXT.test(cr.cr3)) fail(`${cat}.cr3`, "must be 0x followed by 1 to 16 lower-case hex digits");
          return { cr3: cr.cr3, runNs: finiteAtLeast(cr.runNs, 0, `${cat}.runNs`) };
        });
      }
      if (vc.cr3OtherNs !== undefined) entry.cr3OtherNs = finiteAtLeast(vc.cr3OtherNs, 0, `${vat}.cr3OtherNs`);
      if (vc.cr3UnknownNs !== undefined) entry.cr3UnknownNs = finiteAtLeast(vc.cr3UnknownNs, 0, `${vat}.cr3UnknownNs`);
      return entry;
    });
    return { domain, ...(dom.name !== undefined ? { name: dom.name } : {}), runNs, vcpus };
  });
  const message: XenDomainCpu = { v: 1, windowSeconds, timeMs, cpuHz, session, final: o.final, domains, lostRecords, corrupt };
  if (o.cr3TableFullNs !== undefined) message.cr3TableFullNs = finiteAtLeast(o.cr3TableFullNs, 0, "cr3TableFullNs");
  return message;
}
