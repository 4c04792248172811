/**
 * Control-loop latency: how long after an IDS changes does the VM follow? Runs the real agent
 * (`cage run`: collectors, pipeline, balloon and CPU actuators) twice on two cages, first with
 * today's loop settings as the baseline, then with the current defaults, and compares:
 *
 *   memory: the IDS is memoryLoad.c (frees its block, mallocs a random size, touches every page,
 *           prints "size BYTES", holds); the VM is a process in a v1 memory cgroup whose
 *           memory.limit_in_bytes is the balloon (cgroup back end). An IDS change is complete
 *           when memload prints its size; the latency is from then until the balloon target
 *           (act.decision) and the actual limit (read from the kernel every 10 ms) are within
 *           max(1 %, 4 MiB) of where they settle before the next change begins.
 *   CPU:    a busy loop in the IDS is started and stopped (SIGCONT/SIGSTOP) at known instants;
 *           it changes when it stops, and when it runs again after a SIGCONT (it prints the time:
 *           on a loaded host that can be tens of ms after the signal); two latencies from then:
 *           - half way: until the VM's applied cap (act.decision, sent after the back end wrote
 *             it) is half way from its level before the toggle to where it settles (the median
 *             over the second half of the toggle's span): the other engineers' load makes the
 *             IDS's share, and so the level, wobble by tens of points;
 *           - first write: until the first cap written after the toggle that moves toward the new
 *             level, split into its stages (cpuStages below). "Within one CPU window" means that
 *             write is made before the window after the one in which the toggle fell has closed:
 *             the loop acts on the window that shows the change, not on a later one.
 *
 * Reports p50/p95/max of each and the ratio baseline/current of the p95s.
 *
 *   node dist/bench/controlLatency.js [--json] [--seconds N] [--trace DIR]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { decodeActuatorDecision, decodeActuatorState, type ActuatorDecision } from "../protocol/actuatorMessages.js";
import { decodeCageAggregates } from "../protocol/cageAggregate.js";
import { CpuBatchView } from "../protocol/rawBatches.js";
import { defaultEndpoints } from "../protocol/endpoints.js";
import { MessageSubscriber } from "../protocol/messageBus.js";
import { isProtocolError, Topic } from "../protocol/wireFormat.js";
import { enterCgroupsArgv } from "../host/cgroup/cgroupMounts.js";
import { createProcessVmGroup, type ProcessVmGroup } from "../lab/memory/labCgroups.js";
import { compileMemoryLoad, mallocIdsArgv, vmHoldArgv } from "../lab/memory/labWorkloads.js";
import { escapeRegExp } from "../lab/memory/memoryLabPlan.js";
import { parseCommandLine } from "../runtime/commandLine.js";
import { benchCommand, runBenchMain } from "./benchMain.js";

const MiB = 1024 * 1024;
const BASE_BYTES = 512 * MiB;
const FLOOR_BYTES = 160 * MiB;
const CAGE_CAP_PCT = 100;
/** How long each IDS memory size is held, and each CPU burst/pause lasts at least, ms. */
const MEMORY_HOLD_MS = 3000;
const CPU_TOGGLE_MS = 1500;
const ACTUAL_POLL_MS = 10;
/** The CPU collector's window (agent.cpuIntervalMs, left at its default here). */
const CPU_WINDOW_MS = 100;

/** The loop as it was: 1 s /proc sampling only, balloon every 500 ms and at most one move a second, CPU cap at the period tick after a window. */
export const BASELINE_SETTINGS = {
  agent: { idsMemorySampleMs: false },
  balloon: { actOnAggregate: false, minMoveIntervalMs: 1000, reverseHoldMs: 0, periodMs: 500 },
  cpu: { actOnAggregate: false },
} as const;
/** The current defaults. */
export const CURRENT_SETTINGS = { agent: {}, balloon: {}, cpu: {} } as const;

