/**
 * Fuzz target for QMP replies: the balloon actuator's QMP back end (actuators/balloon/
 * qmpBalloonBackend.ts over qmpClient.ts) talks to a fake QMP server on a real UNIX socket. Per
 * case the fake sends the greeting, answers qmp_capabilities, then answers the back end's command
 * (query-balloon or balloon) with events and a reply, any of them mutated, and closes the
 * connection, so the next case connects again. The back end must resolve with a valid value or
 * reject with its own error (BalloonBackendError); anything else, or a process-level error while
 * the case runs, is a crash. Lines the client skips are counted by its protocol error counter.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isBalloonBackendError } from "../../actuators/balloon/balloonBackend.js";
import { QmpBalloonBackend } from "../../actuators/balloon/qmpBalloonBackend.js";
import { countRejection, crash, mutateBytes, mutateJson, newReport, type FuzzReport } from "./fuzzTargets.js";
import { SeededRandom } from "./seededRandom.js";

const GREETING = { QMP: { version: { qemu: { micro: 0, minor: 2, major: 7 }, package: "Debian 1:7.2+dfsg-7" }, capabilities: ["oob"] } };
const BALLOON_EVENT = { event: "BALLOON_CHANGE", data: { actual: 1_073_741_824 }, timestamp: { seconds: 1_700_000_000, microseconds: 5 } };
const OTHER_EVENTS: readonly unknown[] = [
  { event: "RESUME", timestamp: { seconds: 1_700_000_000, microseconds: 1 } },
  { event: "SHUTDOWN", data: { guest: true, reason: "guest-shutdown" }, timestamp: { seconds: 1, microseconds: 0 } },
];

export interface QmpFuzzReport extends FuzzReport {
  /** Lines the client skipped as not QMP (its protocolErrors counter). */
  protocolErrors: number;
  /** BALLOON_CHANGE events the back end took, and how many of those carried an `actual` that is no byte count. */
  balloonEvents: number;
  balloonEventsWithInvalidActual: number;
}

/** What the fake does in one case, drawn from the PRNG before the client asks. */
interface Script {
  greeting: Buffer;
  capabilitiesReply: (id: unknown) => Buffer;
  events: Buffer[];
  reply: (id: unknown) => Buffer;
  /** Send the lines in pieces at these byte offsets (a reader must reassemble lines). */
  splitAt: number[];
}

