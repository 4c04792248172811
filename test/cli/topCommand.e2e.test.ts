/**
 * `cage top` in a real terminal: a tmux pane of a fixed size runs a shell, the shell runs the
 * built CLI, and a real ZeroMQ publisher in this process plays the pipeline (agg.window) and the
 * three actuators (act.state) on private ipc:// sockets. What the pane shows is read back with
 * `tmux capture-pane`, the cursor and alternate screen with `tmux display -p`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { setTimeout as delay } from "node:timers/promises";
import { MessagePublisher } from "../../protocol/messageBus.js";
import { Encoding, Topic } from "../../protocol/wireFormat.js";
import { encodeCageAggregates, encodeJson, type CageAggregate } from "../../protocol/cageAggregate.js";
import type { ActuatorState } from "../../protocol/actuatorMessages.js";
import { defaultEndpoints } from "../../protocol/endpoints.js";
import { CAGE_JS, pidsMatching, runCage, startCage } from "./cliHarness.js";
import type { TopSnapshot } from "../../cli/topView.js";

const run = promisify(execFile);
const WIDTH = 100;
const HEIGHT = 30;
const MiB = 1048576;

/** A tmux server of our own (-L), so nothing here touches anyone else's sessions. */
class TmuxPane {
  readonly server = `oc-top-test-${process.pid}`;

  async tmux(...args: string[]): Promise<string> {
    return (await run("tmux", ["-L", this.server, ...args])).stdout;
  }

  async start(): Promise<void> {
    await this.tmux("-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", String(WIDTH), "-y", String(HEIGHT), "env", "PS1=shell$ ", "bash", "--norc", "--noprofile");
  }

  async screen(): Promise<string[]> {
    // capture-pane drops trailing blanks; so do we for the blank lines below the last one.
    return (await this.tmux("capture-pane", "-p", "-t", "top")).replace(/\n+$/, "").split("\n");
  }

  async display(format: string): Promise<string> {
    return (await this.tmux("display", "-p", "-t", "top", format)).trim();
  }

  async keys(...keys: string[]): Promise<void> {
    await this.tmux("send-keys", "-t", "top", ...keys);
  }

  /** Polls until `check` holds for the pane's screen; the loaded machine gets a generous limit. */
  async waitFor(what: string, check: (lines: string[]) => boolean, timeoutMs = 60_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    let lines: string[] = [];
    while (Date.now() < deadline) {
      lines = await this.screen();
      if (check(lines)) return lines;
      await delay(200);
    }
    throw new Error(`tmux pane: ${what} not seen within ${timeoutMs} ms; the pane shows:\n${lines.join("\n")}`);
  }

  async kill(): Promise<void> {
    await this.tmux("kill-server").catch(() => undefined);
  }
}

function aggregate(cage: string, vmPct: number, idsPct: number): CageAggregate {
  return {
    v: 1, cage, timeMs: Date.now(), windowSeconds: 0.1,
    vm: { cpuPct: vmPct, pids: [1], startTimes: [100], rssBytes: 300 * MiB },
    ids: { cpuPct: idsPct, pids: [2, 3], startTimes: [200, 300], rssBytes: 40 * MiB, pageCacheBytes: 25 * MiB },
    totalPct: vmPct + idsPct, capPct: 50, idsCapPct: 20, weight: null,
    memory: { baseBytes: 1024 * MiB, floorBytes: 256 * MiB },
  };
}

function actuatorState(actuator: string, cage: string, mode: ActuatorState["mode"], values: ActuatorState["values"] = {}): ActuatorState {
  return { v: 1, actuator, cage, timeMs: Date.now(), mode, backend: "test", values };
}

