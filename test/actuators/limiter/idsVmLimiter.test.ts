// The IDS limiter holding Xen IDS-VMs at idsCap, against the FAKE `xl` of
// test/actuators/cpu/fakeHypervisorTools.ts (no Xen hypervisor on this host; the Xen lab has one):
// it records every argv and answers with real captured output. What is checked is the commands the
// limiter and its guardian run: the cap set, the cap as found put back on stop and after SIGKILL.
// libvirt IDS-VMs are tested on a real libvirtd in idsVmLibvirt.e2e.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentConfig, LimiterActuatorSpec, VmSpec } from "../../../config/cageConfig.js";
import { LimiterActuator } from "../../../actuators/limiter/limiterActuator.js";
import { readMounts } from "../../../actuators/common/cgroupCpuBackend.js";
import { OriginalSettings } from "../../../actuators/common/originalSettings.js";
import { CAGE_JS } from "../../cli/cliHarness.js";
import { AggregateFeeder, agentConfig, aggregate, capturingLogger, stopChild, waitFor, writeCageFile } from "../actuatorHarness.js";
import { fakeXl, type FakeTool } from "../cpu/fakeHypervisorTools.js";

const has = (calls: string[][], argv: string[]): boolean => calls.some((c) => c.join(" ") === argv.join(" "));

function config(cage: string, idsVm: VmSpec, idsCap: number): AgentConfig {
  return agentConfig([{ name: cage, vm: { kind: "process", match: [{ pid: 1, descendants: false }] }, ids: [], idsVms: [idsVm], cpu: { cap: 100, idsCap, weight: null }, memory: null }]);
}

const cases: { name: string; idsVm: VmSpec; tool: () => FakeTool; backend: string; set: string[]; restore: string[][] }[] = [
  {
    name: "Xen IDS-VM (FAKE xl, credit1)",
    idsVm: { kind: "xen", domain: "domu1" },
    tool: () => fakeXl("credit"),
    backend: "xl-credit",
    set: ["sched-credit", "-d", "domu1", "-c", "30"],
    restore: [["sched-credit", "-d", "domu1", "-c", "0", "-w", "256"]],
  },
];

