import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { actuatorEndpointsBeside, parseTopFlags, startTop, type TopOptions } from "../../cli/topCommand.js";
import { Term } from "../../cli/topView.js";

/** A stream that says it is an 80x24 terminal and records what is written to it. */
function fakeTerminal(columns: () => number = () => 80): { out: NodeJS.WriteStream; written: () => string } {
  let text = "";
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.defineProperties(out, { isTTY: { value: true }, columns: { get: columns }, rows: { value: 24 } });
  return { out, written: () => text };
}

function options(out: NodeJS.WriteStream): TopOptions {
  // Nothing listens there: the view waits for aggregates.
  return { endpoint: "tcp://127.0.0.1:9", actuatorEndpoints: [], out, input: null, mode: "screen", title: "cage top test" };
}

test("screen mode enters the alternate screen with the cursor hidden and stop() restores both", async () => {
  const exitListeners = process.listenerCount("exit");
  const term = fakeTerminal();
  const view = startTop(options(term.out));
  assert.equal(process.listenerCount("exit"), exitListeners + 1, "a restore on process exit is armed");
  view.stop();
  await view.done;
  const text = term.written();
  assert.ok(text.startsWith(Term.enterAltScreen + Term.hideCursor), JSON.stringify(text.slice(0, 40)));
  assert.match(text, /waiting for aggregates/);
  assert.ok(text.endsWith(Term.showCursor + Term.leaveAltScreen), JSON.stringify(text.slice(-40)));
  assert.equal(process.listenerCount("exit"), exitListeners, "and disarmed once restored");
  view.stop();
  assert.equal(term.written(), text, "a second stop() writes nothing");
});

test("an exception while drawing stops the view, restores the terminal and rejects done with it", async () => {
  let calls = 0;
  const term = fakeTerminal(() => {
    if (++calls > 1) throw new Error("columns unavailable");
    return 80;
  });
  const view = startTop({ ...options(term.out), delayS: 0.1 });
  await assert.rejects(view.done, /columns unavailable/);
  assert.ok(term.written().endsWith(Term.showCursor + Term.leaveAltScreen));
});

test("the actuators' sockets are found beside an ipc aggregate endpoint, or given", () => {
  assert.deepEqual(actuatorEndpointsBeside("ipc:///run/oc/aggregates.sock"), [
    "ipc:///run/oc/actuator-cpu.sock",
    "ipc:///run/oc/actuator-limiter.sock",
    "ipc:///run/oc/actuator-balloon.sock",
  ]);
  assert.deepEqual(actuatorEndpointsBeside("tcp://127.0.0.1:5555"), []);
  assert.deepEqual(parseTopFlags(["--endpoint", "tcp://h:1", "--actuators", "tcp://h:2,tcp://h:3"], true).actuatorEndpoints, ["tcp://h:2", "tcp://h:3"]);
  assert.deepEqual(parseTopFlags(["--endpoint", "ipc:///x/aggregates.sock", "--actuators", "none"], true).actuatorEndpoints, []);
  assert.throws(() => parseTopFlags(["--actuators", "tcp://h:2,"], true), /--actuators: empty endpoint in "tcp:\/\/h:2,"/);
});

test("the output mode: screen on a terminal, batch into a pipe or with --batch / --once, json with --json", () => {
  const mode = (args: string[], tty: boolean): string => parseTopFlags(["--endpoint", "tcp://h:1", ...args], tty).mode;
  assert.equal(mode([], true), "screen");
  assert.equal(mode([], false), "batch");
  assert.equal(mode(["--batch"], true), "batch");
  assert.equal(mode(["--once"], true), "batch");
  assert.equal(mode(["--json"], true), "json");
  const f = parseTopFlags(["--endpoint", "tcp://h:1", "--delay", "2", "--sort", "ids-pagecache", "--duration", "5"], true);
  assert.deepEqual({ delayS: f.delayS, sort: f.sort, durationS: f.durationS, once: f.once }, { delayS: 2, sort: "ids-pagecache", durationS: 5, once: false });
});
