/**
 * Test actuator publishers (fakes: no actuator is merged on this branch yet). They use the real
 * ActuatorLink: a real ZeroMQ SUB on the pipeline's aggregates and a real PUB bound where
 * `cage run`'s pipeline looks for the CPU and balloon actuators, and publish act.state /
 * act.decision messages shaped as docs/protocol.md says, derived from the real aggregates.
 * Nothing is applied to any process: the numbers only exercise the history, metrics,
 * dashboards and alerts. The balloon one reports itself stuck, so the BalloonStuck alert has
 * something to fire on.
 */
import type { Logger } from "pino";
import { ActuatorLink } from "../../actuators/common/actuatorLink.js";
import type { CageAggregate } from "../../protocol/cageAggregate.js";
import type { Endpoints } from "../../protocol/endpoints.js";

const STATE_EVERY_MS = 500;
const MIN_DECISION_GAP_MS = 2000;

export interface AggregateTally {
  /** Aggregates received per cage, with their window-end times (ms). */
  times: Map<string, number[]>;
}

export class TestActuatorPublishers {
  readonly tally: AggregateTally = { times: new Map() };
  statesPublished = 0;
  decisionsPublished = 0;
  private readonly cpu: ActuatorLink;
  private readonly balloon: ActuatorLink;
  private readonly lastState = new Map<string, number>();
  private readonly lastDecision = new Map<string, { timeMs: number; value: number }>();

  constructor(endpoints: Endpoints, logger: Logger) {
    const actuators = endpoints.actuators;
    if (actuators?.cpu === undefined || actuators.balloon === undefined) throw new Error("test actuators: endpoints.actuators.cpu and .balloon are needed");
    this.cpu = new ActuatorLink({ aggregates: endpoints.aggregates, publish: actuators.cpu, logger, onAggregate: (a) => this.onAggregate(a) });
    this.balloon = new ActuatorLink({ aggregates: endpoints.aggregates, publish: actuators.balloon, logger, onAggregate: () => {} });
  }

  /** Aggregates the links saw lost (sequence gaps). */
  get lostAggregates(): number {
    return this.cpu.lostAggregates;
  }

  async start(): Promise<void> {
    await this.cpu.start();
    await this.balloon.start();
  }

  async close(): Promise<void> {
    await this.cpu.close();
    await this.balloon.close();
  }

  private onAggregate(a: CageAggregate): void {
    const times = this.tally.times.get(a.cage) ?? [];
    times.push(a.timeMs);
    this.tally.times.set(a.cage, times);
    const now = Date.now();
    if (now - (this.lastState.get(a.cage) ?? 0) < STATE_EVERY_MS) return;
    this.lastState.set(a.cage, now);

    // CPU: the VM gets what the cap leaves the IDS.
    const vmCap = Math.max(5, Math.round(a.capPct - a.ids.cpuPct));
    this.cpu.publishState({ v: 1, actuator: "cpu", cage: a.cage, timeMs: now, mode: "active", backend: "test-fake", values: { vmCpuCapPct: vmCap } });
    this.maybeDecide("cpu", a.cage, "vm.cpu.cap", vmCap, 5, `test: ids ${a.ids.cpuPct.toFixed(0)}% of cap ${a.capPct}%`, this.cpu);

    // Balloon: take from the VM what the IDS holds, never below the floor; "actual" trails it.
    const base = a.memory.baseBytes ?? 0;
    const floor = a.memory.floorBytes ?? 0;
    const idsHeld = a.ids.rssBytes + a.ids.pageCacheBytes;
    const target = Math.max(floor, base - idsHeld);
    const actual = Math.min(base, target + 64 * 2 ** 20);
    this.balloon.publishState({
      v: 1, actuator: "balloon", cage: a.cage, timeMs: now, mode: "active", backend: "test-fake",
      values: { vmTargetBytes: target, vmActualBytes: actual, movedBytes: base - target, balloonStuck: 1 },
    });
    this.statesPublished += 2;
    this.maybeDecide("balloon", a.cage, "vm.memory.target", target, 2 ** 20, "test: IDS memory moved out of the VM", this.balloon);
  }

  private maybeDecide(actuator: string, cage: string, setting: string, value: number, minChange: number, reason: string, link: ActuatorLink): void {
    const key = `${actuator}/${cage}`;
    const last = this.lastDecision.get(key);
    const now = Date.now();
    if (last !== undefined && (Math.abs(last.value - value) < minChange || now - last.timeMs < MIN_DECISION_GAP_MS)) return;
    link.publishDecision({ v: 1, actuator, cage, timeMs: now, setting, from: last?.value ?? null, to: value, reason, dryRun: false });
    this.lastDecision.set(key, { timeMs: now, value });
    this.decisionsPublished++;
  }
}