interface Options {
  json: boolean;
  seconds: number;
  /** Directory to write each run's raw series to (baseline.json, current.json). */
  trace: string | null;
}

const CONTROL_LATENCY_COMMAND = benchCommand("controlLatency", "Latency from an IDS change to the balloon target, its actual and the CPU cap: old settings, then current.", {
  seconds: { type: "integer", value: "N", min: 10, max: 3600, help: "length of each run (default 30)" },
  trace: { type: "string", value: "DIR", help: "write each run's raw series here (baseline.json, current.json)" },
});

function parseArgs(argv: string[]): Options {
  const { values } = parseCommandLine(CONTROL_LATENCY_COMMAND, argv);
  return { json: values.json, seconds: values.seconds ?? 30, trace: values.trace ?? null };
}

export interface Distribution {
  n: number;
  p50Ms: number | null;
  p95Ms: number | null;
  maxMs: number | null;
  /** Changes the loop had not followed before the next change (counted at the hold's length). */
  missed: number;
}

/** Nearest-rank percentiles of latencies, ms. */
export function distribution(latencies: readonly number[], missed = 0): Distribution {
  const s = [...latencies].sort((a, b) => a - b);
  const rank = (p: number): number | null => (s.length === 0 ? null : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!);
  return { n: s.length, p50Ms: rank(50), p95Ms: rank(95), maxMs: s.length === 0 ? null : s[s.length - 1]!, missed };
}

/** A value over time: [timeMs, value] in time order. */
export type Series = readonly (readonly [number, number])[];

/** The value in force at `t`: the last point at or before it (null before the first). */
function valueAt(series: Series, t: number): number | null {
  let v: number | null = null;
  for (const [pt, pv] of series) {
    if (pt > t) break;
    v = pv;
  }
  return v;
}

/** One change to follow: from when it is complete until the next one begins. */
export interface ChangeWindow {
  fromMs: number;
  untilMs: number;
}

/**
 * For each window: the time from its start until `series` first comes within `tolerance(settled)`
 * of where it settles: the median of the values in force at 20 instants over the window's second
 * half (a median, so the noise of a busy host's CPU figures does not pick the level). A window in
 * which the series never gets there is a miss, counted at the window's length.
 */
export function followLatencies(windows: readonly ChangeWindow[], series: Series, tolerance: (settled: number, before: number | null) => number): { latencies: number[]; missed: number } {
  const latencies: number[] = [];
  let missed = 0;
  for (const { fromMs, untilMs } of windows) {
    const half = fromMs + (untilMs - fromMs) / 2;
    const late: number[] = [];
    for (let k = 0; k < 20; k++) {
      const v = valueAt(series, half + ((untilMs - half) * (k + 0.5)) / 20);
      if (v !== null) late.push(v);
    }
    if (late.length === 0) continue;
    late.sort((a, b) => a - b);
    const settled = late[Math.floor(late.length / 2)]!;
    const tol = tolerance(settled, valueAt(series, fromMs));
    const near = (v: number | null): boolean => v !== null && Math.abs(v - settled) <= tol;
    let reachedAt: number | null = near(valueAt(series, fromMs)) ? fromMs : null;
    for (const [t, v] of series) {
      if (reachedAt !== null || t >= untilMs) break;
      if (t > fromMs && near(v)) reachedAt = t;
    }
    if (reachedAt === null) {
      missed++;
      latencies.push(untilMs - fromMs);
    } else latencies.push(reachedAt - fromMs);
  }
  return { latencies, missed };
}

/** One CPU window of the CPU cage as the bench saw it, wall-clock ms. */
export interface CpuWindowSeen {
  /** The window's end (the aggregate's timeMs). */
  endMs: number;
  /** When the collector sent its raw.cpu batch (null: not seen). */
  rawAtMs: number | null;
  /** When the pipeline sent its agg.window message. */
  aggAtMs: number;
  /** The IDS's CPU in that window, % of one CPU (in the trace, to tell a window that did not show a toggle from a loop that ignored it). */
  idsPct?: number;
}

