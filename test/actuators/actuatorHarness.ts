/** Shared helpers for the actuator tests (not a test file itself). */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CageAggregate } from "../../protocol/cageAggregate.js";
import { parseProcStat } from "../../host/proc/processTable.js";
import { readStartTime } from "../../host/proc/processIdentity.js";
import { encodeCageAggregates } from "../../protocol/cageAggregate.js";
import { MessagePublisher, MessageSubscriber } from "../../protocol/messageBus.js";
import { Encoding, Topic } from "../../protocol/wireFormat.js";
import { decodeActuatorDecision, decodeActuatorState, type ActuatorDecision, type ActuatorState } from "../../protocol/actuatorMessages.js";

/**
 * A valid aggregate. Start times default to those of the running processes (as the pipeline
 * would send them); a PID with no process behind it gets 0, which no live process has.
 */
export function aggregate(cage: string, fields: { idsPct?: number; vmPct?: number; vmPids?: number[]; idsPids?: number[]; vmStartTimes?: number[]; idsStartTimes?: number[]; capPct?: number; windowSeconds?: number } = {}): CageAggregate {
  const vm = fields.vmPct ?? 0;
  const ids = fields.idsPct ?? 0;
  const vmPids = fields.vmPids ?? [];
  const idsPids = fields.idsPids ?? [];
  const startsOf = (pids: number[]): number[] => pids.map((pid) => readStartTime(pid) ?? 0);
  return {
    v: 1,
    cage,
    timeMs: Date.now(),
    windowSeconds: fields.windowSeconds ?? 0.1,
    vm: { cpuPct: vm, pids: vmPids, startTimes: fields.vmStartTimes ?? startsOf(vmPids), rssBytes: 0 },
    ids: { cpuPct: ids, pids: idsPids, startTimes: fields.idsStartTimes ?? startsOf(idsPids), rssBytes: 0, pageCacheBytes: 0 },
    totalPct: vm + ids,
    capPct: fields.capPct ?? 50,
    idsCapPct: null,
    weight: null,
    memory: { baseBytes: null, floorBytes: null },
  };
}

// The pipeline tests' helpers, shared rather than copied.
export { capturingLogger, waitFor, waitForAsync, agentConfig, stopProcess as stopChild } from "../pipeline/pipelineHarness.js";

/** Process state letter from /proc/PID/stat (R, S, T, ...), or null when gone. */
export function procState(pid: number): string | null {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, "utf8")).state;
  } catch {
    return null;
  }
}

/** utime + stime of a process, in seconds (USER_HZ = 100 on Linux). */
export function cpuSecondsOf(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[14 - 3]) + Number(rest[15 - 3])) / 100;
}

/** A burner ends by itself after this long, whatever happens to the test that started it. */
const BURNER_LIFETIME_MS = 600_000;

/**
 * A real CPU burner: a busy loop in its own process. `dutyPct` < 100 burns that share of each 100 ms.
 * It yields to the event loop every 100 ms, so a SIGTERM ends it even at 100%.
 */
export function startBurner(dutyPct = 100): ChildProcess & { pid: number } {
  const script = `const d=${dutyPct},end=performance.now()+${BURNER_LIFETIME_MS};process.on("SIGTERM",()=>process.exit(0));function burn(ms){const e=performance.now()+ms;let x=0;while(performance.now()<e)x=(x*1103515245+12345)%2147483648;}function loop(){if(performance.now()>end)process.exit(0);burn(Math.min(d,100));if(d>=100)setImmediate(loop);else setTimeout(loop,100-d);}loop();`;
  const child = spawn(process.execPath, ["-e", script], { stdio: "ignore" });
  if (child.pid === undefined) throw new Error("could not start a burner");
  return child as ChildProcess & { pid: number };
}

/** An IDS stand-in process tree: a shell with two CPU-burning children (`yes`). */
export function startBurnerTree(): ChildProcess & { pid: number } {
  const child = spawn("/bin/sh", ["-c", "yes > /dev/null & yes > /dev/null & wait"], { stdio: "ignore", detached: true });
  if (child.pid === undefined) throw new Error("could not start the IDS stand-in");
  return child as ChildProcess & { pid: number };
}

export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter((s) => s !== "").map(Number);
  } catch {
    return [];
  }
}