function line(value: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(value)}\n`);
}

/** A mutated line: structural or byte-level; a byte mutation may drop or add a newline. */
function mutatedLine(rng: SeededRandom, valid: unknown): Buffer {
  const body = mutateJson(rng, valid);
  return Buffer.concat([body, Buffer.from("\n")]);
}

function validReply(command: string, id: unknown, rng: SeededRandom): unknown {
  if (rng.chance(0.2)) return { error: { class: rng.pick(["GenericError", "DeviceNotActive", "CommandNotFound"]), desc: "fuzz" }, id };
  return command === "query-balloon" ? { return: { actual: 1_073_741_824 + 4096 * rng.int(1000) }, id } : { return: {}, id };
}

function drawScript(rng: SeededRandom, command: string): Script {
  const mutateGreeting = rng.chance(0.08);
  const mutateCapabilities = rng.chance(0.08);
  const events: Buffer[] = [];
  for (let k = rng.int(3); k > 0; k--) {
    const ev = rng.chance(0.7) ? BALLOON_EVENT : rng.pick(OTHER_EVENTS);
    events.push(rng.chance(0.6) ? mutatedLine(rng, ev) : line(ev));
  }
  const replyMode = rng.int(10); // 0-6 mutated, 7 raw garbage, 8-9 valid
  const garbage = mutateBytes(rng, Buffer.from('{"return": {"actual": 1}, "id": 1}'));
  // Draw every random choice now: the reply is built when the id is known.
  const replyValid = (id: unknown): unknown => validReply(command, id, new SeededRandom(rng.nextU32()));
  const replySeed = rng.nextU32();
  const reply = (id: unknown): Buffer => {
    const r2 = new SeededRandom(replySeed);
    if (replyMode <= 6) return mutatedLine(r2, replyValid(id));
    if (replyMode === 7) return Buffer.concat([garbage, Buffer.from("\n")]);
    return line(replyValid(id));
  };
  const capsSeed = rng.nextU32();
  const greetingSeed = rng.nextU32();
  const splitAt = rng.chance(0.3) ? [1 + rng.int(40), 41 + rng.int(80)] : [];
  return {
    greeting: mutateGreeting ? mutatedLine(new SeededRandom(greetingSeed), GREETING) : line(GREETING),
    capabilitiesReply: (id) => (mutateCapabilities ? mutatedLine(new SeededRandom(capsSeed), { return: {}, id }) : line({ return: {}, id })),
    events,
    reply,
    splitAt,
  };
}

/** Writes `data` in the pieces the script asks for. */
function writeSplit(socket: Socket, data: Buffer, splitAt: readonly number[]): void {
  let from = 0;
  for (const at of splitAt) {
    if (at > from && at < data.length) {
      socket.write(data.subarray(from, at));
      from = at;
    }
  }
  socket.write(data.subarray(from));
}

/** The fake QMP server: plays the current script on each connection, then closes it. */
class FakeQmpServer {
  private readonly server: Server;
  script: Script | null = null;
  readonly sockets = new Set<Socket>();

  constructor() {
    this.server = createServer((socket) => this.onConnection(socket));
  }

  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(path, () => resolve());
    });
  }

  private onConnection(socket: Socket): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => undefined); // the client may close first
    const script = this.script;
    if (script === null) {
      socket.destroy();
      return;
    }
    writeSplit(socket, script.greeting, script.splitAt);
    let buffered = "";
    socket.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("utf8");
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const text = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        let request: { execute?: unknown; id?: unknown };
        try {
          request = JSON.parse(text) as { execute?: unknown; id?: unknown };
        } catch {
          socket.destroy();
          return;
        }
        if (request.execute === "qmp_capabilities") {
          writeSplit(socket, script.capabilitiesReply(request.id), script.splitAt);
        } else {
          writeSplit(socket, Buffer.concat([...script.events, script.reply(request.id)]), script.splitAt);
          // Closing after the reply ends the case at once whatever the client made of it.
          socket.end();
        }
      }
    });
    // A client still waiting (a greeting or reply it did not take) learns at once that nothing more comes.
    socket.setTimeout(20, () => socket.destroy());
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Fuzzes the QMP back end with `cases` scripted conversations; resolves with the report. */
export async function fuzzQmpReplies(cases: number, seed: number): Promise<QmpFuzzReport> {
  const rng = new SeededRandom(seed);
  const r: QmpFuzzReport = { ...newReport("QMP replies", seed), protocolErrors: 0, balloonEvents: 0, balloonEventsWithInvalidActual: 0 };
  const dir = mkdtempSync(join(tmpdir(), "oc-qmp-fuzz-"));
  const socketPath = join(dir, "qmp.sock");
  const server = new FakeQmpServer();
  // An error that escapes the client (an uncaught exception or rejection) would end a real actuator.
  const escaped: string[] = [];
  const onEscape = (err: unknown): void => void escaped.push(String(err));
  process.on("uncaughtException", onEscape);
  process.on("unhandledRejection", onEscape);
  const backend = new QmpBalloonBackend(socketPath, { commandTimeoutMs: 1000, onProtocolError: () => r.protocolErrors++ });
  try {
    await server.listen(socketPath);
    let lastEvents = 0;
    for (let i = 0; i < cases; i++) {
      r.cases++;
      const command = rng.chance(0.5) ? "query-balloon" : "balloon";
      server.script = drawScript(rng, command);
      const escapedBefore = escaped.length;
      try {
        if (command === "query-balloon") {
          const actual = await backend.readActual();
          if (actual === null || !Number.isSafeInteger(actual) || actual < 0) crash(r, i, `readActual resolved with ${String(actual)}`);
          else r.accepted++;
        } else {
          await backend.apply(1 << 30);
          r.accepted++;
        }
      } catch (err) {
        if (isBalloonBackendError(err)) countRejection(r, `${command}: ${err.reason}`);
        else crash(r, i, `${command} threw ${String(err)}`);
      }
      if (backend.balloonChangeEvents > lastEvents) {
        lastEvents = backend.balloonChangeEvents;
        const a = backend.lastEventActualBytes;
        if (a === null || !Number.isSafeInteger(a) || a < 0) r.balloonEventsWithInvalidActual++;
      }
      if (escaped.length > escapedBefore) crash(r, i, `escaped the client: ${escaped.slice(escapedBefore).join("; ")}`);
      // The fake closed its end: wait until the client has seen it, so the next case starts a new connection.
      for (let k = 0; k < 300 && server.sockets.size > 0; k++) await new Promise((resolve) => setTimeout(resolve, 1));
      await new Promise((resolve) => setImmediate(resolve));
    }
    r.balloonEvents = backend.balloonChangeEvents;
  } finally {
    await backend.close();
    await server.close();
    process.off("uncaughtException", onEscape);
    process.off("unhandledRejection", onEscape);
    rmSync(dir, { recursive: true, force: true });
  }
  return r;
}
