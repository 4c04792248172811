/**
 * Real tests of the libbpf CPU program's loader (bpf/cpuTime.c, built to dist/bpf/cpuTime by
 * scripts/build.sh): its output against bpftrace's for the same windows, its bad-argument and
 * exit paths, and that no program stays loaded however it ends (bpftool prog show). Needs root,
 * bpftrace, bpftool.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { LineSplitter, parseBpftraceLine, type BpftraceLine } from "../../collectors/cpu/bpftraceJsonLines.js";
import { defaultLoaderPath, defaultScriptPath } from "../../collectors/cpu/cpuTimeSource.js";
import { programArgs } from "../../collectors/cpu/cpuProgram.js";

const loader = defaultLoaderPath();
const INTERVAL_MS = 100;

interface Captured {
  child: ChildProcess;
  lines: BpftraceLine[];
  invalid: string[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function capture(command: string, args: string[], env: Record<string, string> = {}): Captured {
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } });
  child.stdin.on("error", () => {});
  const c: Captured = {
    child, lines: [], invalid: [], stderr: [],
    exited: new Promise((r) => child.once("exit", (code, signal) => r({ code, signal }))),
  };
  const splitter = new LineSplitter();
  child.stdout.on("data", (chunk: Buffer) => {
    for (const raw of splitter.push(chunk)) {
      const r = parseBpftraceLine(raw);
      if (r.kind === "line" && !r.invalidUtf8) c.lines.push(r.line);
      else if (r.kind !== "blank") c.invalid.push(raw.toString("utf8"));
    }
  });
  const errSplitter = new LineSplitter();
  child.stderr.on("data", (chunk: Buffer) => {
    for (const raw of errSplitter.push(chunk)) c.stderr.push(raw.toString("utf8"));
  });
  return c;
}

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const isMarker = (l: BpftraceLine, kind: "cpu_window" | "cpu_end"): boolean => l.type === "printf" && l.text.startsWith(`${kind} `);

/** The highest run-time record of pid,tid in any map set. */
function lastRecord(lines: BpftraceLine[], key: string): bigint | undefined {
  let best: bigint | undefined;
  for (const l of lines) {
    if (l.type !== "map") continue;
    for (const m of l.maps) {
      if (!/^@run[012]$/.test(m.name)) continue;
      for (const e of m.entries) if (e.key === key && (best === undefined || e.value > best)) best = e.value;
    }
  }
  return best;
}

/** Ids of the BPF programs the given process holds open (its bpf-prog fds' fdinfo). */
function programsOf(pid: number): number[] {
  const ids: number[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== "anon_inode:bpf-prog") continue;
      const m = /^prog_id:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"));
      if (m) ids.push(Number(m[1]));
    } catch {
      // the fd closed while we looked
    }
  }
  return ids;
}

/** The ids bpftool lists: every program loaded in the kernel. */
function loadedProgramIds(): Set<number> {
  return new Set((JSON.parse(execFileSync("bpftool", ["prog", "show", "--json"], { encoding: "utf8" })) as { id: number }[]).map((p) => p.id));
}

