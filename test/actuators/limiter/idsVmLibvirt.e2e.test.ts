// The IDS limiter holding a libvirt IDS-VM at idsCap on a real libvirtd (scripts/libvirt-lab.sh, a
// private daemon) with the project's test guest as the domain: `virsh schedinfo --set
// global_quota` in either limiter mode, the quota as found put back on stop, and by the guardian
// (failsafe release) after the limiter is SIGKILLed. Run under both locks:
//   flock /tmp/oc-e2e.lock flock /tmp/oc-qemu.lock node --test dist/test/actuators/limiter/idsVmLibvirt.e2e.test.js
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentConfig, LimiterActuatorSpec } from "../../../config/cageConfig.js";
import { parseVirshSchedinfo } from "../../../actuators/common/virshSchedinfo.js";
import { readMounts } from "../../../actuators/common/cgroupCpuBackend.js";
import { LimiterActuator } from "../../../actuators/limiter/limiterActuator.js";
import { LibvirtLab } from "../../../lab/common/libvirtLab.js";
import { CAGE_JS } from "../../cli/cliHarness.js";
import { AggregateFeeder, agentConfig, aggregate, capturingLogger, stopChild, waitFor, waitForAsync, writeCageFile } from "../actuatorHarness.js";

const DOM = "oc-idsvm";
const IDS_CAP = 30;
let lab: LibvirtLab;

before(async () => {
  lab = await LibvirtLab.start();
  await lab.define(DOM, { memoryMiB: 256 });
  await lab.virsh("start", DOM);
});

after(async () => {
  await lab.stop();
});

async function schedinfo(): Promise<Map<string, number>> {
  return parseVirshSchedinfo(await lab.virsh("schedinfo", DOM, "--live"), "virsh schedinfo").params;
}

/** Waits until the domain's global_quota is `want`. */
async function quotaBecomes(what: string, want: number, timeoutMs: number): Promise<void> {
  await waitForAsync(`${what} (global_quota ${want})`, async () => (await schedinfo()).get("global_quota") === want, timeoutMs);
}

function config(cage: string): AgentConfig {
  return agentConfig([{ name: cage, vm: { kind: "process", match: [{ pid: 1, descendants: false }] }, ids: [], idsVms: [{ kind: "libvirt", domain: DOM, uri: lab.uri }], cpu: { cap: 100, idsCap: IDS_CAP, weight: null }, memory: null }]);
}

void test("libvirt IDS-VM (real libvirtd): held at idsCap through global_quota in either limiter mode, no IDS cgroup, the quota as found back on stop", { timeout: 120_000 }, async () => {
  const found = await schedinfo();
  const idsCapQuota = Math.round(((found.get("global_period") ?? 0) * IDS_CAP) / 100);
  for (const mode of ["cgroup", "sigstop"] as const) {
    const dir = mkdtempSync(join(tmpdir(), "oc-idsvm-libvirt-"));
    const cage = `idsvm${mode}${process.pid}`;
    const endpoint = `ipc://${join(dir, "agg.sock")}`;
    const feeder = new AggregateFeeder(endpoint, () => [aggregate(cage, { idsPct: 60 })]);
    const spec: LimiterActuatorSpec = { dryRun: false, periodMs: 100, staleAfterMs: 2000, guardianStartTimeoutMs: 10_000, mode, failsafe: "release" };
    const { logger } = capturingLogger();
    const s = new LimiterActuator({ config: config(cage), spec, aggregates: endpoint, publish: null, logger, mounts: readMounts(), originalsFiles: [join(dir, "originals.json")] });
    try {
      await feeder.start();
      await s.start();
      await quotaBecomes(`${mode}: the IDS-VM at idsCap ${IDS_CAP}%`, idsCapQuota, 20_000);
      const state = s.states().find((st) => st.cage === cage);
      assert.equal(state?.backend, "virsh");
      assert.equal(state?.values.idsCapPct, IDS_CAP);
      assert.equal(state?.mode, "active");
      assert.equal(s.cgroupPathOf(cage), null, "no IDS cgroup for a libvirt IDS-VM");
    } finally {
      await s.stop();
      await feeder.close();
      rmSync(dir, { recursive: true, force: true });
    }
    const after = await schedinfo();
    assert.equal(after.get("global_quota"), found.get("global_quota"), `${mode}: the quota as found is back`);
    assert.equal(after.get("cpu_shares"), found.get("cpu_shares"), `${mode}: the shares as found are back`);
  }
});

void test("libvirt IDS-VM (real libvirtd): `cage actuator limiter` SIGKILLed, its guardian puts the quota as found back (failsafe release)", { timeout: 120_000 }, async () => {
  const found = await schedinfo();
  const idsCapQuota = Math.round(((found.get("global_period") ?? 0) * IDS_CAP) / 100);
  const dir = mkdtempSync(join(tmpdir(), "oc-idsvm-libvirt-kill-"));
  const cage = `idsvmkill${process.pid}`;
  const endpoint = `ipc://${join(dir, "agg.sock")}`;
  const feeder = new AggregateFeeder(endpoint, () => [aggregate(cage, { idsPct: 60 })]);
  const file = writeCageFile(
    dir,
    ["  actuators:", "    limiter: { mode: cgroup, periodMs: 100, staleAfterMs: 2000, failsafe: release }"],
    [`  - name: ${cage}`, "    vm: { kind: process, match: [{ pid: 1, descendants: false }] }", `    ids: [{ vm: { kind: libvirt, domain: ${DOM}, uri: "${lab.uri}" } }]`, `    cpu: { cap: 100, idsCap: ${IDS_CAP} }`],
  );
  const limiter = spawn(process.execPath, [CAGE_JS, "actuator", "limiter", "--config", file, "--endpoint", endpoint, "--publish", `ipc://${join(dir, "lim.sock")}`], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  limiter.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  try {
    await feeder.start();
    await quotaBecomes(`the IDS-VM at idsCap (stderr: ${err.slice(-400)})`, idsCapQuota, 30_000);
    limiter.kill("SIGKILL");
    await waitFor("the limiter gone", () => limiter.exitCode !== null || limiter.signalCode !== null, 5000);
    await quotaBecomes("the guardian's restore of the quota as found", found.get("global_quota") as number, 10_000);
  } finally {
    await stopChild(limiter);
    await feeder.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
