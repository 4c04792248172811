/**
 * Real tests: bpftrace and the libbpf program (dist/bpf/cpuTime) on this machine. Needs root,
 * bpftrace and the libbpf program's toolchain (scripts/ensure-host.sh, then scripts/build.sh).
 * The kernel-agreement and restart tests run once per program.
 * Every process a test starts is killed and reaped before the test ends.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startCpuTimeSource, type CpuTimeSource } from "../../../collectors/cpu/cpuTimeSource.js";
import type { CpuProgram } from "../../../collectors/cpu/cpuProgram.js";
import type { CpuBatch } from "../../../protocol/rawBatches.js";

const INTERVAL_MS = 100;

function startBusy(command: string, args: string[]): ChildProcess {
  const child = spawn(command, args, { stdio: "ignore" });
  assert.ok(child.pid !== undefined, `could not start ${command}`);
  return child;
}

async function killAndReap(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGKILL");
  await exited;
}

/** sum_exec_runtime of a thread: first field of /proc/PID/task/TID/schedstat. */
function schedstatNs(pid: number, tid = pid): number {
  return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
}

function processNs(batches: CpuBatch[], pid: number): number {
  let ns = 0;
  for (const b of batches) for (const p of b.processes) if (p.pid === pid) ns += p.cpuNs;
  return ns;
}

/** The process name of each program: bpftrace, or the loader's file name. */
const COMM: Record<CpuProgram, string> = { bpftrace: "bpftrace", libbpf: "cpuTime" };
const PROGRAMS: CpuProgram[] = ["libbpf", "bpftrace"];

