// bpf/mulDiv.h, compiled natively with the same header the CPU program includes, against exact
// BigInt arithmetic: the CPU program splits a run across a window's edge with it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const U64 = (1n << 64n) - 1n;

/** A deterministic stream of 64-bit values (xorshift64), so a failure names a reproducible case. */
function randomU64(seed: bigint): () => bigint {
  let x = seed;
  return () => {
    x ^= (x << 13n) & U64;
    x ^= x >> 7n;
    x ^= (x << 17n) & U64;
    return x;
  };
}

void test("mul_div: a * b / c for b <= c, exact below 2^32 and within a * 2^-30 + 2 above", () => {
  const dir = mkdtempSync(join(tmpdir(), "offloadcage-muldiv-"));
  try {
    const exe = join(dir, "mulDiv");
    execFileSync("gcc", ["-O2", "-Wall", "-o", exe, fileURLToPath(new URL("../../../test/fixtures/cpu/mulDiv.c", import.meta.url))]);
    const next = randomU64(0x9e3779b97f4a7c15n);
    const cases: [bigint, bigint, bigint][] = [
      // A run of 5 s split 4 s before an edge: shifting a with b and c once made this 61,035 ns.
      [5_000_000_000n, 4_000_000_000n, 5_000_000_000n],
      [0n, 0n, 0n],
      [7n, 0n, 0n],
      [U64, U64, U64],
      [U64, 1n, U64],
      [(1n << 32n) - 1n, (1n << 32n) - 2n, (1n << 32n) - 1n],
      [1n << 40n, 1n << 39n, 1n << 40n],
    ];
    for (let i = 0; i < 3000; i++) {
      // Divisors of every size from 1 ns to 2^64 - 1, b <= c, a of any size up to c.
      const bits = BigInt(1 + (i % 64));
      const c = (next() >> (64n - bits)) | 1n;
      const b = next() % (c + 1n);
      const a = i % 3 === 0 ? next() : next() % (c + 1n);
      cases.push([a, b, c]);
    }
    const out = execFileSync(exe, { input: cases.map((t) => t.join(" ")).join("\n") + "\n" }).toString().trim().split("\n").map(BigInt);
    assert.equal(out.length, cases.length);
    const wrong: string[] = [];
    cases.forEach(([a, b, c], i) => {
      const exact = c === 0n ? 0n : (a * b) / c;
      const got = out[i]!;
      const slack = c < 1n << 32n ? 0n : (a >> 30n) + 2n;
      const off = got > exact ? got - exact : exact - got;
      if (off > slack) wrong.push(`mul_div(${a}, ${b}, ${c}) = ${got}, exact ${exact}, allowed ±${slack}`);
    });
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} of ${cases.length} cases out of bounds`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
