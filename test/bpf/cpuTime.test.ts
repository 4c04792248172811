/**
 * Real tests of the libbpf CPU program's loader (bpf/cpuTime.c, built to dist/bpf/cpuTime by
 * scripts/build.sh): its output against bpftrace's for the same windows, its bad-argument and
 * exit paths, and that no program stays loaded however it ends (bpftool prog show). Needs root,
 * bpftrace, bpftool.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
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
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function capture(command: string, args: string[], env: Record<string, string> = {}): Captured {
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "ignore"], env: { ...process.env, ...env } });
  child.stdin.on("error", () => {});
  const c: Captured = {
    child, lines: [], invalid: [],
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
});

/** Starts the loader, waits until it is attached and returns the ids of its programs. */
async function attached(c: Captured): Promise<number[]> {
  await waitFor("the first window", () => c.lines.some((l) => isMarker(l, "cpu_window")), 30_000);
  const ids = programsOf(c.child.pid!);
  assert.equal(ids.length, 4, `switch, flush, fork and exit programs held by the loader: ${ids.join(",")}`);
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
    assert.equal(ids.length, 4);
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
