// The libvirt CPU back end against a real libvirtd (scripts/libvirt-lab.sh, a private daemon) and
// the small test guest under TCG. Run under both locks:
//   flock /tmp/oc-e2e.lock flock /tmp/oc-qemu.lock node --test dist/test/actuators/cpu/virshCpuBackend.e2e.test.js
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { VirshCpuBackend } from "../../../actuators/common/virshCpuBackend.js";
import { parseVirshSchedinfo } from "../../../actuators/common/virshSchedinfo.js";
import { findQemuByUuid } from "../../../host/libvirt/libvirtDomain.js";
import { LibvirtLab } from "../../../lab/common/libvirtLab.js";

let lab: LibvirtLab;
let uuid: string;
const DOM = "oc-cpu";

before(async () => {
  lab = await LibvirtLab.start();
  uuid = await lab.define(DOM, { memoryMiB: 256 });
  await lab.virsh("start", DOM);
});

after(async () => {
  await lab.stop();
});

async function schedinfo(): Promise<Map<string, number>> {
  return parseVirshSchedinfo(await lab.virsh("schedinfo", DOM, "--live"), "virsh schedinfo").params;
}

void test("virsh schedinfo (real libvirtd): cap as global_quota, weight as scaled cpu_shares, restored", async () => {
  const before = await schedinfo();
  const b = new VirshCpuBackend(DOM, lab.uri, 100);
  await b.open();
  await b.apply({ capPct: 35, weight: 50 });
  const capped = await schedinfo();
  assert.equal(capped.get("global_period"), before.get("global_period"));
  assert.equal(capped.get("global_quota"), Math.round(((before.get("global_period") ?? 0) * 35) / 100));
  assert.equal(capped.get("cpu_shares"), Math.round(((before.get("cpu_shares") ?? 0) * 50) / 100));
  // vCPU and emulator quotas stay as they were: the cap bounds the whole domain.
  assert.equal(capped.get("vcpu_quota"), before.get("vcpu_quota"));
  assert.equal(capped.get("emulator_quota"), before.get("emulator_quota"));
  await b.restore();
  const restored = await schedinfo();
  assert.equal(restored.get("cpu_shares"), before.get("cpu_shares"));
  assert.equal(restored.get("global_quota"), before.get("global_quota"));
});

void test("virsh schedinfo (real libvirtd): an unknown domain and an unreachable URI are errors naming them", async () => {
  await assert.rejects(new VirshCpuBackend("no-such-domain", lab.uri, null).open(), /no-such-domain.*failed to get domain 'no-such-domain'/s);
  await assert.rejects(new VirshCpuBackend(DOM, "qemu:///system?socket=/nonexistent/libvirt-sock", null).open(), /\/nonexistent\/libvirt-sock/);
});

void test("virsh schedinfo (real libvirtd): a restarted domain comes back with its definition's quota and gets the last target again; a shut-off one nothing", async () => {
  const before = await schedinfo();
  const period = before.get("global_period") ?? 0;
  const quotaAt = (pct: number): number => Math.round((period * pct) / 100);
  const qemu = (): { pid: number; startTime: number } => {
    const q = findQemuByUuid(uuid);
    assert.ok(q !== null, "the domain's QEMU process");
    return q;
  };
  const b = new VirshCpuBackend(DOM, lab.uri, null);
  await b.open();
  try {
    await b.adoptPids([qemu()]); // first sight: nothing applied yet, nothing to set again
    await b.apply({ capPct: 40, weight: null });
    assert.equal((await schedinfo()).get("global_quota"), quotaAt(40));

    await lab.virsh("destroy", DOM);
    await b.adoptPids([]); // shut off: nothing to set
    await lab.virsh("start", DOM);
    assert.equal((await schedinfo()).get("global_quota"), before.get("global_quota"), "libvirt starts the domain with its definition's quota, not the cage's");
    await b.adoptPids([qemu()]);
    assert.equal((await schedinfo()).get("global_quota"), quotaAt(40), "the last target set again on the new QEMU process");

    await b.apply({ capPct: 25, weight: null });
    await b.adoptPids([qemu()]); // the same process: nothing to do
    assert.equal((await schedinfo()).get("global_quota"), quotaAt(25));
  } finally {
    await b.restore();
  }
  assert.equal((await schedinfo()).get("global_quota"), before.get("global_quota"));
});