/** A cap the CPU actuator wrote (act.decision vm.cpu.cap), wall-clock ms. */
export interface CapWrite {
  atMs: number;
  from: number | null;
  to: number;
}

/** Where the time goes between an IDS toggle and the first cap written for it, ms. */
export interface CpuStage {
  /** The toggle until the end of the window it fell in (0 to one window: the window's own length). */
  toWindowEndMs: number;
  /** The IDS started (a burst: the VM's cap comes down) rather than stopped. */
  rising: boolean;
  /** Which window the write acted on: 0 = the one the toggle fell in, 1 = the next, … */
  windowsAfter: number;
  /** That window's end until its raw.cpu batch arrived (bpftrace prints it, the collector publishes). */
  collectorMs: number | null;
  /** The raw batch until the pipeline's aggregate of it arrived. */
  pipelineMs: number | null;
  /** That aggregate until the cap was written (decision and back end write). */
  actuatorMs: number;
  /** That window's end until the cap was written: the loop's own latency. */
  loopMs: number;
  /** The toggle until the write. */
  totalMs: number;
  /** Written before the window after the toggle's closed: the loop acted on the window that showed the toggle. */
  withinOneWindow: boolean;
}

/** A write and the send of the aggregate behind it are stamped by two processes' clocks in whole ms. */
const RECEIPT_SKEW_MS = 5;

/**
 * For each toggle (rising: the IDS starts, so the VM's cap must come down), the window it fell in
 * and the first cap write after that window's aggregate that moves the cap toward the new level,
 * before the next toggle; the stages are those of the window the write acted on (the newest
 * aggregate received before it). A toggle with no such write (a change inside the dead band, or
 * no window) is left out and counted as missed.
 */
export function cpuStages(toggles: readonly { atMs: number; rising: boolean }[], windows: readonly CpuWindowSeen[], writes: readonly CapWrite[], windowMs: number): { stages: CpuStage[]; missed: number } {
  const stages: CpuStage[] = [];
  let missed = 0;
  toggles.forEach((toggle, i) => {
    const untilMs = toggles[i + 1]?.atMs ?? Infinity;
    const first = windows.findIndex((x) => x.endMs > toggle.atMs);
    const w = windows[first];
    const write = w === undefined ? undefined : writes.find((c) => c.atMs >= w.aggAtMs - RECEIPT_SKEW_MS && c.atMs < untilMs && c.from !== null && (toggle.rising ? c.to < c.from : c.to > c.from));
    if (w === undefined || write === undefined) {
      missed++;
      return;
    }
    let acted = first;
    while (acted + 1 < windows.length && windows[acted + 1]!.aggAtMs - RECEIPT_SKEW_MS <= write.atMs) acted++;
    const a = windows[acted]!;
    stages.push({
      rising: toggle.rising,
      toWindowEndMs: w.endMs - toggle.atMs,
      windowsAfter: acted - first,
      collectorMs: a.rawAtMs === null ? null : a.rawAtMs - a.endMs,
      pipelineMs: a.rawAtMs === null ? null : a.aggAtMs - a.rawAtMs,
      actuatorMs: write.atMs - a.aggAtMs,
      loopMs: write.atMs - a.endMs,
      totalMs: write.atMs - toggle.atMs,
      withinOneWindow: write.atMs < w.endMs + windowMs,
    });
  });
  return { stages, missed };
}

/**
 * When the IDS changed for each toggle (times of the signals, alternating SIGCONT and SIGSTOP,
 * starting with SIGCONT): a resume is when the burner reported running again (`resumedAt`, the
 * first report after the signal and before the next toggle; a report up to 5 ms before the
 * signal's time stamp counts, the stamp being taken after the signal was sent), or the signal's
 * time when it reported nothing; a stop is the signal's time.
 */