function programChildrenOf(ppid: number, program: CpuProgram): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const afterComm = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (stat.includes(`(${COMM[program]})`) && Number(afterComm[1]) === ppid) pids.push(Number(name));
    } catch {
      // the process exited while we looked
    }
  }
  return pids;
}

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// npm test installs the libbpf toolchain (scripts/ensure-host.sh) and builds it: a missing loader fails here.
for (const program of PROGRAMS) {
  test(`${program}: per-PID CPU time of a busy process agrees with /proc/PID/schedstat within 1% over 5 s`, async () => {
    const batches: CpuBatch[] = [];
    const source = await startCpuTimeSource({ intervalMs: INTERVAL_MS, program, onBatch: (b) => batches.push(b) });
    // Started after the probes are attached, so every nanosecond it runs is seen.
    const busy = startBusy("sh", ["-c", "while :; do :; done"]);
    try {
      await sleep(5000);
      busy.kill("SIGSTOP"); // switched out: its time is final
      await sleep(3 * INTERVAL_MS);
      const truth = schedstatNs(busy.pid!);
      await sleep(2 * INTERVAL_MS);
      const measured = processNs(batches, busy.pid!);
      const error = Math.abs(measured - truth) / truth;
      console.log(`busy sh: schedstat ${(truth / 1e9).toFixed(4)} s, eBPF ${(measured / 1e9).toFixed(4)} s, difference ${(error * 100).toFixed(3)}%`);
      assert.ok(truth > 0.5e9, `the busy loop ran only ${truth} ns`);
      assert.ok(error < 0.01, `eBPF ${measured} ns vs schedstat ${truth} ns: ${(error * 100).toFixed(3)}% apart`);
      // Windows are contiguous and one interval long.
      for (let i = 1; i < batches.length; i++) {
        assert.equal(batches[i]!.windowStartNs, batches[i - 1]!.windowEndNs);
      }
      assert.equal(source.counters.parseErrors, 0);
    } finally {
      await killAndReap(busy);
      await source.stop();
    }
  });

  test(`${program}: per-thread sums add up to per-process sums for a multi-threaded process`, async () => {
    const batches: CpuBatch[] = [];
    const source = await startCpuTimeSource({ intervalMs: INTERVAL_MS, program, onBatch: (b) => batches.push(b) });
    const workers = "const { Worker } = require('node:worker_threads'); for (let i = 0; i < 2; i++) new Worker('for(;;){}', { eval: true }); for(;;){}";
    const busy = startBusy(process.execPath, ["-e", workers]);
    try {
      await sleep(2500);
      busy.kill("SIGSTOP");
      await sleep(3 * INTERVAL_MS);
      const tids = readdirSync(`/proc/${busy.pid}/task`).map(Number);
      const truth = tids.reduce((sum, tid) => sum + schedstatNs(busy.pid!, tid), 0);
      await sleep(2 * INTERVAL_MS);
      const threadIds = new Set<number>();
      for (const b of batches) {
        const perProcess = new Map<number, number>();
        for (const t of b.threads) {
          perProcess.set(t.pid, (perProcess.get(t.pid) ?? 0) + t.cpuNs);
          if (t.pid === busy.pid) threadIds.add(t.tid);
        }
        assert.deepEqual([...perProcess].sort((x, y) => x[0] - y[0]), b.processes.map((p) => [p.pid, p.cpuNs]));
      }
      const measured = processNs(batches, busy.pid!);
      const error = Math.abs(measured - truth) / truth;
      console.log(`node with 2 busy workers: ${threadIds.size} threads seen, schedstat (all threads) ${(truth / 1e9).toFixed(4)} s, eBPF ${(measured / 1e9).toFixed(4)} s, difference ${(error * 100).toFixed(3)}%`);
      assert.ok(threadIds.size >= 3, `expected the main thread and two workers, saw ${threadIds.size} threads`);
      assert.ok(error < 0.01, `eBPF ${measured} ns vs schedstat ${truth} ns`);
    } finally {
      await killAndReap(busy);
      await source.stop();
    }
  });

  test(`${program}: a process that was running before the probes attached is counted from its first record on`, async () => {
    const busy = startBusy("sh", ["-c", "while :; do :; done"]);
    const batches: CpuBatch[] = [];
    let source: CpuTimeSource | null = null;
    try {
      await sleep(300);
      source = await startCpuTimeSource({ intervalMs: INTERVAL_MS, program, onBatch: (b) => batches.push(b) });
      const atAttach = schedstatNs(busy.pid!);
      await sleep(3000);
      busy.kill("SIGSTOP");
      await sleep(3 * INTERVAL_MS);
      const truth = schedstatNs(busy.pid!) - atAttach;
      await sleep(2 * INTERVAL_MS);
      const measured = processNs(batches, busy.pid!);
      console.log(`busy sh started before the probes: schedstat since attach ${(truth / 1e9).toFixed(4)} s, eBPF ${(measured / 1e9).toFixed(4)} s`);
      assert.ok(truth > 0.3e9, `the busy loop ran only ${truth} ns`);
      // Its first record (a flush, at most 1/FLUSH_HZ = 25 ms plus a tick after the attach) is only a
      // baseline, so none of the >= 300 ms it ran before the attach is counted. The start resolves
      // at the first window marker, up to half a window after that record.
      assert.ok(measured <= truth + 0.15e9, `eBPF ${measured} ns counts more than schedstat's ${truth} ns since the attach`);
      // Up to a flush period and a tick before its first record, more when other load delays the flush.
      assert.ok(measured >= truth - 0.1e9, `eBPF ${measured} ns misses more than 100 ms of schedstat's ${truth} ns since the attach`);
    } finally {
      await killAndReap(busy);
      await source?.stop();
    }
  });

  test(`${program}: a program that dies is restarted, batches resume, and stop() leaves none behind`, async () => {
    const batches: CpuBatch[] = [];
    const events: string[] = [];
    const source: CpuTimeSource = await startCpuTimeSource({
      intervalMs: INTERVAL_MS, program, onBatch: (b) => batches.push(b), onEvent: (e) => events.push(`${e.level}: ${e.message}`),
    });
    try {
      const first = source.bpftracePid!;
      await waitFor("a batch", () => batches.length >= 2, 30_000);
      process.kill(first, "SIGKILL");
      await waitFor("the restart", () => source.restarts === 1 && source.bpftracePid !== undefined && source.bpftracePid !== first, 15_000);
      const before = batches.length;
      await waitFor("batches after the restart", () => batches.length >= before + 3, 15_000);
      const name = program === "libbpf" ? "the libbpf CPU program" : "bpftrace";
      assert.ok(events.some((e) => e.startsWith(`warn: ${name} exited (signal SIGKILL)`) && e.endsWith("restarting it in 500 ms")), events.join("\n"));
      assert.ok(events.some((e) => e.startsWith(`info: ${name} restarted`)), events.join("\n"));
      assert.equal(source.program, program);
      assert.equal(source.counters.restarts, 1);
      assert.equal(source.state, "running");
    } finally {
      await source.stop();
    }
    assert.deepEqual(programChildrenOf(process.pid, program), []);
    assert.equal(source.bpftracePid, undefined);
    assert.equal(source.state, "stopped");
  });
}