test("the loader's lines parse as bpftrace's do, and both record a stopped thread's exact run time", async () => {
  const args = programArgs(INTERVAL_MS);
  const bt = capture("bpftrace", ["-f", "json", defaultScriptPath(), ...args]);
  const lb = capture(loader, [...args, "16384"]);
  const busy = spawn("sh", ["-c", "while :; do :; done"], { stdio: "ignore" });
  let worker: ChildProcess | undefined;
  try {
    await waitFor("both programs' first window", () => bt.lines.some((l) => isMarker(l, "cpu_window")) && lb.lines.some((l) => isMarker(l, "cpu_window")), 60_000);
    // A thread started once both are attached, run, then stopped: its last switch-out carries its
    // final sum_exec_runtime, which both programs must print exactly as schedstat shows it.
    const w = spawn("sh", ["-c", "while :; do :; done"], { stdio: "ignore" });
    worker = w;
    await sleep(700);
    w.kill("SIGSTOP");
    await sleep(3 * INTERVAL_MS);
    const truth = BigInt(readFileSync(`/proc/${w.pid}/schedstat`, "utf8").split(" ")[0]!);
    await sleep(3 * INTERVAL_MS);
    for (const c of [bt, lb]) c.child.kill("SIGINT");
    const [btExit, lbExit] = await Promise.all([bt.exited, lb.exited]);
    // Killed only now: dying, it would run again and both would record its exit path too.
    w.kill("SIGKILL");
    assert.equal(lbExit.code, 0, "the loader exits 0 on SIGINT");
    assert.equal(btExit.code, 0);

    assert.deepEqual(lb.invalid, [], "every loader line is valid JSON of bpftrace's shapes");
    const key = `${w.pid},${w.pid}`;
    assert.equal(lastRecord(lb.lines, key), truth, "the loader's last record is schedstat's total");
    assert.equal(lastRecord(bt.lines, key), truth, "bpftrace's last record is schedstat's total");
    // The worker was forked while both ran: both saw the fork.
    const forked = (lines: BpftraceLine[]): boolean => lines.some((l) => l.type === "map" && l.maps.some((m) => /^@fork[012]$/.test(m.name) && m.entries.some((e) => e.key === String(w.pid) && e.value === 1n)));
    assert.ok(forked(lb.lines) && forked(bt.lines), "both recorded the fork");
    // The same kinds of lines and maps, and window markers on the same slots.
    const shapes = (lines: BpftraceLine[]): string[] => [...new Set(lines.map((l) => l.type === "map" ? `map ${l.maps.map((m) => m.name.replace(/\d$/, "N")).join(",")}` : l.type === "printf" ? `printf ${l.text.split(" ")[0]}` : l.type))].sort();
    assert.deepEqual(shapes(lb.lines), shapes(bt.lines));
    const slots = (lines: BpftraceLine[]): Set<string> => new Set(lines.filter((l) => isMarker(l, "cpu_window")).map((l) => (l as { text: string }).text.split(" ")[1]!));
    const common = [...slots(lb.lines)].filter((s) => slots(bt.lines).has(s));
    assert.ok(common.length >= 5, `windows both printed: ${common.length}`);
    assert.ok(isMarker(lb.lines.at(-1)!, "cpu_end"), "the loader's last line is cpu_end");
  } finally {
    worker?.kill("SIGKILL");
    busy.kill("SIGKILL");
    bt.child.kill("SIGKILL");
    lb.child.kill("SIGKILL");
  }
});

const INTERVAL_NS = BigInt(INTERVAL_MS) * 1_000_000n;

/** Sleeps, then busy-waits, until `phaseMs` into the next window (CLOCK_MONOTONIC); returns that window. */
async function untilPhase(phaseMs: number): Promise<bigint> {
  const window = process.hrtime.bigint() / INTERVAL_NS + 1n;
  const at = window * INTERVAL_NS + BigInt(phaseMs) * 1_000_000n;
  const left = Number(at - process.hrtime.bigint()) / 1e6;
  if (left > 3) await sleep(left - 3);
  while (process.hrtime.bigint() < at);
  return window;
}

/** Per window printed: the highest run-time record of `key` in its set (windows without one are left out). */
function windowRecords(lines: BpftraceLine[], key: string): Map<bigint, bigint> {
  const records = new Map<bigint, bigint>();
  let pending: bigint | null = null;
  for (const l of lines) {
    if (l.type === "map") {
      for (const m of l.maps) {
        if (!/^@run[012]$/.test(m.name)) continue;
        for (const e of m.entries) if (e.key === key && (pending === null || e.value > pending)) pending = e.value;
      }
    } else if (isMarker(l, "cpu_window")) {
      if (pending !== null) records.set(BigInt((l as { text: string }).text.split(" ")[1]!), pending);
      pending = null;
    }
  }
  return records;
}

/** The burner's run time at each edge, [before, after], by the window the edge starts. */
function edgeReports(burnOut: string): Map<bigint, [bigint, bigint]> {
  const atEdge = new Map<bigint, [bigint, bigint]>();
  for (const line of burnOut.split("\n").filter((l) => l !== "")) {
    const [w, before, after] = line.split(" ").map((x) => BigInt(x)) as [bigint, bigint, bigint];
    if (after !== undefined) atEdge.set(w, [before, after]);
  }
  return atEdge;
}