export function cpuIdsChanges(toggles: readonly number[], resumedAt: readonly number[]): number[] {
  return toggles.map((atMs, i) => {
    if (i % 2 === 1) return atMs;
    const next = toggles[i + 1] ?? Infinity;
    const r = resumedAt.find((t) => t >= atMs - 5 && t < next);
    return r ?? atMs;
  });
}

/** The raw batch whose window ends nearest `endMs`, within half a window (the two ends come from two clock mappings). */
function nearestRaw(raws: readonly { endMs: number; atMs: number }[], endMs: number): { endMs: number; atMs: number } | undefined {
  let best: { endMs: number; atMs: number } | undefined;
  for (const r of raws) if (Math.abs(r.endMs - endMs) < CPU_WINDOW_MS / 2 && (best === undefined || Math.abs(r.endMs - endMs) < Math.abs(best.endMs - endMs))) best = r;
  return best;
}

const memoryTolerance = (bytes: number): number => Math.max(0.01 * (BASE_BYTES - bytes), 4 * MiB);

interface RunResult {
  memoryTarget: Distribution;
  memoryActual: Distribution;
  /** The toggle until the cap is half way to where it settles. */
  cpuCap: Distribution;
  /** The toggle until the first cap write toward the new level, and its stages. */
  cpuFirstWrite: {
    total: Distribution;
    toWindowEnd: Distribution;
    collector: Distribution;
    pipeline: Distribution;
    actuator: Distribution;
    /** The end of the window the write acted on until the write: the loop's own latency. */
    loop: Distribution;
    /** First writes made before the next window closed (of total.n). */
    withinOneWindow: number;
    /** Of those, for bursts (the IDS started: the cap comes down), and how many bursts there were. */
    withinOneWindowRising: number;
    rising: number;
    /**
     * Bursts alone, toggle to first write. A stop late in a window shows in that window only in
     * part, often not enough to lift the VM's cap off its floor, so stops take the next window.
     */
    burst: Distribution;
  };
  memoryChanges: number;
  cpuToggles: number;
  /** From a SIGCONT until the burner ran again (below 0 when it ran before the bench read its clock after the signal). */
  cpuResumeDelay: Distribution;
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  try {
    if (child.pid !== undefined) process.kill(child.pid, "SIGCONT");
  } catch {
    /* already gone */
  }
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await closed;
  clearTimeout(timer);
}

