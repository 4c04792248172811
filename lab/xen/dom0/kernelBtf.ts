/**
 * Struct member offsets from a kernel's raw BTF (/sys/kernel/btf/vmlinux): what the IDS-VM helper
 * (lab/xen/domu/ids-helper.sh) needs to read a task's PID and name and an mm's page table from a
 * kprobe. dom0 and the lab's domU boot the same kernel, so dom0's BTF gives the domU's offsets.
 * Pure: reads a buffer, follows anonymous members (mm_struct keeps its fields in one).
 */

const BTF_MAGIC = 0xeb9f;
// BTF kinds (include/uapi/linux/btf.h) and the bytes each adds after the 12-byte common header.
const KIND_INT = 1;
const KIND_ARRAY = 3;
const KIND_STRUCT = 4;
const KIND_UNION = 5;
const KIND_ENUM = 6;
const KIND_FUNC_PROTO = 13;
const KIND_VAR = 14;
const KIND_DATASEC = 15;
const KIND_DECL_TAG = 17;
const KIND_ENUM64 = 19;

interface BtfMember {
  name: string;
  type: number;
  bitOffset: number;
}

interface BtfType {
  kind: number;
  name: string;
  members: BtfMember[];
}

export interface KernelBtf {
  /** Byte offset of `path` ("task_struct.pid", "mm_struct.pgd") in its struct. */
  offsetOf(path: string): number;
}

/** Parses raw BTF; throws naming what is wrong with the buffer. */
export function parseKernelBtf(buf: Buffer): KernelBtf {
  if (buf.length < 24 || buf.readUInt16LE(0) !== BTF_MAGIC) throw new Error("kernel BTF: no BTF magic 0xeb9f (little-endian) at byte 0");
  const hdrLen = buf.readUInt32LE(4);
  const typeOff = buf.readUInt32LE(8);
  const typeLen = buf.readUInt32LE(12);
  const strOff = buf.readUInt32LE(16);
  const strLen = buf.readUInt32LE(20);
  const types0 = hdrLen + typeOff;
  const strings0 = hdrLen + strOff;
  if (types0 + typeLen > buf.length || strings0 + strLen > buf.length) throw new Error(`kernel BTF: sections end past the buffer (${buf.length} bytes)`);
  const str = (off: number): string => {
    const start = strings0 + off;
    const end = buf.indexOf(0, start);
    return buf.toString("latin1", start, end < 0 ? strings0 + strLen : end);
  };
  // Type IDs start at 1 (0 is void).
  const types: BtfType[] = [{ kind: 0, name: "", members: [] }];
  let at = types0;
  while (at < types0 + typeLen) {
    const info = buf.readUInt32LE(at + 4);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const kindFlag = info >>> 31 === 1;
    const name = str(buf.readUInt32LE(at));
    at += 12;
    const members: BtfMember[] = [];
    if (kind === KIND_STRUCT || kind === KIND_UNION) {
      for (let i = 0; i < vlen; i++, at += 12) {
        const raw = buf.readUInt32LE(at + 8);
        members.push({ name: str(buf.readUInt32LE(at)), type: buf.readUInt32LE(at + 4), bitOffset: kindFlag ? raw & 0xffffff : raw });
      }
    } else if (kind === KIND_INT || kind === KIND_VAR || kind === KIND_DECL_TAG) at += 4;
    else if (kind === KIND_ARRAY) at += 12;
    else if (kind === KIND_ENUM || kind === KIND_FUNC_PROTO) at += 8 * vlen;
    else if (kind === KIND_DATASEC || kind === KIND_ENUM64) at += 12 * vlen;
    types.push({ kind, name, members });
  }
  const structs = new Map<string, BtfType>();
  for (const t of types) if (t.kind === KIND_STRUCT && t.name !== "" && !structs.has(t.name)) structs.set(t.name, t);
  /** Bit offset of `field` in type `t`, looking into anonymous struct/union members. */
  const find = (t: BtfType, field: string): number | null => {
    for (const m of t.members) {
      if (m.name === field) return m.bitOffset;
      const inner = types[m.type];
      if (m.name === "" && inner !== undefined && (inner.kind === KIND_STRUCT || inner.kind === KIND_UNION)) {
        const got = find(inner, field);
        if (got !== null) return m.bitOffset + got;
      }
    }
    return null;
  };
  return {
    offsetOf(path: string): number {
      const [struct, field, extra] = path.split(".");
      if (struct === undefined || field === undefined || extra !== undefined) throw new Error(`kernel BTF: ${JSON.stringify(path)} is not STRUCT.FIELD`);
      const t = structs.get(struct);
      if (t === undefined) throw new Error(`kernel BTF: no struct ${struct}`);
      const bits = find(t, field);
      if (bits === null) throw new Error(`kernel BTF: struct ${struct} has no member ${field}`);
      if (bits % 8 !== 0) throw new Error(`kernel BTF: ${path} is a bitfield`);
      return bits / 8;
    },
  };
}

/** What the IDS-VM helper's kprobe reads: next mm's pgd, and the next task's pid and comm. */
export function idsHelperOffsets(btf: KernelBtf): { pgd: number; pid: number; comm: number } {
  return { pgd: btf.offsetOf("mm_struct.pgd"), pid: btf.offsetOf("task_struct.pid"), comm: btf.offsetOf("task_struct.comm") };
}