/** SIGCONT then SIGKILL a process group (the burner tree) and wait until its leader is gone. */
export async function killTree(child: ChildProcess & { pid: number }): Promise<void> {
  for (const sig of ["SIGCONT", "SIGKILL"] as const) {
    try {
      process.kill(-child.pid, sig);
    } catch {
      /* gone */
    }
  }
  try {
    child.kill("SIGKILL");
  } catch {
    /* gone */
  }
  if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once("exit", r));
}

/** A unique v1 cpu cgroup for a test; `remove` moves any process out and deletes it. */
export function testCpuCgroup(tag: string): { path: string; add(pid: number): void; remove(): void } {
  const path = `/sys/fs/cgroup/cpu/oc-test-${tag}-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
  if (existsSync(path)) throw new Error(`${path} exists`);
  readdirSync("/sys/fs/cgroup/cpu"); // fail early if there is no v1 cpu hierarchy
  return {
    path,
    add(pid: number): void {
      writeFileSync(join(path, "cgroup.procs"), String(pid));
    },
    remove(): void {
      if (!existsSync(path)) return;
      for (const pid of readFileSync(join(path, "cgroup.procs"), "utf8").split("\n").filter((l) => l !== "")) {
        try {
          writeFileSync("/sys/fs/cgroup/cpu/cgroup.procs", pid);
        } catch {
          /* exited */
        }
      }
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(path);
          return;
        } catch {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        }
      }
    },
  };
}

/** Reads every regular cpu.* file of a cgroup: name → content. */
export function snapshotCgroup(path: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of readdirSync(path).sort()) {
    if (!name.startsWith("cpu.") || name.startsWith("cpu.stat")) continue;
    try {
      out.set(name, readFileSync(join(path, name), "utf8"));
    } catch {
      /* write-only */
    }
  }
  return out;
}

// ---- aggregates from the test, act.* back ----

/**
 * Publishes `agg.window` every 100 ms on a real ZeroMQ socket, as the pipeline does, with what
 * `next()` returns (the test decides the IDS's PIDs and CPU). `pause()` stops it (stale data).
 */
export class AggregateFeeder {
  private readonly publisher = new MessagePublisher();
  private timer: NodeJS.Timeout | null = null;
  constructor(
    readonly endpoint: string,
    private readonly next: () => CageAggregate[],
  ) {}

  async start(): Promise<void> {
    await this.publisher.bind(this.endpoint);
    this.resume();
  }

  resume(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => {
      const timeMs = Date.now();
      void this.publisher.publish(Topic.cageAggregates, Encoding.json, encodeCageAggregates(this.next().map((a) => ({ ...a, timeMs }))));
    }, 100);
  }

  pause(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Publishes one message now, outside the 100 ms rhythm. */
  async publishNow(aggregates: CageAggregate[]): Promise<void> {
    await this.publisher.publish(Topic.cageAggregates, Encoding.json, encodeCageAggregates(aggregates));
  }

  async close(): Promise<void> {
    this.pause();
    await this.publisher.close();
  }
}

/** Collects an actuator's act.decision and act.state messages. */
export class ActuatorListener {
  private readonly sub = new MessageSubscriber();
  readonly decisions: ActuatorDecision[] = [];
  readonly states: ActuatorState[] = [];
  private done: Promise<void> | null = null;

  start(endpoint: string): void {
    this.sub.connect(endpoint);
    this.sub.subscribe(Topic.actuatorDecision);
    this.sub.subscribe(Topic.actuatorState);
    this.done = (async () => {
      for await (const m of this.sub.messages(() => undefined)) {
        if (m.topic === Topic.actuatorDecision) this.decisions.push(decodeActuatorDecision(m.payload));
        else if (m.topic === Topic.actuatorState) this.states.push(decodeActuatorState(m.payload));
      }
    })();
  }

  async close(): Promise<void> {
    this.sub.close();
    await this.done?.catch(() => undefined);
  }
}

/**
 * A cage file for an agent process the test starts: its runtime directory (default `dir`) and
 * state directory inside the test's folder, warnings only, then `agentLines` (indented under
 * `agent:`) and `cageLines` (under `cages:`). Returns its path.
 */
export function writeCageFile(dir: string, agentLines: readonly string[], cageLines: readonly string[], runtimeDir = dir): string {
  const path = join(dir, "cages.yaml");
  writeFileSync(path, ["agent:", `  runtimeDir: ${runtimeDir}`, `  stateDir: ${join(dir, "state")}`, "  logLevel: warn", ...agentLines, "cages:", ...cageLines, ""].join("\n"));
  return path;
}