/**
 * The windows the edge test can check: a record of `key` in the window, the burner's report of
 * its end, and the window three before printed (else its set also held that window's records).
 */
function checkable(lines: BpftraceLine[], key: string, atEdge: Map<bigint, [bigint, bigint]>): Set<bigint> {
  const shared = sharedSets(lines);
  const out = new Set<bigint>();
  for (const window of windowRecords(lines, key).keys()) if (atEdge.has(window + 1n) && !shared.has(window)) out.add(window);
  return out;
}

/**
 * Windows whose set also held another window's records: the window three before was never
 * printed (a loader woken more than two windows late), or the set was read (the marker's NOW)
 * after the window three on had begun to write it (a loader stalled between wake-up and read).
 */
function sharedSets(lines: BpftraceLine[]): Set<bigint> {
  const markers = lines.filter((l) => isMarker(l, "cpu_window")).map((l) => (l as { text: string }).text.split(" ").slice(1, 3).map((x) => BigInt(x)) as [bigint, bigint]);
  const printed = new Set(markers.map(([w]) => w));
  const out = new Set<bigint>();
  for (const [w, readAt] of markers) {
    if ((w - 3n >= markers[0]![0] && !printed.has(w - 3n)) || readAt >= (w + 3n) * INTERVAL_NS) out.add(w);
  }
  return out;
}

