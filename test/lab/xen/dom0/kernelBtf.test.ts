import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { idsHelperOffsets, parseKernelBtf } from "../../../../lab/xen/dom0/kernelBtf.js";

/** A raw BTF blob: header, then types, then strings. */
function btf(types: Buffer[], strings: string): Buffer {
  const typeSec = Buffer.concat(types);
  const strSec = Buffer.from(strings, "latin1");
  const hdr = Buffer.alloc(24);
  hdr.writeUInt16LE(0xeb9f, 0);
  hdr.writeUInt8(1, 2);
  hdr.writeUInt32LE(24, 4);
  hdr.writeUInt32LE(0, 8);
  hdr.writeUInt32LE(typeSec.length, 12);
  hdr.writeUInt32LE(typeSec.length, 16);
  hdr.writeUInt32LE(strSec.length, 20);
  return Buffer.concat([hdr, typeSec, strSec]);
}

function type(nameOff: number, kind: number, vlen: number, sizeOrType: number, extra: number[][] = [], kindFlag = false): Buffer {
  const b = Buffer.alloc(12 + extra.length * 12);
  b.writeUInt32LE(nameOff, 0);
  b.writeUInt32LE((((kindFlag ? 1 : 0) << 31) | (kind << 24) | vlen) >>> 0, 4);
  b.writeUInt32LE(sizeOrType, 8);
  extra.forEach((m, i) => m.forEach((v, j) => b.writeUInt32LE(v, 12 + i * 12 + j * 4)));
  return b;
}

void test("offsets of named members, through anonymous structs, from a raw BTF blob", () => {
  // strings: 0 "", 1 "int", 5 "pgd", 9 "mm_struct", 19 "pid", 23 "task_struct", 35 "comm"
  const strings = "\0int\0pgd\0mm_struct\0pid\0task_struct\0comm\0";
  const int = Buffer.concat([type(1, 1, 0, 4), Buffer.from([32, 0, 0, 0])]); // [1] INT + its 4 bytes
  const anon = type(0, 4, 2, 80, [[19, 1, 0], [5, 1, 576]]); // [2] anonymous struct: pid at 0, pgd at 72
  const mm = type(9, 4, 1, 96, [[0, 2, 64]]); // [3] mm_struct { anon at byte 8 }
  const task = type(23, 4, 2, 4000, [[19, 1, 2416 * 8], [35, 1, 2976 * 8]], true); // [4] task_struct, kind_flag offsets
  const parsed = parseKernelBtf(btf([int, anon, mm, task], strings));
  assert.equal(parsed.offsetOf("mm_struct.pgd"), 80);
  assert.deepEqual(idsHelperOffsets(parsed), { pgd: 80, pid: 2416, comm: 2976 });
  assert.throws(() => parsed.offsetOf("mm_struct.nope"), /struct mm_struct has no member nope/);
  assert.throws(() => parsed.offsetOf("vm_area_struct.vm_mm"), /no struct vm_area_struct/);
  assert.throws(() => parsed.offsetOf("pgd"), /is not STRUCT\.FIELD/);
  assert.throws(() => parseKernelBtf(Buffer.alloc(32)), /no BTF magic/);
});

void test("this machine's kernel BTF: the offsets lie inside their structs and differ from each other", { skip: !existsSync("/sys/kernel/btf/vmlinux") && "no /sys/kernel/btf/vmlinux" }, () => {
  const o = idsHelperOffsets(parseKernelBtf(readFileSync("/sys/kernel/btf/vmlinux")));
  assert.ok(o.pgd > 0 && o.pgd < 4096, JSON.stringify(o));
  assert.ok(o.pid > 0 && o.comm > o.pid && o.comm < 16384, JSON.stringify(o));
});
