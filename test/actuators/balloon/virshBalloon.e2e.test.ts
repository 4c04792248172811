// The libvirt balloon back end against a real libvirtd (scripts/libvirt-lab.sh, a private daemon)
// and the small test guest (virtio-balloon, stats period 1 s) under TCG. Run under both locks:
//   flock /tmp/oc-e2e.lock flock /tmp/oc-qemu.lock node --test dist/test/actuators/balloon/virshBalloon.e2e.test.js
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { VirshBalloonBackend } from "../../../actuators/balloon/commandBackends.js";
import { LibvirtLab } from "../../../lab/common/libvirtLab.js";

const MiB = 1024 * 1024;
let lab: LibvirtLab;

before(async () => {
  lab = await LibvirtLab.start();
  await lab.define("oc-bal", { memoryMiB: 256 });
  await lab.define("oc-noballoon", { memoryMiB: 256, balloon: false });
  await lab.virsh("start", "oc-bal");
  await lab.virsh("start", "oc-noballoon");
});

after(async () => {
  await lab.stop();
});

async function actualWithin(b: VirshBalloonBackend, want: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let actual = await b.readActual();
  while (actual !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    actual = await b.readActual();
  }
  return actual ?? -1;
}

void test("virsh setmem --live / dommemstat actual (real libvirtd): the guest gives the memory back", async () => {
  const b = new VirshBalloonBackend("oc-bal", { commandPath: "virsh", uri: lab.uri, timeoutMs: 20_000 });
  assert.equal(await b.readActual(), 256 * MiB);
  // The guest's balloon driver answers once it has booted: wait for it with a generous deadline (TCG).
  await b.apply(200 * MiB);
  assert.equal(await actualWithin(b, 200 * MiB, 60_000), 200 * MiB);
  await b.apply(256 * MiB);
  assert.equal(await actualWithin(b, 256 * MiB, 30_000), 256 * MiB);
});

void test("virsh balloon (real libvirtd): no balloon device, unknown domain, unreachable URI: errors naming them", async () => {
  const none = new VirshBalloonBackend("oc-noballoon", { commandPath: "virsh", uri: lab.uri });
  await assert.rejects(none.apply(200 * MiB), (err: Error) => /oc-noballoon/.test(err.message) && /balloon/i.test(err.message));
  const unknown = new VirshBalloonBackend("no-such-domain", { commandPath: "virsh", uri: lab.uri });
  await assert.rejects(unknown.readActual(), /no-such-domain.*failed to get domain 'no-such-domain'/s);
  const away = new VirshBalloonBackend("oc-bal", { commandPath: "virsh", uri: "qemu:///system?socket=/nonexistent/libvirt-sock" });
  await assert.rejects(away.readActual(), /\/nonexistent\/libvirt-sock/);
});