test("auto falls back to bpftrace when the libbpf program is not built or cannot start, and says why once", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cpu-fake-loader-"));
  // A loader that fails as a real one does on a kernel without BTF.
  const failing = join(dir, "cpuTime");
  writeFileSync(failing, "#!/bin/sh\necho 'cpuTime: cannot load the BPF programs: No such process' >&2\nexit 1\n");
  chmodSync(failing, 0o755);
  try {
    for (const [loaderPath, reason] of [
      [join(dir, "missing"), `the libbpf program ${join(dir, "missing")} is not built (scripts/build.sh builds it when clang-14, bpftool and libbpf-dev are installed)`],
      [failing, "the libbpf CPU program exited (code 1): cpuTime: cannot load the BPF programs: No such process"],
    ] as const) {
      const events: string[] = [];
      const batches: CpuBatch[] = [];
      const source = await startCpuTimeSource({ intervalMs: INTERVAL_MS, loaderPath, onBatch: (b) => batches.push(b), onEvent: (e) => events.push(`${e.level}: ${e.message}`) });
      try {
        assert.equal(source.program, "bpftrace");
        assert.deepEqual(events.filter((e) => e.includes("(auto)")), [`info: using bpftrace (auto): ${reason}`]);
        await waitFor("a batch from bpftrace", () => batches.length >= 1, 30_000);
      } finally {
        await source.stop();
      }
    }
    // Asked for by name, a failing libbpf program is an error, not a fallback.
    await assert.rejects(startCpuTimeSource({ intervalMs: INTERVAL_MS, program: "libbpf", loaderPath: failing, onBatch: () => {} }), {
      message: "cpu collector: the libbpf CPU program exited (code 1): cpuTime: cannot load the BPF programs: No such process",
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("garbage lines do not stop the stream (scripted fake bpftrace)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cpu-fake-bpftrace-"));
  const fake = join(dir, "bpftrace");
  const lines = [
    '{"type": "attached_probes", "data": {"probes": 6}}',
    '{"type": "printf", "data": "cpu_window 10 1150000000\\\\n"}',
    "garbage {{{",
    '{"type": "map", "data": {"@run0": {"5,5": 7',
    '{"type": "map", "data": {"@fork1": {"5": 1}}}',
    '{"type": "map", "data": {"@run1": {"5,5": 7}}}',
    '\\377\\376 not json',
    '{"type": "printf", "data": "cpu_window 11 1250000000\\\\n"}',
  ];
  writeFileSync(fake, `#!/bin/sh\nprintf '${lines.join("\\n")}\\n'\nexec sleep 30\n`);
  chmodSync(fake, 0o755);
  const batches: CpuBatch[] = [];
  const source = await startCpuTimeSource({ intervalMs: INTERVAL_MS, onBatch: (b) => batches.push(b), program: "bpftrace", bpftracePath: fake });
  try {
    await waitFor("two batches", () => batches.length >= 2, 30_000);
    assert.deepEqual(batches[1]!.processes, [{ pid: 5, cpuNs: 7 }]);
    assert.deepEqual(batches[1]!.threads, [{ pid: 5, tid: 5, cpuNs: 7 }]);
    assert.equal(source.counters.parseErrors, 3);
    assert.equal(source.counters.invalidUtf8, 1);
  } finally {
    await source.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("first start fails with a clear message when bpftrace is missing or exits", async () => {
  await assert.rejects(
    startCpuTimeSource({ intervalMs: INTERVAL_MS, onBatch: () => {}, program: "bpftrace", bpftracePath: "/nonexistent/bpftrace" }),
    { message: 'cpu collector: bpftrace not found at "/nonexistent/bpftrace" (install the Debian package bpftrace, or run scripts/ensure-host.sh)' },
  );
  const dir = mkdtempSync(join(tmpdir(), "cpu-fake-bpftrace-"));
  const fake = join(dir, "bpftrace");
  writeFileSync(fake, "#!/bin/sh\necho 'ERROR: Failed to attach probe' >&2\nexit 1\n");
  chmodSync(fake, 0o755);
  try {
    await assert.rejects(startCpuTimeSource({ intervalMs: INTERVAL_MS, onBatch: () => {}, program: "bpftrace", bpftracePath: fake }), {
      message: "cpu collector: bpftrace exited (code 1): ERROR: Failed to attach probe",
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await assert.rejects(startCpuTimeSource({ intervalMs: 5, onBatch: () => {} }), { message: "cpu collector: intervalMs must be an integer from 10 to 60000, got 5" });
  assert.ok(existsSync("/sys/kernel/tracing/events/sched/sched_switch"));
});
