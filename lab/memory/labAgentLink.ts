/**
 * What the lab hears from the agent it started: the balloon actuator's `act.state` and
 * `act.decision` for the lab's cage, and the page cache collector's `status` (to know it runs).
 */
import { decodeActuatorDecision, decodeActuatorState, type ActuatorDecision, type ActuatorState } from "../../protocol/actuatorMessages.js";
import { decodeCollectorStatus } from "../../protocol/cageAggregate.js";
import { MessageSubscriber } from "../../protocol/messageBus.js";
import { isProtocolError, Topic } from "../../protocol/wireFormat.js";

export interface AgentObservations {
  states: ActuatorState[];
  decisions: ActuatorDecision[];
  latestState: ActuatorState | null;
  pageCacheCollectorUp: boolean;
  malformed: number;
}

export class LabAgentLink {
  private readonly actuator = new MessageSubscriber();
  private readonly collector = new MessageSubscriber();
  private readonly loops: Promise<void>[] = [];
  readonly seen: AgentObservations = { states: [], decisions: [], latestState: null, pageCacheCollectorUp: false, malformed: 0 };

  constructor(
    private readonly cage: string,
    balloonEndpoint: string,
    pageCacheEndpoint: string,
  ) {
    this.actuator.connect(balloonEndpoint);
    this.actuator.subscribe(Topic.actuatorState, Topic.actuatorDecision);
    this.collector.connect(pageCacheEndpoint);
    this.collector.subscribe(Topic.status);
    this.loops.push(this.consumeActuator(), this.consumeCollector());
  }

  private async consumeActuator(): Promise<void> {
    for await (const msg of this.actuator.messages(() => this.seen.malformed++)) {
      try {
        if (msg.topic === Topic.actuatorState) {
          const s = decodeActuatorState(msg.payload);
          if (s.cage !== this.cage || s.actuator !== "balloon") continue;
          this.seen.states.push(s);
          this.seen.latestState = s;
        } else if (msg.topic === Topic.actuatorDecision) {
          const d = decodeActuatorDecision(msg.payload);
          if (d.cage === this.cage && d.actuator === "balloon") this.seen.decisions.push(d);
        }
      } catch (err) {
        if (!isProtocolError(err)) throw err;
        this.seen.malformed++;
      }
    }
  }

  private async consumeCollector(): Promise<void> {
    for await (const msg of this.collector.messages(() => this.seen.malformed++)) {
      try {
        const s = decodeCollectorStatus(msg.payload);
        if (s.collector === "pagecache" && (s.state === "started" || s.state === "running")) this.seen.pageCacheCollectorUp = true;
      } catch (err) {
        if (!isProtocolError(err)) throw err;
        this.seen.malformed++;
      }
    }
  }

  async close(): Promise<void> {
    this.actuator.close();
    this.collector.close();
    await Promise.allSettled(this.loops);
  }
}
