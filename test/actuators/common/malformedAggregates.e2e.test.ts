// The real CPU actuator and limiter processes (`cage actuator cpu|limiter`, real cgroup v1 cpu
// controller, real SIGSTOP) fed malformed-but-decodable aggregates, the kinds that once killed the
// CPU actuator and made the limiter drop the IDS: both stay alive, count every bad message in
// act.state, never treat one as fresh data (so both go to their fail-safe after staleAfterMs), and
// the limiter keeps limiting the real IDS (failsafe: hold). Run under the e2e lock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { encodeCageAggregates, encodeJson } from "../../../protocol/cageAggregate.js";
import { MessagePublisher } from "../../../protocol/messageBus.js";
import { Encoding, Topic } from "../../../protocol/wireFormat.js";
import { CAGE_JS } from "../../cli/cliHarness.js";
import { ActuatorListener, aggregate, childrenOf, killTree, procState, startBurner, startBurnerTree, testCpuCgroup, waitFor, writeCageFile } from "../actuatorHarness.js";

const STALE_AFTER_MS = 1000;
const FAILSAFE_CAP = 33;

/** The VM's CFS quota as % of one CPU (-1: no quota). */
function quotaPct(cgroup: string): number {
  const quota = Number(readFileSync(join(cgroup, "cpu.cfs_quota_us"), "utf8"));
  const period = Number(readFileSync(join(cgroup, "cpu.cfs_period_us"), "utf8"));
  return quota < 0 ? -1 : Math.round((quota / period) * 100);
}

/** The malformed aggregates from the chaos run: pids null, "1", missing, 1e308, -1e308, in vm and ids. */
function malformed(cage: string, idsPids: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (const bad of [null, "1", undefined, 1e308, -1e308, ["1"], [1e308], [-1]]) {
    for (const role of ["vm", "ids"] as const) {
      const a = JSON.parse(JSON.stringify(aggregate(cage, { idsPct: 50, vmPct: 20, idsPids, capPct: 100 }))) as Record<string, Record<string, unknown>>;
      const section = a[role] as Record<string, unknown>;
      if (bad === undefined) delete section.pids;
      else section.pids = bad;
      out.push(encodeJson({ v: 1, aggregates: [a] }));
    }
  }
  return out;
}

