/**
 * Test helpers for the balloon actuator (not a test file): a stand-in for the pipeline that
 * publishes synthetic aggregates (`agg.window`) on a real ZeroMQ socket, a subscriber that collects
 * the actuator's `act.state`/`act.decision`, a small observer QMP client, and config builders.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { pino, type Logger } from "pino";
import { Writable } from "node:stream";
import type { AgentConfig, BalloonActuatorSpec, CageSpec } from "../../../config/cageConfig.js";
import { DEFAULT_AGENT, DEFAULT_BALLOON_ACTUATOR } from "../../../config/loadConfig.js";
import { TEST_RUNTIME_DIR, TEST_STATE_DIR } from "../../pipeline/pipelineHarness.js";
import { encodeCageAggregates, encodeCageIdsMemoryUpdate, type CageAggregate } from "../../../protocol/cageAggregate.js";
import { decodeActuatorDecision, decodeActuatorState, type ActuatorDecision, type ActuatorState } from "../../../protocol/actuatorMessages.js";
import { BalloonActuator } from "../../../actuators/balloon/balloonActuator.js";
import { MessagePublisher, MessageSubscriber } from "../../../protocol/messageBus.js";
import { Encoding, Topic } from "../../../protocol/wireFormat.js";

export const MiB = 1024 * 1024;

export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function aggregate(cage: string, idsRssBytes: number, idsPageCacheBytes = 0): CageAggregate {
  return {
    v: 1,
    cage,
    timeMs: Date.now(),
    windowSeconds: 0.2,
    vm: { cpuPct: 0, pids: [], startTimes: [], rssBytes: 0 },
    ids: { cpuPct: 0, pids: [], startTimes: [], rssBytes: idsRssBytes, pageCacheBytes: idsPageCacheBytes },
    totalPct: 0,
    capPct: 100,
    idsCapPct: null,
    weight: null,
    memory: { baseBytes: null, floorBytes: null },
  };
}

/** Publishes the current synthetic IDS memory of each cage every `everyMs`, as the pipeline would. */
export class FakePipeline {
  private readonly publisher = new MessagePublisher();
  private readonly ids = new Map<string, { rss: number; cache: number }>();
  private timer: NodeJS.Timeout | null = null;
  constructor(readonly endpoint: string) {}

  async start(everyMs = 200): Promise<void> {
    await this.publisher.bind(this.endpoint);
    this.timer = setInterval(() => this.publishAll(), everyMs);
  }

  set(cage: string, rssBytes: number, pageCacheBytes = 0): void {
    this.ids.set(cage, { rss: rssBytes, cache: pageCacheBytes });
    this.publishAll();
  }

  /** An `agg.memory` message alone: the IDS memory of one cage between windows (the aggregates keep their value). */
  sendIdsMemory(cage: string, rssBytes: number, pageCacheBytes = 0): void {
    void this.publisher.publish(Topic.cageIdsMemory, Encoding.json, encodeCageIdsMemoryUpdate({ v: 1, timeMs: Date.now(), cages: [{ cage, ids: { rssBytes, pageCacheBytes } }] }));
  }

  /** Any payload on `agg.memory` (malformed-input tests). */
  sendIdsMemoryPayload(payload: Buffer): void {
    void this.publisher.publish(Topic.cageIdsMemory, Encoding.json, payload);
  }

  /** Stops publishing a cage (its aggregates go stale). */
  silence(cage: string): void {
    this.ids.delete(cage);
  }

  private publishAll(): void {
    const aggregates = [...this.ids].map(([cage, m]) => aggregate(cage, m.rss, m.cache));
    if (aggregates.length > 0) void this.publisher.publish(Topic.cageAggregates, Encoding.json, encodeCageAggregates(aggregates));
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.publisher.close();
  }
}

/** Collects act.state / act.decision from an actuator's PUB socket. */
export class ActuatorWatcher {
  private readonly sub = new MessageSubscriber();
  readonly states: ActuatorState[] = [];
  readonly decisions: ActuatorDecision[] = [];
  private done: Promise<void> | null = null;

  constructor(readonly endpoint: string) {}

  start(): void {
    this.sub.connect(this.endpoint);
    this.sub.subscribe(Topic.actuatorState, Topic.actuatorDecision);
    this.done = (async () => {
      for await (const m of this.sub.messages(() => undefined)) {
        if (m.topic === Topic.actuatorState) this.states.push(decodeActuatorState(m.payload));
        else if (m.topic === Topic.actuatorDecision) this.decisions.push(decodeActuatorDecision(m.payload));
      }
    })();
  }

  latest(cage: string): ActuatorState | undefined {
    for (let i = this.states.length - 1; i >= 0; i--) if (this.states[i]?.cage === cage) return this.states[i];
    return undefined;
  }

  async waitForState(cage: string, accept: (s: ActuatorState) => boolean, timeoutMs: number, what: string): Promise<ActuatorState> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = this.latest(cage);
      if (s && accept(s)) return s;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last state: ${JSON.stringify(s)}`);
      await delay(50);
    }
  }

  async close(): Promise<void> {
    this.sub.close();
    await this.done?.catch(() => undefined);
  }
}

export function balloonSpec(overrides: Partial<BalloonActuatorSpec> = {}): BalloonActuatorSpec {
  return { ...DEFAULT_BALLOON_ACTUATOR, periodMs: 200, staleAfterMs: 3000, minMoveIntervalMs: 400, stuckAfterMs: 5000, ...overrides };
}

export function agentConfigWith(cages: CageSpec[], balloon: BalloonActuatorSpec): AgentConfig {
  return { agent: { ...DEFAULT_AGENT, runtimeDir: TEST_RUNTIME_DIR, stateDir: TEST_STATE_DIR, prometheus: null, actuators: { balloon, cpu: null, limiter: null, external: [] } }, cages };
}

export function memoryCage(name: string, vm: CageSpec["vm"], baseBytes: number, floorBytes: number, balloon: Partial<NonNullable<CageSpec["memory"]>["balloon"]> = {}): CageSpec {
  return {
    name,
    vm,
    ids: [],
    cpu: { cap: 100, idsCap: null, weight: null },
    memory: { baseBytes, floorBytes, failsafeBytes: baseBytes, balloon: { backend: "auto", libvirtDomain: null, cgroup: null, cgroupV2File: "memory.max", ...balloon } },
  };
}

/** A balloon actuator on these cages, reading `pipeline` and published to `watcher`; started, with the watcher. */
export async function startBalloonActuator(cages: CageSpec[], spec: BalloonActuatorSpec, pipeline: FakePipeline, watcher: ActuatorWatcher, logger: Logger): Promise<BalloonActuator> {
  // The originals record goes to a folder of the test's own, not the host's runtime and state directories.
  const originals = mkdtempSync(join(tmpdir(), "oc-balloon-originals-"));
  // Removed when the test file's process ends, whatever way its test ended.
  process.once("exit", () => rmSync(originals, { recursive: true, force: true }));
  const actuator = new BalloonActuator({
    config: agentConfigWith(cages, spec),
    spec,
    aggregates: pipeline.endpoint,
    publish: watcher.endpoint,
    logger,
    originalsFiles: [join(originals, "run", "originals-balloon.json"), join(originals, "state", "originals-balloon.json")],
  });
  await actuator.start();
  watcher.start();
  return actuator;
}

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** A pino logger whose JSON lines are kept in `lines` (and not printed). */
export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString("utf8").split("\n")) if (l.trim() !== "") lines.push(JSON.parse(l) as LogLine);
      cb();
    },
  });
  return { logger: pino({ level: "debug" }, sink), lines };
}