for (const c of cases) {
  void test(`${c.name}: held at idsCap in either mode, no IDS cgroup made, the cap as found restored on stop`, { timeout: 60_000 }, async () => {
    for (const mode of ["cgroup", "sigstop"] as const) {
      const dir = mkdtempSync(join(tmpdir(), "oc-idsvm-"));
      const tool = c.tool();
      const cage = `idsvm${mode}${process.pid}`;
      const endpoint = `ipc://${join(dir, "agg.sock")}`;
      const feeder = new AggregateFeeder(endpoint, () => [aggregate(cage, { idsPct: 60 })]);
      const spec: LimiterActuatorSpec = { dryRun: false, periodMs: 100, staleAfterMs: 2000, guardianStartTimeoutMs: 10_000, mode, failsafe: "release" };
      const { logger } = capturingLogger();
      const prog = { xl: join(tool.dir, "xl") };
      const s = new LimiterActuator({ config: config(cage, c.idsVm, 30), spec, aggregates: endpoint, publish: null, logger, mounts: readMounts(), programs: prog, originalsFiles: [join(dir, "originals.json")] });
      try {
        await feeder.start();
        await s.start();
        await waitFor(`${mode}: ${c.set.join(" ")}`, () => has(tool.calls(), c.set), 10_000);
        const state = s.states().find((st) => st.cage === cage);
        assert.equal(state?.backend, c.backend);
        assert.equal(state?.values.idsCapPct, 30);
        assert.equal(state?.mode, "active");
        assert.equal(s.cgroupPathOf(cage), null, "no IDS cgroup for a hypervisor IDS-VM");
        const setCalls = tool.calls().filter((a) => a.join(" ") === c.set.join(" ")).length;
        assert.equal(setCalls, 1, "the cap is set once, not on every tick");
      } finally {
        await s.stop();
        await feeder.close();
      }
      const calls = tool.calls();
      assert.deepEqual(calls.slice(-c.restore.length), c.restore, `${mode}: restore commands last`);
      tool.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

void test("FAKE xl: the limiter SIGKILLed, its guardian restores the Xen IDS-VM's cap (release) or leaves idsCap (hold)", { timeout: 90_000 }, async () => {
  for (const failsafe of ["release", "hold"] as const) {
    const dir = mkdtempSync(join(tmpdir(), "oc-idsvm-kill-"));
    const xl = fakeXl("credit");
    const cage = `idsvmkill${process.pid}`;
    const endpoint = `ipc://${join(dir, "agg.sock")}`;
    const feeder = new AggregateFeeder(endpoint, () => [aggregate(cage, { idsPct: 60 })]);
    const file = writeCageFile(
      dir,
      ["  actuators:", `    limiter: { mode: cgroup, periodMs: 100, staleAfterMs: 2000, failsafe: ${failsafe} }`],
      [`  - name: ${cage}`, "    vm: { kind: process, match: [{ pid: 1, descendants: false }] }", "    ids: [{ vm: { kind: xen, domain: domu1 } }]", "    cpu: { cap: 100, idsCap: 30 }"],
    );
    // The limiter and its guardian find the FAKE xl first on PATH, as they would the real one.
    const limiter = spawn(process.execPath, [CAGE_JS, "actuator", "limiter", "--config", file, "--endpoint", endpoint, "--publish", `ipc://${join(dir, "lim.sock")}`], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, PATH: `${xl.dir}:${process.env.PATH ?? ""}` } });
    let err = "";
    limiter.stderr?.on("data", (d: Buffer) => (err += d.toString()));
    try {
      await feeder.start();
      await waitFor(`cap 30 set (stderr: ${err.slice(-400)})`, () => has(xl.calls(), ["sched-credit", "-d", "domu1", "-c", "30"]), 20_000);
      const before = xl.calls().length;
      limiter.kill("SIGKILL");
      const want = failsafe === "release" ? ["sched-credit", "-d", "domu1", "-c", "0", "-w", "256"] : ["sched-credit", "-d", "domu1", "-c", "30", "-w", "256"];
      await waitFor(`the guardian runs ${want.join(" ")}`, () => has(xl.calls().slice(before), want));
    } finally {
      await stopChild(limiter);
      await feeder.close();
      xl.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

void test("FAKE xl: a cap recorded by an earlier run that died is what stop() puts back, not the idsCap it left", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "oc-idsvm-orig-"));
  const xl = fakeXl("credit");
  const cage = `idsvmorig${process.pid}`;
  const program = join(xl.dir, "xl");
  const originalsFile = join(dir, "originals.json");
  // What an earlier limiter recorded before capping the domain (its true cap, 7) and then died.
  new OriginalSettings("limiter", [originalsFile]).keep(`${cage}/ids-vm`, [{ op: "exec", key: "xl:domu1", argv: [program, "sched-credit", "-d", "domu1", "-c", "7", "-w", "256"] }]);
  const endpoint = `ipc://${join(dir, "agg.sock")}`;
  const feeder = new AggregateFeeder(endpoint, () => [aggregate(cage, { idsPct: 60 })]);
  const spec: LimiterActuatorSpec = { dryRun: false, periodMs: 100, staleAfterMs: 2000, guardianStartTimeoutMs: 10_000, mode: "cgroup", failsafe: "hold" };
  const s = new LimiterActuator({ config: config(cage, { kind: "xen", domain: "domu1" }, 30), spec, aggregates: endpoint, publish: null, logger: capturingLogger().logger, mounts: readMounts(), programs: { xl: program }, originalsFiles: [originalsFile] });
  try {
    await feeder.start();
    await s.start();
    await waitFor("cap 30 set", () => has(xl.calls(), ["sched-credit", "-d", "domu1", "-c", "30"]), 10_000);
  } finally {
    await s.stop();
    await feeder.close();
  }
  assert.deepEqual(xl.calls().at(-1), ["sched-credit", "-d", "domu1", "-c", "7", "-w", "256"]);
  assert.ok(!existsSync(originalsFile), "the record is dropped once the cap is back");
  xl.cleanup();
  rmSync(dir, { recursive: true, force: true });
});