async function runOnce(label: string, settings: typeof BASELINE_SETTINGS | typeof CURRENT_SETTINGS, seconds: number, memload: string, dir: string, trace: string | null): Promise<RunResult> {
  const id = `${label}-${process.pid}`;
  const runDir = join(dir, label);
  const cleanups: (() => void | Promise<void>)[] = [];
  const subscribers: MessageSubscriber[] = [];
  const loops: Promise<void>[] = [];
  try {
    const group: ProcessVmGroup = createProcessVmGroup(`offloadcage-bench-${id}-vm`, BASE_BYTES);
    cleanups.push(() => group.remove());
    const [vmCmd, ...vmArgs] = enterCgroupsArgv([group.procsFile], vmHoldArgv(memload, 32)) as [string, ...string[]];
    const vm = spawn(vmCmd, vmArgs, { stdio: "ignore" });
    cleanups.push(() => stopChild(vm, 2000));
    // The CPU cage's VM: idle, so the cap follows the IDS alone.
    const cpuVm = spawn("sleep", ["3600"], { stdio: "ignore" });
    cleanups.push(() => stopChild(cpuVm, 2000));
    const burnMarker = `offloadcage-bench-burn-${id}`;
    // Two cages, so memload's page touching (CPU) does not blur the CPU cage's bursts.
    const cageName = `bench-mem-${id}`;
    const cpuCageName = `bench-cpu-${id}`;
    const config = {
      agent: {
        runtimeDir: join(runDir, "run"),
        prometheus: false,
        logLevel: "warn",
        pageCache: false,
        ...settings.agent,
        actuators: { balloon: { ...settings.balloon }, cpu: { ...settings.cpu } },
      },
      cages: [
        {
          name: cageName,
          vm: { kind: "process", match: [{ pid: vm.pid }] },
          ids: [{ cmdline: escapeRegExp(`${memload} random `), uid: 0 }],
          cpu: { cap: CAGE_CAP_PCT },
          memory: { base: BASE_BYTES, floor: FLOOR_BYTES, cgroup: group.path },
        },
        {
          name: cpuCageName,
          vm: { kind: "process", match: [{ pid: cpuVm.pid }] },
          ids: [{ cmdline: escapeRegExp(burnMarker), uid: 0 }],
          cpu: { cap: CAGE_CAP_PCT },
        },
      ],
    };
    const configPath = join(dir, `${label}.json`);
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    const endpoints = defaultEndpoints(config.agent.runtimeDir);

    const decisions: ActuatorDecision[] = [];
    let balloonActive = false;
    let cpuActive = false;
    for (const [actuator, endpoint] of [
      ["balloon", endpoints.actuators?.balloon],
      ["cpu", endpoints.actuators?.cpu],
    ] as const) {
      if (endpoint === undefined) throw new Error(`controlLatency: no ${actuator} actuator endpoint`);
      const sub = new MessageSubscriber();
      sub.connect(endpoint);
      sub.subscribe(Topic.actuatorState, Topic.actuatorDecision);
      subscribers.push(sub);
      loops.push(
        (async () => {
          for await (const msg of sub.messages(() => undefined)) {
            try {
              if (msg.topic === Topic.actuatorDecision) {
                const d = decodeActuatorDecision(msg.payload);
                if ((d.cage === cageName || d.cage === cpuCageName) && d.error === undefined) decisions.push(d);
              } else if (msg.topic === Topic.actuatorState) {
                const s = decodeActuatorState(msg.payload);
                if (s.mode === "active" && s.actuator === "balloon" && s.cage === cageName) balloonActive = true;
                if (s.mode === "active" && s.actuator === "cpu" && s.cage === cpuCageName) cpuActive = true;
              }
            } catch (err) {
              if (!isProtocolError(err)) throw err;
            }
          }
        })(),
      );
    }

    // The CPU cage's windows as they pass the collector and the pipeline, to split the latency by stage.
    const rawSeen: { endMs: number; atMs: number }[] = [];
    const aggSeen: { endMs: number; aggAtMs: number; idsPct: number }[] = [];
    const cpuEndpoint = endpoints.collectors.cpu;
    if (cpuEndpoint === undefined) throw new Error("controlLatency: no cpu collector endpoint");
    for (const [endpoint, topic] of [
      [cpuEndpoint, Topic.rawCpu],
      [endpoints.aggregates, Topic.cageAggregates],
    ] as const) {
      const sub = new MessageSubscriber();
      sub.connect(endpoint);
      sub.subscribe(topic);
      subscribers.push(sub);
      loops.push(
        (async () => {
          for await (const msg of sub.messages(() => undefined)) {
            // When its publisher sent it (same host, same wall clock), not when this busy process got to it.
            const atMs = Number(msg.header.sentAtUs) / 1000;
            try {
              if (msg.topic === Topic.rawCpu) {
                // Both CLOCK_MONOTONIC: how long ago the window ended, mapped onto the wall clock.
                const agoMs = Number(process.hrtime.bigint() - new CpuBatchView(msg.payload).windowEndNs) / 1e6;
                rawSeen.push({ endMs: Date.now() - agoMs, atMs });
              } else if (msg.topic === Topic.cageAggregates) {
                const a = decodeCageAggregates(msg.payload).aggregates.find((x) => x.cage === cpuCageName);
                if (a !== undefined) aggSeen.push({ endMs: a.timeMs, aggAtMs: atMs, idsPct: a.ids.cpuPct });
              }
            } catch (err) {
              if (!isProtocolError(err)) throw err;
            }
          }
        })(),
      );
    }

    const cageEntry = fileURLToPath(new URL("../cli/cage.js", import.meta.url));
    const agentErr: string[] = [];
    const agent = spawn(process.execPath, [cageEntry, "run", "--config", configPath], { stdio: ["ignore", "ignore", "pipe"] });
    agent.stderr.on("data", (b: Buffer) => agentErr.push(b.toString()));
    cleanups.push(() => stopChild(agent, 15_000));

    // The burner and memload start before the agent is ready, so it knows both as IDS. The
    // burner prints the wall-clock time at which it runs again after each SIGCONT (bash runs the
    // trap as soon as it is on a CPU): on a loaded host that can be tens of ms after the signal.
    const burner = spawn("/bin/bash", ["-c", `trap 'echo "$EPOCHREALTIME"' CONT; while :; do :; done # ${burnMarker}`], { stdio: ["ignore", "pipe", "ignore"], env: { ...process.env, LC_ALL: "C" } });
    cleanups.push(() => stopChild(burner, 2000));
    // Say how the burner ended if it is gone: a bare "kill ESRCH" once ended a run.
    const signalBurner = (signal: NodeJS.Signals): void => {
      try {
        process.kill(burner.pid as number, signal);
      } catch (err) {
        throw new Error(`controlLatency: could not send ${signal} to the burner (pid ${burner.pid}, exit code ${burner.exitCode}, signal ${burner.signalCode}): ${(err as Error).message}`, { cause: err });
      }
    };
    signalBurner("SIGSTOP");
    const resumedAt: number[] = [];
    let burnerOut = "";
    burner.stdout.on("data", (b: Buffer) => {
      burnerOut += b.toString();
      const lines = burnerOut.split("\n");
      burnerOut = lines.pop() ?? "";
      for (const line of lines) if (Number.isFinite(Number(line)) && line !== "") resumedAt.push(Number(line) * 1000);
    });
    const memoryChanges: number[] = [];
    const [idsCmd, ...idsArgs] = mallocIdsArgv(memload, 16, 400, MEMORY_HOLD_MS / 1000, 7) as [string, ...string[]];
    const ids = spawn(idsCmd, idsArgs, { stdio: ["ignore", "pipe", "ignore"] });
    cleanups.push(() => stopChild(ids, 2000));
    let measuring = false;
    let buffered = "";
    ids.stdout.on("data", (b: Buffer) => {
      const at = Date.now();
      buffered += b.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) if (measuring && line.startsWith("size ")) memoryChanges.push(at);
    });

    const readyBy = Date.now() + 60_000;
    while (!(balloonActive && cpuActive)) {
      if (agent.exitCode !== null) throw new Error(`controlLatency: cage run exited with ${agent.exitCode}: ${agentErr.join("").slice(-1500)}`);
      if (Date.now() > readyBy) throw new Error(`controlLatency: the agent's actuators were not active within 60 s: ${agentErr.join("").slice(-1500)}`);
      await sleep(100);
    }
    // The burner existed before the collector attached, so its first record after that only sets
    // its baseline (docs/cpu-collector.md): one short run before measuring, as an IDS running
    // under an agent that has been up for a while has had. Then the cap returns to the ceiling.
    signalBurner("SIGCONT");
    await sleep(3 * CPU_WINDOW_MS);
    signalBurner("SIGSTOP");
    await sleep(CPU_TOGGLE_MS);
    measuring = true;
    const startMs = Date.now();
    const actual: [number, number][] = [];
    const poll = setInterval(() => actual.push([Date.now(), group.limitBytes()]), ACTUAL_POLL_MS);
    cleanups.push(() => clearInterval(poll));
    /** When each SIGCONT/SIGSTOP was sent (just after). */
    const cpuToggles: number[] = [];
    let running = false;
    while (Date.now() - startMs < seconds * 1000) {
      running = !running;
      signalBurner(running ? "SIGCONT" : "SIGSTOP");
      cpuToggles.push(Date.now());
      // A random part, so that the toggles fall at every phase of the CPU windows.
      await sleep(CPU_TOGGLE_MS + Math.random() * CPU_WINDOW_MS);
    }
    clearInterval(poll);
    const endMs = Date.now();

    const target: [number, number][] = decisions.filter((d) => d.cage === cageName && d.setting === "vm.memory.target" && d.to !== null).map((d) => [d.timeMs, d.to as number]);
    const capDecisions = decisions.filter((d) => d.cage === cpuCageName && d.setting === "vm.cpu.cap" && d.to !== null);
    const cap: [number, number][] = capDecisions.map((d) => [d.timeMs, d.to as number]);
    const writes: CapWrite[] = capDecisions.map((d) => ({ atMs: d.timeMs, from: d.from, to: d.to as number }));
    const windows: CpuWindowSeen[] = aggSeen.map((a) => ({ ...a, rawAtMs: nearestRaw(rawSeen, a.endMs)?.atMs ?? null }));
    // The burner's report of the last resume may still be on its way.
    await sleep(50);
    // The IDS changes when the burner runs again, not when it is sent SIGCONT; a stop takes effect at once.
    const idsChanges = cpuIdsChanges(cpuToggles, resumedAt);
    if (trace !== null) writeFileSync(join(trace, `${label}.json`), JSON.stringify({ startMs, endMs, memoryChanges, cpuToggles, resumedAt, idsChanges, target, actual, cap, windows, writes }));
    // memload holds each size HOLD_MS after printing it, then frees and starts the next.
    const mem = memoryChanges.map((fromMs) => ({ fromMs, untilMs: Math.min(fromMs + MEMORY_HOLD_MS, endMs) }));
    const cpu = idsChanges.map((fromMs, i) => ({ fromMs, untilMs: idsChanges[i + 1] ?? endMs }));
    const t = followLatencies(mem, target, memoryTolerance);
    const a = followLatencies(mem, actual, memoryTolerance);
    // The cap has followed once it is half way from where it was to where it settles: on a busy host the IDS's share wobbles, and so does the level.
    const c = followLatencies(cpu, cap, (settled, before) => (before === null ? 0 : Math.abs(settled - before) / 2));
    // The first toggle resumes the burner (running starts false), then they alternate.
    const toggles = idsChanges.map((atMs, i) => ({ atMs, rising: i % 2 === 0 }));
    const s = cpuStages(toggles, windows, writes, CPU_WINDOW_MS);
    const bursts = s.stages.filter((x) => x.rising);
    const of = (pick: (x: CpuStage) => number | null): Distribution => distribution(s.stages.map(pick).filter((v): v is number => v !== null));
    return {
      memoryTarget: distribution(t.latencies, t.missed),
      memoryActual: distribution(a.latencies, a.missed),
      cpuCap: distribution(c.latencies, c.missed),
      cpuFirstWrite: {
        total: distribution(s.stages.map((x) => x.totalMs), s.missed),
        toWindowEnd: of((x) => x.toWindowEndMs),
        collector: of((x) => x.collectorMs),
        pipeline: of((x) => x.pipelineMs),
        actuator: of((x) => x.actuatorMs),
        loop: of((x) => x.loopMs),
        withinOneWindow: s.stages.filter((x) => x.withinOneWindow).length,
        withinOneWindowRising: bursts.filter((x) => x.withinOneWindow).length,
        rising: bursts.length,
        burst: distribution(bursts.map((x) => x.totalMs), toggles.filter((x) => x.rising).length - bursts.length),
      },
      memoryChanges: memoryChanges.length,
      cpuToggles: cpuToggles.length,
      cpuResumeDelay: distribution(idsChanges.filter((_, i) => i % 2 === 0).map((at, k) => at - cpuToggles[2 * k]!)),
    };
  } finally {
    for (const s of subscribers) s.close();
    await Promise.allSettled(loops);
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        process.stderr.write(`controlLatency: cleanup failed: ${(err as Error).message}\n`);
      }
    }
  }
}

