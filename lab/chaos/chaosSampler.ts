/**
 * The 10 ms sampler of the chaos run, in a worker thread: the main thread blocks at times (a
 * /proc scan, reading the environment of a process that is exiting, spawning), and a sampler
 * sharing its event loop would miss exactly the moments after a kill. Each sample reads the VM's
 * effective CPU cap from its real cgroup files and the state of each watched process.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { effectiveCpuCap, processState } from "./chaosHost.js";
import { RunRecorder, type Run } from "./chaosStats.js";

const SAMPLE_MS = 10;

/** What the main thread tells the sampler. */
type Command =
  | { kind: "shouldCap"; value: boolean }
  | { kind: "watch"; pid: number }
  | { kind: "unwatch"; pid: number }
  | { kind: "snapshot"; id: number }
  | { kind: "stop" };

export interface WatchedStats {
  samples: number;
  stopped: number;
  runs: Run[];
}

export interface SamplerSnapshot {
  /** ms on the run's clock (performance.timeOrigin of the main thread + ms). */
  nowMs: number;
  samples: number;
  maxGapMs: number;
  /** Samples without any CPU cap on the VM while the agent should have been capping. */
  uncapped: Run[];
  /** Samples with any real IDS process in state T. */
  idsStopped: Run[];
  /** Every cap seen (% of one CPU) since the start: count and sum, for means over a stretch. */
  capCount: number;
  capSum: number;
  watched: Record<number, WatchedStats>;
}

interface SamplerSetup {
  vmPid: number;
  idsPids: number[];
  /** performance.timeOrigin of the main thread: both threads use one clock. */
  origin: number;
}

/** Closed runs plus the open one, up to now. */
function withOpen(r: RunRecorder, nowMs: number): Run[] {
  return r.openSince === null ? [...r.runs] : [...r.runs, { startMs: r.openSince, endMs: nowMs }];
}

function runWorker(setup: SamplerSetup, port: NonNullable<typeof parentPort>): void {
  const now = (): number => performance.timeOrigin + performance.now() - setup.origin;
  let shouldCap = false;
  let samples = 0;
  let last: number | null = null;
  let maxGapMs = 0;
  let capCount = 0;
  let capSum = 0;
  const uncapped = new RunRecorder();
  const idsStopped = new RunRecorder();
  const watched = new Map<number, { samples: number; stopped: number; recorder: RunRecorder }>();
  const tick = (): void => {
    const t = now();
    if (last !== null) maxGapMs = Math.max(maxGapMs, t - last);
    last = t;
    samples++;
    const pct = effectiveCpuCap(setup.vmPid)?.pct ?? null;
    uncapped.sample(t, shouldCap && pct === null);
    if (pct !== null) {
      capCount++;
      capSum += pct;
    }
    idsStopped.sample(t, setup.idsPids.some((pid) => processState(pid) === "T"));
    for (const [pid, w] of watched) {
      const stopped = processState(pid) === "T";
      w.samples++;
      if (stopped) w.stopped++;
      w.recorder.sample(t, stopped);
    }
  };
  const timer = setInterval(tick, SAMPLE_MS);
  port.on("message", (c: Command) => {
    switch (c.kind) {
      case "shouldCap":
        shouldCap = c.value;
        tick();
        return;
      case "watch":
        watched.set(c.pid, { samples: 0, stopped: 0, recorder: new RunRecorder() });
        return;
      case "unwatch":
        watched.delete(c.pid);
        return;
      case "snapshot": {
        const t = now();
        const w: Record<number, WatchedStats> = {};
        for (const [pid, s] of watched) w[pid] = { samples: s.samples, stopped: s.stopped, runs: withOpen(s.recorder, t) };
        const snapshot: SamplerSnapshot = { nowMs: t, samples, maxGapMs, uncapped: withOpen(uncapped, t), idsStopped: withOpen(idsStopped, t), capCount, capSum, watched: w };
        port.postMessage({ id: c.id, snapshot });
        return;
      }
      case "stop":
        clearInterval(timer);
        port.close();
        return;
    }
  });
}

if (!isMainThread && parentPort !== null && (workerData as { chaosSampler?: SamplerSetup } | null)?.chaosSampler !== undefined) {
  runWorker((workerData as { chaosSampler: SamplerSetup }).chaosSampler, parentPort);
}

/** The main thread's handle on the sampler worker. Times are ms since `origin` (performance.timeOrigin + performance.now()). */
export class Sampler {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly waiting = new Map<number, (s: SamplerSnapshot) => void>();
  private readonly rejects = new Map<number, (err: Error) => void>();
  private failure: Error | null = null;

  constructor(vmPid: number, idsPids: number[], origin: number) {
    this.worker = new Worker(new URL(import.meta.url), { workerData: { chaosSampler: { vmPid, idsPids, origin } satisfies SamplerSetup } });
    this.worker.on("message", (m: { id: number; snapshot: SamplerSnapshot }) => {
      this.waiting.get(m.id)?.(m.snapshot);
      this.waiting.delete(m.id);
      this.rejects.delete(m.id);
    });
    this.worker.on("error", (err) => {
      this.failure = err;
      for (const reject of this.rejects.values()) reject(err);
      this.rejects.clear();
      this.waiting.clear();
    });
  }

  setShouldCap(value: boolean): void {
    this.worker.postMessage({ kind: "shouldCap", value } satisfies Command);
  }

  watch(pid: number): void {
    this.worker.postMessage({ kind: "watch", pid } satisfies Command);
  }

  unwatch(pid: number): void {
    this.worker.postMessage({ kind: "unwatch", pid } satisfies Command);
  }

  snapshot(): Promise<SamplerSnapshot> {
    if (this.failure !== null) return Promise.reject(new Error(`cage lab chaos: the sampler thread failed: ${this.failure.message}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, resolve);
      this.rejects.set(id, reject);
      this.worker.postMessage({ kind: "snapshot", id } satisfies Command);
    });
  }

  async stop(): Promise<void> {
    this.worker.postMessage({ kind: "stop" } satisfies Command);
    await this.worker.terminate();
  }
}
