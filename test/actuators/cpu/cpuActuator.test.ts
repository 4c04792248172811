// The cage scheduler on a real cgroup v1 VM, fed aggregates over a real ZeroMQ socket: the VM's
// quota follows cap − IDS, stale data brings the fail-safe, the original comes back on stop and,
// after SIGKILL, from the guardian; dry-run changes no file. The Xen case uses a FAKE xl.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CageSpec, CpuActuatorSpec } from "../../../config/cageConfig.js";
import { CpuActuator } from "../../../actuators/cpu/cpuActuator.js";
import { readMounts } from "../../../actuators/common/cgroupCpuBackend.js";
import { backendForCage } from "../../../actuators/cpu/backends/selectBackend.js";
import type { CpuBackend } from "../../../actuators/common/cpuBackend.js";
import { CAGE_JS, runCage } from "../../cli/cliHarness.js";
import { ActuatorListener, AggregateFeeder, agentConfig, aggregate, capturingLogger, snapshotCgroup, startBurner, stopChild, testCpuCgroup, waitFor, writeCageFile } from "../actuatorHarness.js";
import { fakeXl } from "./fakeHypervisorTools.js";

const quotaOf = (path: string): string => readFileSync(join(path, "cpu.cfs_quota_us"), "utf8").trim();

function cgroupCage(name: string, path: string, cpu: Partial<CageSpec["cpu"]> = {}): CageSpec {
  return { name, vm: { kind: "cgroup", path }, ids: [], cpu: { cap: 50, idsCap: null, weight: null, ...cpu }, memory: null };
}