/** Plays the pipeline and the three actuators, each on its own socket as the agent lays them out. */
async function startPublishers(dir: string, opts: { undecodable?: boolean } = {}): Promise<{ aggregates: string; stop: () => Promise<void> }> {
  const endpoints = defaultEndpoints(dir);
  const pipeline = new MessagePublisher();
  await pipeline.bind(endpoints.aggregates);
  const actuators: Record<string, MessagePublisher> = {};
  for (const [name, ep] of Object.entries(endpoints.actuators ?? {})) {
    actuators[name] = new MessagePublisher();
    await actuators[name].bind(ep);
  }
  const tick = (): void => {
    // alpha: IDS light; beta: IDS heavy and over its cap. Sorted by name alpha comes first, by IDS% beta.
    void pipeline.publish(Topic.cageAggregates, Encoding.json, encodeCageAggregates([aggregate("alpha", 40, 10), aggregate("beta", 5, 60)]));
    void actuators.cpu?.publish(Topic.actuatorState, Encoding.json, encodeJson(actuatorState("cpu", "alpha", "active", { vmCpuCapPct: 40 })));
    void actuators.cpu?.publish(Topic.actuatorState, Encoding.json, encodeJson(actuatorState("cpu", "beta", "active", { vmCpuCapPct: 0 })));
    void actuators.limiter?.publish(Topic.actuatorState, Encoding.json, encodeJson(actuatorState("limiter", "beta", "failsafe", { idsCapPct: 20 })));
    void actuators.balloon?.publish(Topic.actuatorState, Encoding.json, encodeJson(actuatorState("balloon", "alpha", "dry-run", { vmTargetBytes: 768 * MiB, vmActualBytes: 1024 * MiB })));
    // A well-formed frame whose act.state does not decode: counted and skipped, never fatal.
    if (opts.undecodable) void actuators.limiter?.publish(Topic.actuatorState, Encoding.json, encodeJson({ ...actuatorState("limiter", "alpha", "active"), mode: "sleepy" }));
  };
  const timer = setInterval(tick, 100);
  return {
    aggregates: endpoints.aggregates,
    stop: async () => {
      clearInterval(timer);
      await pipeline.close();
      for (const p of Object.values(actuators)) await p.close();
    },
  };
}

const rowOf = (lines: string[], cage: string): number => lines.findIndex((l) => l.startsWith(`${cage} `));
const showsBothCages = (lines: string[]): boolean => rowOf(lines, "alpha") !== -1 && rowOf(lines, "beta") !== -1;
/**
 * Both cages with every actuator's state: each actuator publishes on its own socket, and top's
 * subscriptions to them come through at different moments, so one being shown says nothing of the others.
 */
const showsAllActuators = (lines: string[]): boolean =>
  showsBothCages(lines) && /\bdry$/.test(lines[rowOf(lines, "alpha")] ?? "") && /\bon +safe\b/.test(lines[rowOf(lines, "beta")] ?? "");

