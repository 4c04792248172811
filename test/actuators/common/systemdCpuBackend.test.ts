// The CPU back end on a systemd unit's CPUQuota and CPUWeight, against a fake systemctl (PID 1 is
// not systemd on this machine; the v2 guest lab runs the real one).
import { test } from "node:test";
import assert from "node:assert/strict";
import { systemctlClient } from "../../../host/systemd/unitProperties.js";
import { SystemdCpuBackend } from "../../../actuators/common/systemdCpuBackend.js";
import { parseGuardianLine } from "../../../actuators/common/guardianProtocol.js";
import { fakeSystemctl } from "../../host/systemd/fakeSystemctl.js";

const VM = "machine-qemu\\x2d1\\x2dvm.scope";

void test("SystemdCpuBackend: reads the originals, sets CPUQuota and CPUWeight, restores them, and hands the guardian a valid restore", async () => {
  const fake = fakeSystemctl({ [VM]: { CPUQuotaPerSecUSec: "1s 500ms", CPUWeight: "[not set]" } });
  try {
    const b = new SystemdCpuBackend(VM, systemctlClient(fake.program));
    await b.open();
    assert.deepEqual(b.originalSettings(), { quotaPct: 150, weight: null });
    await b.prepare();
    const [action] = b.restoreActions();
    assert.deepEqual(action, { op: "exec", key: "systemd:cpu:machine-qemu_x2d1_x2dvm.scope", argv: ["systemctl", "set-property", "--runtime", VM, "CPUQuota=150%", "CPUWeight="] });
    // What the guardian accepts on its stdin.
    assert.deepEqual(parseGuardianLine(JSON.stringify(action)).message, action);
    await b.apply({ capPct: 42.5, weight: 50 });
    assert.equal(fake.props(VM).get("CPUQuota"), "42.5%");
    assert.equal(fake.props(VM).get("CPUWeight"), "50");
    await b.apply({ capPct: null, weight: null });
    assert.equal(fake.props(VM).get("CPUQuota"), "150%", "no cap: the original quota");
    await b.restore();
    assert.equal(fake.props(VM).get("CPUWeight"), "", "the weight back to unset");
    const missing = new SystemdCpuBackend("nosuch.service", systemctlClient(fake.program));
    await assert.rejects(missing.open(), /^CpuBackendError: unit nosuch.service does not exist \(LoadState=not-found\)$/);
  } finally {
    fake.remove();
  }
});