async function withActuator(
  cage: CageSpec,
  spec: Partial<CpuActuatorSpec>,
  idsPct: () => number,
  body: (s: CpuActuator, feeder: AggregateFeeder, listener: ActuatorListener) => Promise<void>,
  feed: { vmPids?: () => number[] } = {},
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "oc-cpuact-"));
  const endpoint = `ipc://${join(dir, "agg.sock")}`;
  const publish = `ipc://${join(dir, "act.sock")}`;
  const feeder = new AggregateFeeder(endpoint, () => [aggregate(cage.name, { idsPct: idsPct(), capPct: cage.cpu.cap, vmPids: feed.vmPids?.() ?? [] })]);
  const config = agentConfig([cage]);
  const mounts = readMounts();
  const { logger } = capturingLogger();
  const s = new CpuActuator({
    config,
    spec: { dryRun: false, periodMs: 100, staleAfterMs: 400, guardianStartTimeoutMs: 10_000, hostCapacityPct: null, minChangePct: 1, idsHoldMs: 0, actOnAggregate: true, ...spec },
    aggregates: endpoint,
    publish,
    logger,
    hostCapacityPct: 200,
    backendFor: () => backendForCage(cage, mounts),
    originalsFiles: [join(dir, "run", "originals-cpu.json"), join(dir, "state", "originals-cpu.json")],
  });
  const listener = new ActuatorListener();
  try {
    await feeder.start();
    await s.start();
    listener.start(publish);
    await body(s, feeder, listener);
  } finally {
    await s.stop();
    await listener.close();
    await feeder.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A decision is published once, and the first ones may come before the listener's subscription
 * has reached the actuator (ZeroMQ slow joiner): they are lost to it. act.state comes every second
 * once the cage has data, on the same socket, so after one the listener misses no decision.
 */
async function listening(listener: ActuatorListener): Promise<void> {
  await waitFor("the listener's first act.state", () => listener.states.length > 0);
}

void test("quota = cage cap − IDS; stale → fail-safe; back on fresh data; restored on stop", async () => {
  const cg = testCpuCgroup("act");
  mkdirSync(cg.path);
  let ids = 30;
  try {
    await withActuator(cgroupCage(`act${process.pid}`, cg.path, { failsafeCap: 45 }), {}, () => ids, async (s, feeder, listener) => {
      await waitFor("cap 50 − ids 30", () => quotaOf(cg.path) === "20000");
      ids = 0; // IDS idle: the VM gets the whole cage (work-conserving)
      await waitFor("whole cage", () => quotaOf(cg.path) === "50000");
      ids = 70; // the IDS alone over the cage: the VM keeps its floor (10% of 50)
      await waitFor("floor", () => quotaOf(cg.path) === "5000");
      await listening(listener);
      const before = listener.decisions.length;
      feeder.pause();
      await waitFor("fail-safe", () => quotaOf(cg.path) === "45000");
      assert.equal(s.states()[0]?.mode, "failsafe");
      ids = 10;
      feeder.resume();
      await waitFor("control again", () => quotaOf(cg.path) === "40000");
      await waitFor("the control decision published", () => listener.decisions.slice(before).some((x) => x.to === 40));
      // The first decision after the pause is the fail-safe's, for staleness.
      const d = listener.decisions[before]!;
      assert.ok(d.to === 45 && /stale/.test(d.reason) && d.dryRun === false && d.setting === "vm.cpu.cap", JSON.stringify(d));
      await waitFor("state published", () => listener.states.some((st) => st.mode === "active" && st.backend === "cgroup-v1"));
    });
    assert.equal(quotaOf(cg.path), "-1", "the original (no cap) is back after stop");
  } finally {
    cg.remove();
  }
});

void test("actOnAggregate: a window that arrives while a cap write runs is acted on when the write ends, not at the next period", async () => {
  const dir = mkdtempSync(join(tmpdir(), "oc-cpuact-slow-"));
  const endpoint = `ipc://${join(dir, "agg.sock")}`;
  let ids = 30;
  // "probe" rides in the same windows with a back end that never waits: once it has applied a cap
  // from the new IDS figure, "slow" has observed such a window too (one message, one pass).
  const feeder = new AggregateFeeder(endpoint, () => [aggregate("slow", { idsPct: ids, capPct: 50 }), aggregate("probe", { idsPct: ids, capPct: 50 })]);
  // A back end whose first write waits until the test lets it finish.
  let release: () => void = () => undefined;
  const firstWrite = new Promise<void>((resolve) => (release = resolve));
  const applied: { capPct: number | null }[] = [];
  const probeApplied: (number | null)[] = [];
  const fakeBackend = (apply: CpuBackend["apply"]): CpuBackend => ({
    kind: "fake",
    target: "fake",
    open: () => Promise.resolve(),
    prepare: () => Promise.resolve(),
    restoreActions: () => [],
    apply,
    adoptPids: () => Promise.resolve(),
    restore: () => Promise.resolve(),
  });
  const backend = fakeBackend(async (t) => {
    if (applied.length === 0) await firstWrite;
    applied.push({ capPct: t.capPct });
  });
  const probeBackend = fakeBackend((t) => {
    probeApplied.push(t.capPct);
    return Promise.resolve();
  });
  const cage: CageSpec = { name: "slow", vm: { kind: "cgroup", path: "/nonexistent" }, ids: [], cpu: { cap: 50, idsCap: null, weight: null }, memory: null };
  const probe: CageSpec = { ...cage, name: "probe" };
  const { logger } = capturingLogger();
  // A period far longer than the test: only the aggregates and the end of a write can act.
  const s = new CpuActuator({
    config: agentConfig([cage, probe]),
    spec: { dryRun: false, periodMs: 600_000, staleAfterMs: 600_000, guardianStartTimeoutMs: 10_000, hostCapacityPct: null, minChangePct: 1, idsHoldMs: 0, actOnAggregate: true },
    aggregates: endpoint,
    publish: `ipc://${join(dir, "act.sock")}`,
    logger,
    hostCapacityPct: 200,
    backendFor: (c) => (c.name === "probe" ? probeBackend : backend),
    originalsFiles: [join(dir, "run", "originals-cpu.json"), join(dir, "state", "originals-cpu.json")],
  });
  try {
    await feeder.start();
    await s.start();
    // The first aggregate starts the (held) write of 50 − 30; the IDS then drops and windows keep coming.
    await waitFor("first write under way", () => probeApplied.includes(20) && applied.length === 0);
    ids = 10;
    await waitFor("a window with the new IDS figure observed during the write", () => probeApplied.includes(40));
    assert.equal(applied.length, 0, "the first write is still held");
    feeder.pause();
    release();
    // The period (10 min) never comes during the test: only the end of the write can act.
    await waitFor("the window that came during the write applied", () => applied.length >= 2);
    // 50 − 30, then 50 − the mean IDS of the windows held back: at least one at 10% (the probe's),
    // maybe some at 30% that were already on their way when the figure changed.
    assert.equal(applied[0]!.capPct, 20);
    const second = applied[1]!.capPct ?? 0;
    assert.ok(second > 20 && second <= 40, `second cap ${second}`);
  } finally {
    release();
    await s.stop();
    await feeder.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

void test("weights: cpu.shares follows the reduced weight and comes back", async () => {
  const cg = testCpuCgroup("w");
  mkdirSync(cg.path);
  try {
    // Alone in the file (Σweight = its own), 200% host: share 200 × 1 − 50 = 150 of 200 → weight 75.
    await withActuator(cgroupCage(`w${process.pid}`, cg.path, { cap: 100, weight: 100 }), {}, () => 50, async () => {
      await waitFor("weight", () => readFileSync(join(cg.path, "cpu.shares"), "utf8").trim() === "768");
      assert.equal(quotaOf(cg.path), "50000");
    });
    assert.equal(readFileSync(join(cg.path, "cpu.shares"), "utf8").trim(), "1024");
  } finally {
    cg.remove();
  }
});

void test("actOnAggregate: the cap follows each aggregate, not the period tick (dry-run)", async () => {
  const cg = testCpuCgroup("onagg");
  mkdirSync(cg.path);
  try {
    for (const actOnAggregate of [true, false]) {
      // A period that never comes during the test: only aggregates can make a decision.
      let ids = 30;
      await withActuator(cgroupCage(`onagg${process.pid}`, cg.path), { dryRun: true, periodMs: 60_000, actOnAggregate }, () => ids, async (_s, _feeder, listener) => {
        const capDecisions = (): typeof listener.decisions => listener.decisions.filter((d) => d.setting === "vm.cpu.cap");
        if (!actOnAggregate) {
          // Without a tick the cage never leaves "waiting" (no act.state): nothing must be decided.
          await new Promise((r) => setTimeout(r, 1000));
          assert.deepEqual(capDecisions(), [], `actOnAggregate false: ${JSON.stringify(listener.decisions)}`);
          return;
        }
        await listening(listener);
        const before = capDecisions().length;
        ids = 10;
        await waitFor("a decision on the next windows", () => capDecisions().slice(before).some((d) => d.to === 40));
      });
    }
  } finally {
    cg.remove();
  }
});

void test("actOnAggregate: windows that arrive in a burst (after a stall) are acted on once, on all of them (dry-run)", async () => {
  const cg = testCpuCgroup("burst");
  mkdirSync(cg.path);
  try {
    await withActuator(cgroupCage(`burst${process.pid}`, cg.path), { dryRun: true, periodMs: 60_000 }, () => 30, async (s, feeder, listener) => {
      await waitFor("the first decision", () => s.decisions > 0);
      await listening(listener);
      feeder.pause();
      await new Promise((r) => setTimeout(r, 300));
      const before = listener.decisions.length;
      // Six windows at once, the IDS alternating 0% and 40%: one decision on their mean (20%), not six swings.
      const timeMs = Date.now();
      await Promise.all([0, 1, 2, 3, 4, 5].map((i) => feeder.publishNow([{ ...aggregate(`burst${process.pid}`, { idsPct: i % 2 === 0 ? 0 : 40, capPct: 50 }), timeMs: timeMs + i }])));
      // Hold the event loop so all six are queued before the actuator reads one, as after a stall.
      const until = Date.now() + 300;
      while (Date.now() < until) {
        // busy on purpose
      }
      const after = (): typeof listener.decisions => listener.decisions.slice(before).filter((d) => d.setting === "vm.cpu.cap");
      await waitFor("the burst's decision", () => after().length > 0);
      // A decision per window would follow within milliseconds of the first: give them time to show.
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(after().map((d) => d.to), [30], JSON.stringify(after()));
    });
  } finally {
    cg.remove();
  }
});

void test("dry-run: decisions are published with dryRun true and no cgroup file changes", async () => {
  const cg = testCpuCgroup("dry");
  mkdirSync(cg.path);
  try {
    const before = snapshotCgroup(cg.path);
    let ids = 30;
    await withActuator(cgroupCage(`dry${process.pid}`, cg.path), { dryRun: true }, () => ids, async (s, feeder, listener) => {
      await listening(listener);
      const heard = listener.decisions.length;
      const ours = (): typeof listener.decisions => listener.decisions.slice(heard);
      ids = 10;
      await waitFor("a dry-run decision", () => ours().some((d) => d.dryRun && d.to === 40));
      feeder.pause();
      await waitFor("a dry-run fail-safe decision", () => ours().some((d) => d.dryRun && d.to === 50));
      assert.equal(s.states()[0]?.mode, "dry-run");
      assert.deepEqual(snapshotCgroup(cg.path), before);
    });
    assert.deepEqual(snapshotCgroup(cg.path), before);
  } finally {
    cg.remove();
  }
});

void test("a cage whose back end cannot work is reported in error; the others carry on", async () => {
  const cage: CageSpec = { name: `bad${process.pid}`, vm: { kind: "cgroup", path: "/sys/fs/cgroup/cpu/does-not-exist-oc" }, ids: [], cpu: { cap: 50, idsCap: null, weight: null }, memory: null };
  await withActuator(cage, {}, () => 10, async (s) => {
    await waitFor("error state", () => s.states()[0]?.mode === "error");
    await waitFor("a failed apply (retried once a second)", () => s.applyErrors >= 1);
  });
});

void test("SIGKILL of `cage actuator cpu`: its guardian puts the fail-safe caps in place (cgroup, FAKE xl); the next run restores the true originals", { timeout: 90_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "oc-cpukill-"));
  const cg = testCpuCgroup("kill");
  mkdirSync(cg.path);
  const xl = fakeXl("credit");
  const endpoint = `ipc://${join(dir, "agg.sock")}`;
  const feeder = new AggregateFeeder(endpoint, () => [aggregate("vmcg", { idsPct: 30 }), aggregate("xenvm", { idsPct: 30 })]);
  const config = writeCageFile(
    dir,
    [
      "  actuators:",
      "    cpu: { periodMs: 100, staleAfterMs: 5000, hostCapacityPct: 200 }",
    ],
    [
      "  - name: vmcg",
      `    vm: { kind: cgroup, path: ${cg.path} }`,
      "    cpu: { cap: 50, failsafeCap: 40 }",
      "  - name: xenvm",
      "    vm: { kind: xen, domain: domu1 }",
      "    cpu: { cap: 60, weight: 100, failsafeCap: 45 }",
    ],
  );
  let stderr = "";
  const start = (): ChildProcess => {
    const child = spawn(process.execPath, [CAGE_JS, "actuator", "cpu", "--config", config, "--endpoint", endpoint], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, PATH: `${xl.dir}:${process.env.PATH ?? ""}` } });
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    return child;
  };
  let actuator = start();
  try {
    await feeder.start();
    await waitFor("cgroup capped", () => quotaOf(cg.path) === "20000", 15_000);
    // cap 60 − 30; weight share 200 × 100/200 − 30 = 70% vs the other cage's 100 → 54 → Xen 138.
    await waitFor("xen capped", () => xl.calls().some((c) => c.join(" ") === "sched-credit -d domu1 -c 30 -w 138"));
    const recorded = JSON.parse(readFileSync(join(dir, "state", "originals-cpu.json"), "utf8")) as { cages: Record<string, unknown[]> };
    assert.deepEqual(Object.keys(recorded.cages).sort(), ["vmcg", "xenvm"], "the originals are recorded in the state directory before the first change");
    assert.ok(existsSync(join(dir, "originals-cpu.json")), "and in the runtime directory");

    actuator.kill("SIGKILL");
    // A dead actuator fails safe, not open: the fail-safe cap, never "no limit".
    await waitFor("the cgroup at its fail-safe cap (40%)", () => quotaOf(cg.path) === "40000");
    await waitFor("xen at its fail-safe cap", () => xl.calls().at(-1)?.join(" ") === "sched-credit -d domu1 -c 45 -w 256");
    await stopChild(actuator);

    // The next run reads the fail-safe as found, but restores the recorded originals on its orderly stop.
    actuator = start();
    await waitFor("capped again by the new run", () => quotaOf(cg.path) === "20000", 15_000);
    const exited = new Promise<void>((resolve) => actuator.once("exit", () => resolve()));
    actuator.kill("SIGTERM"); // an orderly stop
    await exited;
    assert.equal(quotaOf(cg.path), "-1", `the true original (no quota), not the fail-safe leftover (stderr: ${stderr.slice(-1500)})`);
    assert.equal(xl.calls().at(-1)?.join(" "), "sched-credit -d domu1 -c 0 -w 256", "the true Xen original");
    assert.ok(!existsSync(join(dir, "state", "originals-cpu.json")), "the record is removed after a clean restore");
    assert.ok(!existsSync(join(dir, "originals-cpu.json")));
  } finally {
    await stopChild(actuator);
    await feeder.close();
    xl.cleanup();
    cg.remove();
    rmSync(dir, { recursive: true, force: true });
  }
});

