// The balloon back end on a systemd unit's MemoryHigh, against a fake systemctl (PID 1 is not
// systemd on this machine; the v2 guest lab runs the real one).
import { test } from "node:test";
import assert from "node:assert/strict";
import { systemctlClient } from "../../../host/systemd/unitProperties.js";
import { SystemdBalloonBackend } from "../../../actuators/balloon/systemdBalloonBackend.js";
import { fakeSystemctl } from "../../host/systemd/fakeSystemctl.js";

const VM = "machine-qemu\\x2d1\\x2dvm.scope";

void test("SystemdBalloonBackend: MemoryHigh follows the target, reads back, and the original comes back on close", async () => {
  const fake = fakeSystemctl({ [VM]: { MemoryHigh: "infinity" } });
  try {
    const b = new SystemdBalloonBackend(VM, "MemoryHigh", systemctlClient(fake.program));
    assert.equal(await b.readActual(), null);
    await b.apply(512 * 1024 * 1024);
    assert.equal(await b.readActual(), 512 * 1024 * 1024);
    await b.close();
    assert.equal(fake.props(VM).get("MemoryHigh"), "infinity");
    const missing = new SystemdBalloonBackend("nosuch.scope", "MemoryHigh", systemctlClient(fake.program));
    await assert.rejects(missing.apply(1 << 20), (e: Error & { reason?: string }) => e.reason === "unreachable" && /unit nosuch.scope \(MemoryHigh\): unit nosuch.scope does not exist/.test(e.message));
  } finally {
    fake.remove();
  }
});