/** SIGTERM and wait (the actuators restore on a clean stop); SIGKILL after 10 s. */
async function stopActuator(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

void test("CPU actuator and limiter fed only malformed aggregates: alive, bad messages counted, fail-safe after staleAfterMs, IDS still limited", { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "oc-malformed-"));
  const cg = testCpuCgroup("malformed");
  mkdirSync(cg.path);
  const vm = startBurner();
  cg.add(vm.pid);
  const tree = startBurnerTree();
  const cage = `bad${process.pid}`;
  const config = writeCageFile(
    dir,
    [
      "  actuators:",
      `    cpu: { periodMs: 100, staleAfterMs: ${STALE_AFTER_MS}, hostCapacityPct: 200 }`,
      `    limiter: { mode: sigstop, periodMs: 100, staleAfterMs: ${STALE_AFTER_MS}, failsafe: hold }`,
    ],
    [
      `  - name: ${cage}`,
      `    vm: { kind: cgroup, path: ${cg.path} }`,
      `    ids: [{ pid: ${tree.pid}, uid: 0 }]`,
      `    cpu: { cap: 100, idsCap: 20, failsafeCap: ${FAILSAFE_CAP} }`,
    ],
  );
  const endpoint = `ipc://${join(dir, "agg.sock")}`;
  const publisher = new MessagePublisher();
  const listeners = { cpu: new ActuatorListener(), limiter: new ActuatorListener() };
  const children: Record<string, ChildProcess> = {};
  const stderr = { cpu: "", limiter: "" };
  let feeding: NodeJS.Timeout | null = null;
  try {
    await waitFor("the IDS stand-in's workers", () => childrenOf(tree.pid).length === 2);
    const idsPids = [tree.pid, ...childrenOf(tree.pid)];
    await publisher.bind(endpoint);
    for (const name of ["cpu", "limiter"] as const) {
      const publish = `ipc://${join(dir, `${name}.sock`)}`;
      const child = spawn(process.execPath, [CAGE_JS, "actuator", name, "--config", config, "--endpoint", endpoint, "--publish", publish], { stdio: ["ignore", "ignore", "pipe"] });
      child.stderr?.on("data", (d: Buffer) => (stderr[name] += d.toString()));
      children[name] = child;
      listeners[name].start(publish);
    }
    const modeOf = (name: "cpu" | "limiter"): string | undefined => listeners[name].states.filter((s) => s.cage === cage).at(-1)?.mode;

    // Phase 1: valid aggregates until both act on them.
    let phase: "valid" | "malformed" = "valid";
    const bad = malformed(cage, idsPids);
    let next = 0;
    feeding = setInterval(() => {
      if (phase === "valid") {
        void publisher.publish(Topic.cageAggregates, Encoding.json, encodeCageAggregates([aggregate(cage, { idsPct: 50, vmPct: 20, idsPids, capPct: 100 })]));
      } else {
        // Several bad messages per window, the mix rotating, as fast as a pipeline publishes.
        for (let k = 0; k < 4; k++) void publisher.publish(Topic.cageAggregates, Encoding.json, bad[next++ % bad.length] as Buffer);
      }
    }, 100);
    await waitFor(`both actuators active (stderr cpu: ${stderr.cpu.slice(-300)} limiter: ${stderr.limiter.slice(-300)})`, () => modeOf("cpu") === "active" && modeOf("limiter") === "active", 30_000);
    await waitFor("the VM capped from data (not the fail-safe)", () => quotaPct(cg.path) > 0 && quotaPct(cg.path) !== FAILSAFE_CAP);

    // Phase 2: only malformed aggregates.
    phase = "malformed";
    const switchedAt = Date.now();
    // The cap itself, sampled every 10 ms, says when the fail-safe is in place; act.state follows within its 1 s period.
    await waitFor("the VM at its fail-safe cap", () => quotaPct(cg.path) === FAILSAFE_CAP, STALE_AFTER_MS + 3_000);
    const failsafeAfterMs = Date.now() - switchedAt;
    await waitFor("both actuators reporting fail-safe", () => modeOf("cpu") === "failsafe" && modeOf("limiter") === "failsafe");
    // Keep the bad input coming for 3 s more: still alive, still fail-safe, IDS still duty-cycled.
    let samples = 0;
    let idsStoppedSamples = 0;
    const until = Date.now() + 3_000;
    while (Date.now() < until) {
      samples++;
      if (idsPids.some((p) => procState(p) === "T")) idsStoppedSamples++;
      assert.equal(quotaPct(cg.path), FAILSAFE_CAP, "the VM stays at its fail-safe cap");
      await sleep(20);
    }
    for (const name of ["cpu", "limiter"] as const) {
      const child = children[name] as ChildProcess;
      assert.equal(child.exitCode, null, `${name} actuator exited (stderr: ${stderr[name].slice(-500)})`);
      assert.equal(child.signalCode, null, `${name} actuator killed by a signal`);
      assert.equal(modeOf(name), "failsafe", `${name} still in fail-safe`);
      const invalid = listeners[name].states.filter((s) => s.cage === cage).at(-1)?.values.invalidAggregates ?? 0;
      assert.ok(invalid >= 20, `${name}: act.state invalidAggregates ${invalid}, expected the bad messages counted`);
      assert.doesNotMatch(stderr[name], /uncaught|TypeError|aggregate handler failed/i, `${name} stderr`);
    }
    assert.ok(idsStoppedSamples > samples * 0.3, `the real IDS is still limited: stopped in ${idsStoppedSamples} of ${samples} samples`);
    t.diagnostic(`VM at its fail-safe cap ${failsafeAfterMs} ms after the switch to malformed input (staleAfterMs ${STALE_AFTER_MS}); IDS stopped in ${idsStoppedSamples}/${samples} samples; invalidAggregates cpu ${listeners.cpu.states.at(-1)?.values.invalidAggregates}, limiter ${listeners.limiter.states.at(-1)?.values.invalidAggregates}`);
    assert.ok(failsafeAfterMs <= 1_500, `the VM reached its fail-safe cap ${failsafeAfterMs} ms after the input turned bad (staleAfterMs ${STALE_AFTER_MS})`);
  } finally {
    if (feeding !== null) clearInterval(feeding);
    for (const child of Object.values(children)) await stopActuator(child);
    for (const l of Object.values(listeners)) await l.close();
    await publisher.close();
    await killTree(tree);
    vm.kill("SIGKILL");
    cg.remove();
    rmSync(dir, { recursive: true, force: true });
  }
});
