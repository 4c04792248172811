import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { Writable } from "node:stream";
import { launchArgs, PARENT_WATCH_PRELOAD, Supervisor } from "../../runtime/supervisor.js";
import { AGENT_NODE_FLAGS } from "../../runtime/agentNodeFlags.js";
import { SUPERVISOR_KILL_MARGIN_MS } from "../../runtime/processRuntime.js";
import { processExists } from "../../host/proc/processTable.js";
import { waitFor } from "../pipeline/pipelineHarness.js";

const silent = pino({ level: "silent" });

/** A shell that ignores SIGTERM, and says so once the trap is set: a SIGTERM before that would kill it. */
const IGNORES_TERM = ["-c", "trap '' TERM; echo trap-set; while :; do sleep 0.05; done"];

test("a child that dies is restarted, and stop() leaves no child behind", async () => {
  const sup = new Supervisor(silent, { initialMs: 50, maxMs: 200, healthyAfterMs: 10_000 }, 2_000);
  sup.start({ name: "sleeper", command: "sleep", args: ["60"] });
  await sleep(200);
  const first = sup.pidOf("sleeper") as number;
  assert.ok(first && processExists(first));
  process.kill(first, "SIGKILL");
  await waitFor("a restart", () => sup.pidOf("sleeper") !== first && sup.pidOf("sleeper") !== undefined);
  const second = sup.pidOf("sleeper") as number;
  assert.ok(second && second !== first && processExists(second), "restarted with a new pid");
  assert.equal(sup.restartsOf("sleeper"), 1);
  await sup.stop();
  assert.equal(processExists(second), false);
});

test("a child that ignores SIGTERM is killed after the grace period", async () => {
  const { lines, output } = lineCollector();
  const sup = new Supervisor(silent, { initialMs: 50, maxMs: 200, healthyAfterMs: 10_000 }, 300, output);
  sup.start({ name: "stubborn", command: "sh", args: IGNORES_TERM });
  await waitFor("the trap set", () => lines.includes("trap-set\n"));
  const pid = sup.pidOf("stubborn") as number;
  const t0 = Date.now();
  await sup.stop();
  assert.ok(Date.now() - t0 >= 250, "waited for the grace period");
  assert.equal(processExists(pid), false);
});

test("a child is SIGKILLed only after its own stop deadline plus the margin", async () => {
  const { lines, output } = lineCollector();
  const sup = new Supervisor(silent, { initialMs: 50, maxMs: 200, healthyAfterMs: 10_000 }, 100, output);
  const spec = { name: "slow-stopper", command: "sh", args: IGNORES_TERM, stopTimeoutMs: 300 };
  assert.equal(sup.killAfterMs(spec), 300 + SUPERVISOR_KILL_MARGIN_MS);
  sup.start(spec);
  await waitFor("the trap set", () => lines.includes("trap-set\n"));
  const pid = sup.pidOf("slow-stopper") as number;
  const t0 = Date.now();
  await sup.stop();
  const took = Date.now() - t0;
  assert.ok(took >= 300 + SUPERVISOR_KILL_MARGIN_MS - 50, `killed after ${took} ms, inside the child's deadline + margin`);
  assert.equal(processExists(pid), false);
});

/** An output stream that keeps every chunk written to it. */
function lineCollector(): { lines: string[]; output: Writable } {
  const lines: string[] = [];
  const output = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, output };
}

test("a child's log lines go to the supervisor's output stream", async () => {
  const { lines, output } = lineCollector();
  const sup = new Supervisor(silent, { initialMs: 50, maxMs: 200, healthyAfterMs: 10_000 }, 2_000, output);
  sup.start({ name: "talker", command: "sh", args: ["-c", "echo out-line; echo err-line >&2; sleep 60"] });
  await waitFor("both lines", () => lines.length >= 2).catch(() => undefined); // the assertion below names what came
  await sup.stop();
  assert.deepEqual(lines.sort(), ["err-line\n", "out-line\n"]);
});

test("stopChild stops one child for good; replace restarts it under a new spec; the others run on", async () => {
  const sup = new Supervisor(silent, { initialMs: 50, maxMs: 200, healthyAfterMs: 10_000 }, 2_000);
  sup.start({ name: "a", command: "sleep", args: ["60"] });
  sup.start({ name: "b", command: "sleep", args: ["60"] });
  await sleep(200);
  const a = sup.pidOf("a") as number;
  const b = sup.pidOf("b") as number;
  await sup.replace({ name: "a", command: "sleep", args: ["61"] });
  const a2 = sup.pidOf("a") as number;
  assert.equal(processExists(a), false, "the old child is gone");
  assert.ok(a2 !== a && processExists(a2), "a new child runs");
  assert.deepEqual(sup.specOf("a")?.args, ["61"]);
  assert.equal(sup.restartsOf("a"), 0, "a replacement is not a crash restart");
  assert.equal(sup.pidOf("b"), b, "b untouched");
  await sup.stopChild("b");
  await sleep(400);
  assert.equal(processExists(b), false);
  assert.equal(sup.pidOf("b"), undefined, "not restarted after stopChild");
  assert.deepEqual(sup.names(), ["a"]);
  await assert.rejects(sup.stopChild("b"), { message: "supervisor: no child named b" });
  await sup.stop();
  assert.equal(processExists(a2), false);
});

test("a node child runs with AGENT_NODE_FLAGS and the parent-watch preload; other commands get their arguments as given", async () => {
  assert.deepEqual(launchArgs({ command: "sleep", args: ["60"] }), ["60"]);
  const { lines, output } = lineCollector();
  const sup = new Supervisor(silent, { initialMs: 50, maxMs: 200, healthyAfterMs: 10_000 }, 2_000, output);
  const script = "console.log(JSON.stringify({ execArgv: process.execArgv })); setInterval(() => {}, 1000);";
  sup.start({ name: "flags", command: process.execPath, args: ["-e", script] });
  try {
    await waitFor("the child's line", () => lines.length > 0).catch(() => undefined); // the assertion below shows what came
    const seen = JSON.parse(lines[0] ?? "{}") as { execArgv?: string[] };
    // -e and its script are node options too: they follow.
    assert.deepEqual(seen.execArgv?.slice(0, AGENT_NODE_FLAGS.length + 2), [...AGENT_NODE_FLAGS, "--import", PARENT_WATCH_PRELOAD]);
    assert.ok(AGENT_NODE_FLAGS.includes("--max-semi-space-size=2"));
  } finally {
    await sup.stop();
  }
});