test("cage top in a real terminal: one header, keys sort and change the delay; q, Ctrl-C, SIGINT, SIGTERM and SIGHUP restore the screen", { timeout: 600_000 }, async (t) => {
  await run("tmux", ["-V"]).catch(() => assert.fail("tmux is not installed: scripts/ensure-test-tools.sh installs it"));
  const dir = mkdtempSync(join(tmpdir(), "oc-top-"));
  const publishers = await startPublishers(dir);
  const pane = new TmuxPane();
  t.after(async () => {
    await pane.kill();
    for (const pid of await pidsMatching(publishers.aggregates)) process.kill(pid, "SIGKILL");
    await publishers.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await pane.start();
  await pane.keys("echo before-top", "Enter");
  await pane.waitFor("the shell's echo", (l) => l.includes("before-top"));
  assert.equal(await pane.display("#{cursor_flag}"), "1", "the shell's cursor is visible");

  const topCommand = `${process.execPath} ${CAGE_JS} top --endpoint ${publishers.aggregates}`;
  const startTop = async (): Promise<string[]> => {
    await pane.keys("clear; echo before-top", "Enter");
    await pane.waitFor("the shell after clear", (l) => l[0] === "before-top" && l[1] === "shell$");
    await pane.keys(topCommand, "Enter");
    return pane.waitFor("cage top showing both cages with their actuators", showsAllActuators);
  };
  const assertRestored = async (how: string): Promise<void> => {
    const lines = await pane.waitFor(`the shell's screen back after ${how}`, (l) => l[0] === "before-top" && l[l.length - 1] === "shell$");
    assert.ok(!lines.some((l) => /^CAGE /.test(l)), `after ${how} no trace of top is left on the main screen:\n${lines.join("\n")}`);
    assert.equal(await pane.display("#{alternate_on}"), "0", `after ${how} the alternate screen is left`);
    assert.equal(await pane.display("#{cursor_flag}"), "1", `after ${how} the cursor is visible`);
    await pane.keys("echo exit=$?", "Enter");
    await pane.waitFor(`the exit status after ${how}`, (l) => l.includes("exit=0"));
  };

  // --- the view, sorting, delay, help, then q
  let lines = await startTop();
  assert.equal(await pane.display("#{alternate_on}"), "1", "top draws on the alternate screen");
  assert.equal(await pane.display("#{cursor_flag}"), "0", "top hides the cursor");
  assert.ok(!lines.includes("before-top"), "the shell's output is not on top's screen");
  assert.equal(lines.filter((l) => /^CAGE /.test(l)).length, 1, `exactly one header line:\n${lines.join("\n")}`);
  assert.ok(!lines.some((l) => /"level"|cage top:|Error/.test(l)), `no log lines:\n${lines.join("\n")}`);
  assert.match(lines[0] ?? "", /^cage top .*sort: CAGE asc {2}delay: 1s {2}\(h: help, q: quit\)/);
  assert.ok(rowOf(lines, "alpha") < rowOf(lines, "beta"), "sorted by cage name first");
  // 100 columns: the page cache, the balloon and all three modes fit; the beta cage is over its cap.
  assert.match(lines.find((l) => /^CAGE /.test(l)) ?? "", /IDS PC +BAL TGT\/ACT +CPU +LIM +BAL/);
  assert.match(lines[rowOf(lines, "alpha")] ?? "", /25M +768M\/1\.0G on +- +dry$/);
  assert.match(lines[rowOf(lines, "beta")] ?? "", /65\/50! .* 25M +- on +safe +-$/);

  await pane.keys(">", ">"); // cage → VM% → IDS%
  lines = await pane.waitFor("the sort by IDS%", (l) => /sort: IDS% desc/.test(l[0] ?? "") && showsBothCages(l));
  assert.ok(rowOf(lines, "beta") < rowOf(lines, "alpha"), `sorted by IDS% the busy IDS comes first:\n${lines.join("\n")}`);
  await pane.keys("r");
  lines = await pane.waitFor("the reversed sort", (l) => /sort: IDS% asc/.test(l[0] ?? "") && showsBothCages(l));
  assert.ok(rowOf(lines, "alpha") < rowOf(lines, "beta"), "reversed");
  await pane.keys("d");
  await pane.waitFor("the next delay", (l) => /delay: 2s/.test(l[0] ?? ""));
  await pane.keys("h");
  await pane.waitFor("the help", (l) => l.includes("cage top keys"));
  await pane.keys("x");
  await pane.waitFor("the table after the help", (l) => !l.includes("cage top keys") && showsBothCages(l));
  // A narrower terminal: top re-lays out on SIGWINCH, dropping columns instead of wrapping.
  await pane.tmux("resize-window", "-t", "top", "-x", "70", "-y", String(HEIGHT));
  lines = await pane.waitFor("the 70-column layout", (l) => /^CAGE +VM% +IDS% +TOT\/CAP +IDS PC +CPU +LIM +BAL$/.test(l[1] ?? "") && showsBothCages(l));
  for (const l of lines) assert.ok(l.length <= 70, `a line wider than the pane: ${l}`);
  await pane.tmux("resize-window", "-t", "top", "-x", String(WIDTH), "-y", String(HEIGHT));
  await pane.waitFor("the 100-column layout again", (l) => /BAL TGT\/ACT/.test(l[1] ?? ""));
  await pane.keys("q");
  await assertRestored("q");

  // --- Ctrl-C arrives as a byte in raw mode
  await startTop();
  await pane.keys("C-c");
  await assertRestored("Ctrl-C");

  // --- signals from outside
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    await startTop();
    const pids = await pidsMatching(`top --endpoint ${publishers.aggregates}`);
    assert.equal(pids.length, 1, `one cage top process, got ${pids.join(", ")}`);
    process.kill(pids[0] as number, signal);
    await assertRestored(signal);
  }
});

/** Runs `cage top` into a pipe until `done` holds for what it printed, then SIGTERMs it. */
async function topIntoPipe(args: string[], done: (output: string) => boolean): Promise<{ output: string; code: number | null }> {
  const top = startCage(["top", ...args]);
  const exited = new Promise<number | null>((resolve) => top.child.on("exit", (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  while (!done(top.output())) {
    if (Date.now() > deadline) {
      top.child.kill("SIGKILL");
      throw new Error(`cage top ${args.join(" ")}: expected output not seen within 60 s; it printed:\n${top.output().slice(-3000)}`);
    }
    await delay(200);
  }
  top.child.kill("SIGTERM");
  return { output: top.output(), code: await exited };
}

test("into a pipe: --json prints one snapshot per line, batch text has no escape sequences", { timeout: 300_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "oc-top-"));
  const publishers = await startPublishers(dir, { undecodable: true });
  t.after(async () => {
    await publishers.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  // Every actuator's socket heard from (cpu for both, the balloon for alpha, the limiter for beta): they connect one by one.
  const complete = (s: TopSnapshot): boolean =>
    s.cages.length === 2 &&
    s.cages.every((c) => c.actuators.cpu !== undefined) &&
    s.cages.find((c) => c.cage === "alpha")?.actuators.balloon !== undefined &&
    s.cages.find((c) => c.cage === "beta")?.actuators.limiter !== undefined;

  const json = await topIntoPipe(["--endpoint", publishers.aggregates, "--json", "--sort", "ids-cpu", "--delay", "0.5"], (out) =>
    out.split("\n").some((l) => l.startsWith("{") && l.endsWith("}") && complete(JSON.parse(l) as TopSnapshot) && (JSON.parse(l) as TopSnapshot).invalidFrames > 0));
  assert.equal(json.code, 0, "SIGTERM ends it cleanly");
  // The harness merges stderr into the output: the warnings are the lines that are not JSON.
  const snapshots = json.output.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as TopSnapshot);
  assert.match(json.output, /^cage top: ignored a bad act\.state message: frame 2 \(actuator state\) field mode: must be one of/m);
  const last = snapshots.filter(complete).at(-1);
  assert.ok(last);
  assert.equal(last.endpoint, publishers.aggregates);
  assert.ok(last.invalidFrames > 0, "the undecodable act.state messages are counted");
  assert.equal(last.lostMessages, 0);
  assert.deepEqual(last.cages.map((c) => c.cage), ["beta", "alpha"], "in the --sort order");
  const [beta, alpha] = last.cages;
  assert.equal(alpha?.balloonTargetBytes, 768 * MiB);
  assert.equal(alpha?.balloonActualBytes, 1024 * MiB);
  assert.deepEqual(alpha?.actuators.balloon, { mode: "dry-run", backend: "test" });
  assert.deepEqual(beta?.actuators.limiter, { mode: "failsafe", backend: "test" });
  assert.equal(beta?.idsPageCacheBytes, 25 * MiB);
  assert.equal(beta?.idsCpuPct.toFixed(3), "60.000");

  const batch = await topIntoPipe(["--endpoint", publishers.aggregates, "--delay", "0.5"], (out) => /^alpha .*\n^beta .*safe/m.test(out));
  assert.equal(batch.code, 0);
  assert.ok(!batch.output.includes("\x1b"), "no terminal control in a pipe");
  assert.match(batch.output, /^CAGE +VM% +IDS% +TOTAL\/CAP +IDSCAP +VM RSS +IDS RSS +IDS PC +BAL TGT\/ACT CPU ACT +LIMITER +BALLOON +PIDS$/m);
  assert.doesNotMatch(batch.output, /q: quit/, "no key hint without keys");

  const once = await runCage(["top", "--endpoint", publishers.aggregates, "--json", "--once"]);
  assert.equal(once.code, 0, once.stderr);
  assert.equal(once.stdout.trimEnd().split("\n").length, 1, "--once: exactly one snapshot on stdout");
  assert.equal((JSON.parse(once.stdout) as TopSnapshot).v, 1);
});

test("cage top rejects bad flags with exit 2 and a message naming them", async () => {
  const sort = await runCage(["top", "--sort", "cpu"]);
  assert.equal(sort.code, 2);
  assert.match(sort.stderr, /--sort must be cage, vm-cpu, .* got "cpu"/);
  const both = await runCage(["top", "--json", "--batch"]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--json and --batch: choose one/);
  const delayFlag = await runCage(["top", "--delay", "0"]);
  assert.equal(delayFlag.code, 2);
  assert.match(delayFlag.stderr, /--delay must be a number >= 0.1, got "0"/);
  const stray = await runCage(["top", "extra"]);
  assert.equal(stray.code, 2);
  assert.match(stray.stderr, /unexpected argument "extra"/);
});