const ms = (v: number | null): string => (v === null ? "-" : `${Math.round(v)} ms`);
const fmt = (d: Distribution): string => `p50 ${ms(d.p50Ms)}, p95 ${ms(d.p95Ms)}, max ${ms(d.maxMs)} (n ${d.n}, missed ${d.missed})`;

export async function main(argv: string[]): Promise<void> {
  const o = parseArgs(argv);
  const dir = mkdtempSync("/var/tmp/offloadcage-bench-latency-");
  try {
    const memload = compileMemoryLoad(dir);
    const baseline = await runOnce("baseline", BASELINE_SETTINGS, o.seconds, memload, dir, o.trace);
    const current = await runOnce("current", CURRENT_SETTINGS, o.seconds, memload, dir, o.trace);
    const ratio = (b: Distribution, c: Distribution): number | null => (b.p95Ms !== null && c.p95Ms !== null && c.p95Ms > 0 ? b.p95Ms / c.p95Ms : null);
    const result = {
      cpuWindowMs: CPU_WINDOW_MS,
      baseline,
      current,
      p95Ratio: { memoryTarget: ratio(baseline.memoryTarget, current.memoryTarget), memoryActual: ratio(baseline.memoryActual, current.memoryActual), cpuCap: ratio(baseline.cpuCap, current.cpuCap), cpuFirstWrite: ratio(baseline.cpuFirstWrite.total, current.cpuFirstWrite.total) },
    };
    if (o.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    for (const [name, r] of [
      ["baseline (old settings)", baseline],
      ["current (defaults)", current],
    ] as const) {
      process.stdout.write(`${name}: ${r.memoryChanges} memory changes, ${r.cpuToggles} CPU toggles\n`);
      process.stdout.write(`  SIGCONT -> the burner runs again: ${fmt(r.cpuResumeDelay)}\n`);
      process.stdout.write(`  IDS memory -> balloon target: ${fmt(r.memoryTarget)}\n`);
      process.stdout.write(`  IDS memory -> balloon actual: ${fmt(r.memoryActual)}\n`);
      process.stdout.write(`  IDS CPU    -> VM CPU cap half way: ${fmt(r.cpuCap)}\n`);
      const f = r.cpuFirstWrite;
      process.stdout.write(`  IDS CPU    -> first cap write: ${fmt(f.total)}; within one window ${f.withinOneWindow}/${f.total.n} (bursts ${f.withinOneWindowRising}/${f.rising})\n`);
      process.stdout.write(`    bursts alone (the IDS starts, the cap comes down): ${fmt(f.burst)}\n`);
      process.stdout.write(`    toggle -> end of its window: ${fmt(f.toWindowEnd)}\n`);
      process.stdout.write(`    and for the window the write acted on:\n`);
      process.stdout.write(`    window end -> raw batch:     ${fmt(f.collector)}\n`);
      process.stdout.write(`    raw batch -> aggregate:      ${fmt(f.pipeline)}\n`);
      process.stdout.write(`    aggregate -> cap written:    ${fmt(f.actuator)}\n`);
      process.stdout.write(`    window end -> cap written:   ${fmt(f.loop)}\n`);
    }
    const x = (v: number | null): string => (v === null ? "-" : `${v.toFixed(2)}x`);
    process.stdout.write(`p95 baseline/current: target ${x(result.p95Ratio.memoryTarget)}, actual ${x(result.p95Ratio.memoryActual)}, cap half way ${x(result.p95Ratio.cpuCap)}, first cap write ${x(result.p95Ratio.cpuFirstWrite)} (CPU window ${result.cpuWindowMs} ms)\n`);
    process.stdout.write(`within one CPU window: the first cap write toward the new level is made before the window after the toggle's has closed\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

runBenchMain(import.meta.url, main);
