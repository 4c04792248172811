// The cage scheduler on VMs named by systemd units (units.vm), through a fake systemctl (PID 1 is
// not systemd here): the unit's CPUQuota follows cap − IDS and its original comes back on stop; a
// cage whose unit does not exist is in error, names the unit, and the other cage goes on.
// The restore guardian is the real one (it accepts the systemctl restore command).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CageSpec } from "../../../config/cageConfig.js";
import { CpuActuator } from "../../../actuators/cpu/cpuActuator.js";
import { readMounts } from "../../../actuators/common/cgroupCpuBackend.js";
import { backendForCage } from "../../../actuators/cpu/backends/selectBackend.js";
import { systemctlClient } from "../../../host/systemd/unitProperties.js";
import { AggregateFeeder, agentConfig, aggregate, capturingLogger, waitFor } from "../actuatorHarness.js";
import { fakeSystemctl } from "../../host/systemd/fakeSystemctl.js";

const VM = "machine-qemu\\x2d1\\x2dweb.scope";

function unitCage(name: string, unit: string): CageSpec {
  return { name, vm: { kind: "process", match: [{ comm: "qemu-system-x86", descendants: true }] }, ids: [], cpu: { cap: 50, idsCap: null, weight: null }, memory: null, units: { ids: null, vm: unit } };
}

void test("units.vm: CPUQuota = cage cap − IDS, the original back on stop; a unit that does not exist fails that cage only", async () => {
  const systemctl = fakeSystemctl({ [VM]: { CPUQuotaPerSecUSec: "infinity", CPUWeight: "[not set]" } });
  const dir = mkdtempSync(join(tmpdir(), "oc-cpuact-units-"));
  const endpoint = `ipc://${join(dir, "agg.sock")}`;
  const cages = [unitCage("ghost", "nosuch.scope"), unitCage("web", VM)];
  const feeder = new AggregateFeeder(endpoint, () => cages.map((c) => aggregate(c.name, { idsPct: 30, capPct: 50 })));
  const mounts = readMounts();
  const { logger, records } = capturingLogger();
  const s = new CpuActuator({
    config: agentConfig(cages),
    spec: { dryRun: false, periodMs: 100, staleAfterMs: 2000, guardianStartTimeoutMs: 10_000, hostCapacityPct: null, minChangePct: 1, idsHoldMs: 0, actOnAggregate: true },
    aggregates: endpoint,
    publish: null,
    logger,
    hostCapacityPct: 200,
    backendFor: (cage) => backendForCage(cage, mounts, { units: () => systemctlClient(systemctl.program) }),
  });
  try {
    await feeder.start();
    await s.start();
    await waitFor("web's quota: cap 50 − IDS 30", () => systemctl.props(VM).get("CPUQuota") === "20%");
    const states = new Map(s.states().map((st) => [st.cage, st]));
    assert.equal(states.get("web")?.backend, "systemd");
    assert.equal(states.get("ghost")?.mode, "error");
    assert.ok(
      records.some((r) => JSON.stringify(r).includes("unit nosuch.scope does not exist (LoadState=not-found)")),
      "the missing unit is named in the log",
    );
    assert.ok(!systemctl.calls().some((c) => c.startsWith("set-property") && c.includes("nosuch.scope")), "nothing was set on the missing unit");
  } finally {
    await s.stop();
    await feeder.close();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(systemctl.props(VM).get("CPUQuota"), "", "no quota again: the original");
  systemctl.remove();
});
