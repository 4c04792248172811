// Against a real libvirtd (scripts/libvirt-lab.sh, its own daemon and state in a temp dir) running
// the project's small test guest under TCG. Run under both locks:
//   flock /tmp/oc-e2e.lock flock /tmp/oc-qemu.lock node --test dist/test/host/libvirt/libvirtDomain.e2e.test.js
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { findQemuByUuid, LibvirtDomainWatcher, resolveLibvirtDomain, type LibvirtVmState } from "../../../host/libvirt/libvirtDomain.js";
import { readQemuThreads } from "../../../host/libvirt/qemuThreads.js";
import { LibvirtLab } from "../../../lab/common/libvirtLab.js";

let lab: LibvirtLab;
let uuid: string;
const DOM = "oc-watch";

before(async () => {
  lab = await LibvirtLab.start();
  uuid = await lab.define(DOM, { memoryMiB: 256, net: true });
});

after(async () => {
  await lab.stop();
});

async function until<T>(what: string, timeoutMs: number, probe: () => T | null): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

void test("the watcher follows start, stop, restart with a new PID and undefine from libvirt events", async () => {
  const seen: LibvirtVmState[] = [];
  const watcher = new LibvirtDomainWatcher(DOM, { uri: lab.uri }, (s) => seen.push(s));
  try {
    await watcher.start();
    assert.deepEqual(watcher.state, { state: "shut-off", name: DOM, uuid, detail: "shut off" });

    await lab.virsh("start", DOM);
    const first = await until("running", 5000, () => (watcher.state.state === "running" ? watcher.state : null));
    assert.deepEqual(findQemuByUuid(uuid), { pid: first.pid, startTime: first.startTime });
    const kinds = new Set(readQemuThreads(first.pid).map((t) => t.kind));
    assert.ok(kinds.has("vcpu") && kinds.has("emulator"), `thread kinds of QEMU ${first.pid}: ${[...kinds].join(", ")}`);

    await lab.virsh("destroy", DOM);
    await until("shut off", 5000, () => (watcher.state.state === "shut-off" ? true : null));

    // Restart: the new PID is followed within 2 s of `virsh start` returning.
    await lab.virsh("start", DOM);
    const startedAt = Date.now();
    const second = await until("running again", 2000, () => (watcher.state.state === "running" ? watcher.state : null));
    const followMs = Date.now() - startedAt;
    assert.notEqual(`${second.pid}/${second.startTime}`, `${first.pid}/${first.startTime}`);
    assert.deepEqual(findQemuByUuid(uuid), { pid: second.pid, startTime: second.startTime });
    process.stdout.write(`# restart followed ${followMs} ms after virsh start returned (PID ${first.pid} -> ${second.pid})\n`);

    await lab.virsh("destroy", DOM);
    // Seen off before it goes: an undefine right behind the stop may reach the watcher first.
    await until("shut off again", 5000, () => (watcher.state.state === "shut-off" ? true : null));
    await lab.virsh("undefine", DOM);
    await until("undefined", 5000, () => (watcher.state.state === "undefined" ? true : null));
    // Each transition reported once, not once per event or per poll ("paused" is how libvirt may
    // show a domain for a moment while it starts; the cage treats it as running).
    const transitions = seen.map((s) => (s.state === "paused" ? "running" : s.state)).filter((s, i, all) => i === 0 || all[i - 1] !== s);
    assert.deepEqual(transitions, ["shut-off", "running", "shut-off", "running", "shut-off", "undefined"]);
    assert.equal(seen.length, transitions.length + seen.filter((s) => s.state === "paused").length);
  } finally {
    await watcher.stop();
  }
});

void test("bad input: an unknown domain is undefined, an unreachable URI an error naming it", async () => {
  assert.deepEqual(await resolveLibvirtDomain("no-such-domain", { uri: lab.uri }), { state: "undefined", domain: "no-such-domain" });
  const bad = "qemu:///system?socket=/nonexistent/libvirt-sock";
  const s = await resolveLibvirtDomain("x", { uri: bad });
  assert.equal(s.state, "error");
  assert.match(s.state === "error" ? s.message : "", /libvirt URI qemu:\/\/\/system\?socket=\/nonexistent\/libvirt-sock unreachable: .*\/nonexistent\/libvirt-sock/s);
  // The watcher on an unreachable URI: one error state, the event stream retried, stop() ends it.
  const states: LibvirtVmState[] = [];
  const w = new LibvirtDomainWatcher("x", { uri: bad }, (st) => states.push(st));
  await w.start();
  await new Promise((r) => setTimeout(r, 1500));
  await w.stop();
  assert.equal(w.state.state, "error");
  assert.equal(states.length, 1, `state changes reported: ${JSON.stringify(states)}`);
});
