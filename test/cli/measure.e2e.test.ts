/**
 * `cage measure --json -- COMMAND`: the eBPF on-CPU time must match the kernel's own rusage
 * for the same process tree within 2%. The reference figure comes from bash's `times`
 * (children's user+sys, read by bash from wait4's rusage), independent of our code.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCage } from "./cliHarness.js";

const dir = mkdtempSync(join(tmpdir(), "offloadcage-measure-"));
after(() => rmSync(dir, { recursive: true, force: true }));

// Burns until the process's own CPU time (all threads) reaches the target.
const SINGLE = `const t = Number(process.argv[2]); let x = 0;
for (;;) { for (let i = 0; i < 1e6; i++) x ^= i; const u = process.cpuUsage(); if ((u.user + u.system) / 1e6 >= t) break; }`;
// Two worker threads burn; the main thread exits once the whole process has used the target CPU
// time, so the load is the same however busy the machine is.
const MULTI = `const { Worker } = require("node:worker_threads");
const target = Number(process.argv[2]);
for (let i = 0; i < 2; i++) new Worker("let x = 0; for (;;) x ^= 1;", { eval: true });
const poll = setInterval(() => { const u = process.cpuUsage(); if ((u.user + u.system) / 1e6 >= target) { clearInterval(poll); process.exit(0); } }, 10);`;

function childrenCpuFromTimes(stdout: string): number {
  // `times` prints two lines: the shell's own, then its children's: "0m1.993s 0m0.012s"
  const lines = stdout.trim().split("\n").filter((l) => /^\d+m[\d.]+s \d+m[\d.]+s$/.test(l));
  const children = lines[lines.length - 1];
  assert.ok(children, `no times output in ${JSON.stringify(stdout)}`);
  const secs = children.split(" ").map((f) => {
    const m = /^(\d+)m([\d.]+)s$/.exec(f) as RegExpExecArray;
    return Number(m[1]) * 60 + Number(m[2]);
  });
  return (secs[0] ?? 0) + (secs[1] ?? 0);
}

async function measureBurner(name: string, script: string, arg: string): Promise<{ ours: number; kernel: number; result: Record<string, unknown> }> {
  // bash runs the burner, then prints its children's rusage with `times`; --json sends the
  // command's stdout to stderr, so `times` output is read from there.
  const file = join(dir, `${name}.cjs`);
  writeFileSync(file, script);
  const r = await runCage(["measure", "--json", "--", "bash", "-c", `"${process.execPath}" ${file} ${arg}; times >&2`]);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout.trim()) as Record<string, unknown>;
  return { ours: result.cpuSeconds as number, kernel: childrenCpuFromTimes(r.stderr), result };
}

test("single-threaded burner: cpuSeconds within 2% of rusage", async () => {
  const { ours, kernel, result } = await measureBurner("single", SINGLE, "2");
  assert.ok(kernel > 1.9, `burner used ${kernel}s`);
  assert.ok(Math.abs(ours - kernel) / kernel <= 0.02, `eBPF ${ours}s vs rusage ${kernel}s (${JSON.stringify(result)})`);
  assert.ok((result.peakRssBytes as number) > 10 * 1048576, "node's RSS is at least 10 MiB");
  assert.ok((result.wallSeconds as number) >= 1.9);
});

test("multi-threaded burner: cpuSeconds within 2% of rusage", async () => {
  const { ours, kernel, result } = await measureBurner("multi", MULTI, "2.5");
  assert.ok(kernel >= 2.45, `two workers burned ${kernel}s`);
  assert.ok(Math.abs(ours - kernel) / kernel <= 0.02, `eBPF ${ours}s vs rusage ${kernel}s (${JSON.stringify(result)})`);
});

test("the command's exit code is passed through", async () => {
  const r = await runCage(["measure", "--json", "--", "sh", "-c", "exit 7"]);
  assert.equal(r.code, 7);
  assert.equal((JSON.parse(r.stdout) as { exitCode: number }).exitCode, 7);
});

test("--pid: unknown PIDs are named; none alive is a usage error (exit 2)", async () => {
  const r = await runCage(["measure", "--json", "--pid", "999999999", "--duration", "0.5"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /pid 999999999: no such process/);
});

test("page cache: a cold 512 MiB read is attributed within 2% (cage measure --json -- cat FILE)", async () => {
  const { writeUncachedFile } = await import("../../collectors/pagecache/cacheWorkloads.js");
  const file = join("/var/tmp", `offloadcage-measure-pc-${process.pid}`);
  const size = 512 * 1048576;
  try {
    writeUncachedFile(file, size);
    // cat's output goes to /dev/null: written to a file it would add page cache of its own.
    const r = await runCage(["measure", "--json", "--", "sh", "-c", `exec cat ${file} > /dev/null`]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { pageCacheInsertedBytes: number; pageCacheResidentBytes: number; pageCacheUntrackedInserts: number };
    assert.ok(Math.abs(result.pageCacheInsertedBytes - size) / size <= 0.02, `inserted ${result.pageCacheInsertedBytes} for a ${size}-byte file`);
    assert.ok(result.pageCacheResidentBytes <= result.pageCacheInsertedBytes);
    assert.equal(result.pageCacheUntrackedInserts, 0);
  } finally {
    rmSync(file, { force: true });
  }
});