// A window's last record of a thread must be its run time at the window's end, whether it was
// running across that end or not, and whenever the loader gets to flush: the test-only delay
// makes the loader flush and read each window 40 ms after its end (as a loader the scheduler
// wakes late would), where a total taken at the flush would be up to 40 ms too high.
for (const delayMs of [0, 40]) {
  test(`each window ends with the run time at its end, the loader flushing ${delayMs} ms late (OFFLOADCAGE_TEST_EDGE_DELAY_MS)`, async () => {
    const dir = mkdtempSync("/var/tmp/offloadcage-test-edge-");
    const burnPath = join(dir, "edgeBurn");
    execFileSync("gcc", ["-O2", "-Wall", "-o", burnPath, fileURLToPath(new URL("../../../test/fixtures/cpu/edgeBurn.c", import.meta.url))]);
    // Debug mode: per window and CPU, which path wrote the edge record, and every record of the
    // burner, printed with a failure.
    const lb = capture(loader, programArgs(INTERVAL_MS), { OFFLOADCAGE_TEST_EDGE_DELAY_MS: String(delayMs), OFFLOADCAGE_TEST_EDGE_DEBUG: "edgeBurn" });
    let burn: ChildProcess | undefined;
    try {
      await waitFor("the loader's first window", () => lb.lines.some((l) => isMarker(l, "cpu_window")), 30_000);
      // Started once the loader is attached, so the switch program knows when it went on a CPU.
      const b = spawn(burnPath, [String(INTERVAL_MS)], { stdio: ["ignore", "pipe", "ignore"] });
      burn = b;
      let burnOut = "";
      b.stdout.on("data", (chunk: Buffer) => { burnOut += chunk.toString("utf8"); });
      // A steady busy loop for 10 windows, then bursts: resumed 90 ms into a window, stopped 250 ms
      // later. A burst's first window ends 10 ms after it began, the part a flush that is not at the
      // edge misses. Under load the burner may get no CPU in those 10 ms (no record there): bursts
      // go on until 4 can be checked in their first window, or 20 were tried.
      await sleep(10 * INTERVAL_MS);
      const bursts: bigint[] = [];
      for (let i = 0; i < 20; i++) {
        b.kill("SIGSTOP");
        const window = await untilPhase(90);
        b.kill("SIGCONT");
        if (process.hrtime.bigint() / INTERVAL_NS === window) bursts.push(window);
        await sleep(250);
        if (bursts.filter((w) => checkable(lb.lines, `${b.pid},${b.pid}`, edgeReports(burnOut)).has(w)).length >= 4) break;
      }
      b.kill("SIGSTOP");
      await sleep(3 * INTERVAL_MS + delayMs);
      lb.child.kill("SIGTERM");
      assert.equal((await lb.exited).code, 0);

      const atEdge = edgeReports(burnOut);
      const records = windowRecords(lb.lines, `${b.pid},${b.pid}`);
      // Clock reads and the program's split of a stint at the edge: well under a millisecond.
      const SLACK_NS = 300_000n;
      const ms = (v: bigint): string => (Number(v) / 1e6).toFixed(3);
      let checked = 0, runningAcross = 0;
      const burstsChecked = new Set<bigint>();
      const failures: string[] = [];
      // A window whose set also held another window's records (sharedSets) is not checked.
      const shared = sharedSets(lb.lines);
      let leftOut = 0;
      for (const [window, record] of records) {
        const edge = atEdge.get(window + 1n);
        if (edge === undefined) continue;
        if (shared.has(window)) {
          leftOut++;
          continue;
        }
        checked++;
        const [before, after] = edge;
        // It was on a CPU at the edge (or preempted only for the few µs around its clock reads).
        if (after - before < 1_000_000n) runningAcross++;
        if (bursts.includes(window)) burstsChecked.add(window);
        if (record < before - SLACK_NS || record > after + SLACK_NS) {
          failures.push(`window ${window}: record ${ms(record - before)} ms from the burner's run time at its end (which lies within [0, ${ms(after - before)}] ms)`);
          // The loader's account of this window and the next (burner ${b.pid}), and its other complaints.
          // Traces from the window that last used this window's set on (a set is reused every third window).
          const near = lb.stderr.filter((l) => {
            const m = /^cpuTime (debug|trace): window (\d+) /.exec(l);
            return m === null || (BigInt(m[2]!) >= window - 3n && BigInt(m[2]!) <= window + 1n && (m[1] === "trace" || BigInt(m[2]!) >= window));
          });
          failures.push(...near.map((l) => `  ${l}`));
        }
      }
      assert.ok(failures.length === 0, `of ${checked} windows (${leftOut} left out: their set held another window's records too), burner ${b.pid}:\n${failures.join("\n")}`);
      assert.ok(checked >= 10, `windows with a record and an edge report: ${checked} (${leftOut} left out)`);
      assert.ok(runningAcross >= 5, `windows whose end the burner ran across: ${runningAcross} of ${checked}`);
      assert.ok(burstsChecked.size >= 3, `bursts begun 10 ms before a window's end and checked there: ${burstsChecked.size} of ${bursts.length}`);
    } finally {
      burn?.kill("SIGKILL");
      lb.child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("bad arguments exit 2 with a message naming the argument", () => {
  const cases: [string[], RegExp][] = [
    [[], /^cpuTime: expected 3 or 4 arguments, got 0\n/],
    [["100", "5"], /^cpuTime: expected 3 or 4 arguments, got 2\n/],
    [["0", "5", "40"], /^cpuTime: INTERVAL_MS must be an integer from 1 to 3600000, got "0"\n/],
    [["100", "5", "x"], /^cpuTime: FLUSH_HZ must be an integer from 1 to 10000, got "x"\n/],
    [["100", "-5", "40"], /^cpuTime: TICK_MS must be an integer from 1 to 3600000, got "-5"\n/],
    [["100", "5", "40", "8"], /^cpuTime: MAP_KEYS_MAX must be an integer from 16 to 4194304, got "8"\n/],
  ];
  for (const [args, message] of cases) {
    const r = spawnSync(loader, args, { encoding: "utf8" });
    assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stdout, "");
  }
  // The test-only flush delay is checked as an argument is.
  for (const [value, message] of [["x", /got "x"/], ["10001", /got "10001"/]] as const) {
    const r = spawnSync(loader, ["100", "5", "40"], { encoding: "utf8", env: { ...process.env, OFFLOADCAGE_TEST_EDGE_DELAY_MS: value } });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^cpuTime: OFFLOADCAGE_TEST_EDGE_DELAY_MS must be an integer from 0 to 10000, /);
    assert.match(r.stderr, message);
  }
  // So is the debug mode's thread name (a comm has at most 15 characters).
  const r = spawnSync(loader, ["100", "5", "40"], { encoding: "utf8", env: { ...process.env, OFFLOADCAGE_TEST_EDGE_DEBUG: "a-name-of-16-chr" } });
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr, 'cpuTime: OFFLOADCAGE_TEST_EDGE_DEBUG must be a thread name of 1 to 15 characters, got "a-name-of-16-chr"\n');
});

/** Starts the loader, waits until it is attached and returns the ids of its programs. */
async function attached(c: Captured): Promise<number[]> {
  await waitFor("the first window", () => c.lines.some((l) => isMarker(l, "cpu_window")), 30_000);
  const ids = programsOf(c.child.pid!);
  assert.equal(ids.length, 5, `switch, edge flush, periodic flush (loaded, not attached), fork and exit programs held by the loader: ${ids.join(",")}`);
  return ids;
}

/** The kernel frees a program after its last holder is gone, in deferred work (RCU): a moment later. */
async function assertDetached(ids: number[]): Promise<void> {
  const left = (): number[] => ids.filter((id) => loadedProgramIds().has(id));
  await waitFor(`programs ${ids.join(",")} to be unloaded (bpftool prog show)`, () => left().length === 0, 10_000);
}

test("the loader ends cleanly on SIGTERM and on EOF of its stdin pipe: last window, cpu_end, programs gone", async () => {
  for (const end of ["SIGTERM", "stdin EOF"] as const) {
    const c = capture(loader, programArgs(INTERVAL_MS));
    try {
      const ids = await attached(c);
      if (end === "SIGTERM") c.child.kill("SIGTERM");
      else c.child.stdin!.end();
      const exit = await c.exited;
      assert.deepEqual(exit, { code: 0, signal: null }, end);
      assert.ok(isMarker(c.lines.at(-1)!, "cpu_end"), `${end}: the last line is cpu_end`);
      await assertDetached(ids);
    } finally {
      c.child.kill("SIGKILL");
    }
  }
});

test("a SIGKILLed parent takes the loader with it: no program stays attached", async () => {
  // A shell in between stands for the agent: it starts the loader (stdin not a pipe, so only
  // PR_SET_PDEATHSIG can notice) and is SIGKILLed.
  const parent = spawn("sh", ["-c", `"$0" "$@" </dev/null; exit 0`, loader, ...programArgs(INTERVAL_MS)], { stdio: ["ignore", "pipe", "ignore"] });
  const parentExit = new Promise<void>((r) => parent.once("exit", () => r()));
  let out = "";
  parent.stdout.on("data", (b: Buffer) => { out += b.toString("utf8"); });
  let loaderPid: number | undefined;
  try {
    await waitFor("the loader's first window", () => out.includes("cpu_window "), 30_000);
    loaderPid = Number(execFileSync("pgrep", ["-P", String(parent.pid), "-x", "cpuTime"], { encoding: "utf8" }).trim());
    const ids = programsOf(loaderPid);
    assert.equal(ids.length, 5);
    parent.kill("SIGKILL");
    await parentExit;
    await waitFor("the loader to exit", () => spawnSync("kill", ["-0", String(loaderPid)]).status !== 0, 10_000);
    await assertDetached(ids);
  } finally {
    parent.kill("SIGKILL");
    if (loaderPid !== undefined) spawnSync("kill", ["-KILL", String(loaderPid)]);
  }
});

test("--noop attaches one empty tp_btf program and detaches it at exit", async () => {
  const c = capture(loader, ["--noop"]);
  try {
    await waitFor("noop_attached", () => c.lines.some((l) => l.type === "printf" && l.text === "noop_attached\n"), 30_000);
    const ids = programsOf(c.child.pid!);
    assert.equal(ids.length, 1);
    c.child.kill("SIGINT");
    assert.deepEqual(await c.exited, { code: 0, signal: null });
    await assertDetached(ids);
  } finally {
    c.child.kill("SIGKILL");
  }
});