void test("a process VM: its PIDs move into offloadcage/<cage>/vm, are capped, and go back on stop", async () => {
  const burner = startBurner(50);
  const cage: CageSpec = { name: `proc${process.pid}`, vm: { kind: "process", match: [{ pid: burner.pid, descendants: false }] }, ids: [], cpu: { cap: 60, idsCap: null, weight: null }, memory: null };
  const own = `/sys/fs/cgroup/cpu/offloadcage/${cage.name}/vm`;
  const cpuCgroupOf = (pid: number): string => /:cpu:(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, "utf8"))?.[1] ?? "";
  const before = cpuCgroupOf(burner.pid);
  try {
    await withActuator(cage, {}, () => 25, async () => {
      await waitFor("capped in its own cgroup", () => existsSync(own) && quotaOf(own) === "35000");
      await waitFor("PID moved in", () => cpuCgroupOf(burner.pid) === `/offloadcage/${cage.name}/vm`);
    }, { vmPids: () => [burner.pid] });
    assert.equal(cpuCgroupOf(burner.pid), before, "moved back where it was");
    assert.equal(existsSync(`/sys/fs/cgroup/cpu/offloadcage/${cage.name}`), false, "cgroup removed");
  } finally {
    await stopChild(burner);
  }
});

void test("cage actuator: usage errors exit 2 with a clear message", async () => {
  const none = await runCage(["actuator", "cpu"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /cage actuator cpu: --config FILE is required\nusage: cage actuator cpu --config FILE/);
  // The balloon actuator shares the same command line.
  const balloon = await runCage(["actuator", "balloon", "--config", "c.yaml", "--endpoint", "localhost"]);
  assert.equal(balloon.code, 2);
  assert.match(balloon.stderr, /cage actuator balloon: --endpoint must be ipc:\/\/\/absolute\/path or tcp:\/\/HOST:PORT, got "localhost"\nusage: cage actuator balloon --config FILE/);
  const help = await runCage(["actuator", "balloon", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: cage actuator balloon --config FILE/);
  const unknown = await runCage(["actuator", "balloonz"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^cage actuator: unknown subcommand "balloonz"; expected cpu, limiter or balloon\n/);
  const missing = await runCage(["actuator", "limiter", "--config", "/nonexistent/oc.yaml"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /\/nonexistent\/oc.yaml: .*cannot read config file: no such file/);
});
