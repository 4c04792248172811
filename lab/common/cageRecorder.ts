/**
 * The QEMU-guest labs' recorder, in the guest: subscribes to what the agent publishes and keeps
 * one cage's 1 s windows and aggregates, and every other message for the lab to sort (the Xen lab
 * its xentrace windows and collector statuses, both labs the actuators' JSON messages).
 */
import { MessageSubscriber } from "../../protocol/messageBus.js";
import { Topic } from "../../protocol/wireFormat.js";
import { decodeCageAggregates, type CageAggregate } from "../../protocol/cageAggregate.js";
import { say } from "./guestCommands.js";

/** One 1 s window of the cage as the agent saw it (its aggregate from `agg.window`, trimmed). */
export interface CageWindow {
  timeMs: number;
  windowSeconds: number;
  vmPct: number;
  idsPct: number;
  totalPct: number;
  capPct: number;
}

/** An actuator's `act.state` / `act.decision` message as the recorder keeps it (JSON text). */
export interface RecordedActuatorMessage {
  topic: string;
  payload: string;
}

export class CageRecorder {
  readonly windows: CageWindow[] = [];
  readonly aggregates: CageAggregate[] = [];
  /** Messages on the other topics, unless keep() took them. */
  readonly other: RecordedActuatorMessage[] = [];
  latest: CageAggregate | null = null;
  private readonly sub = new MessageSubscriber();
  private readonly done: Promise<void>;

  /** Connects to `endpoints` and subscribes to `cage`'s aggregates and to `topics`. */
  constructor(
    private readonly cage: string,
    endpoints: readonly string[],
    topics: readonly string[],
  ) {
    for (const ep of endpoints) this.sub.connect(ep);
    this.sub.subscribe(Topic.cageAggregates, ...topics);
    this.done = this.consume();
  }

  private async consume(): Promise<void> {
    for await (const m of this.sub.messages((err) => say(`bad frame: ${err.message}`))) {
      try {
        if (m.topic === Topic.cageAggregates) {
          const a = decodeCageAggregates(m.payload).aggregates.find((x) => x.cage === this.cage);
          if (a === undefined) continue;
          this.aggregates.push(a);
          this.latest = a;
          this.windows.push({ timeMs: a.timeMs, windowSeconds: a.windowSeconds, vmPct: a.vm.cpuPct, idsPct: a.ids.cpuPct, totalPct: a.totalPct, capPct: a.capPct });
        } else if (!this.keep(m.topic, m.payload)) {
          this.other.push({ topic: m.topic, payload: m.payload.toString("utf8") });
        }
      } catch (err) {
        say(`bad message on ${m.topic}: ${(err as Error).message}`);
      }
    }
  }

  /** A message on another topic, for a lab that keeps some itself: true when it did. May throw on a bad one. */
  protected keep(_topic: string, _payload: Buffer): boolean {
    return false;
  }

  async close(): Promise<void> {
    this.sub.close();
    await this.done;
  }
}
