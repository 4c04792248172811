// A virsh that fails or hangs, for the domain resolution and the watcher: FAKE virsh scripts (a
// real libvirtd cannot be made to hang on demand). The real daemon's unknown domain and
// unreachable URI are in libvirtDomain.e2e.test.ts.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LibvirtDomainWatcher, resolveLibvirtDomain, type LibvirtVmState } from "../../../host/libvirt/libvirtDomain.js";

const dir = mkdtempSync(join(tmpdir(), "oc-bad-virsh-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function fake(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}

/** PIDs of processes running `path` (the fake's own command line names it). */
function running(path: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, "latin1").includes(path)) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const URI = "qemu:///system";

void test("a virsh that fails: an error state naming the command and what it printed", async () => {
  const virsh = fake("virsh-fails", 'echo "error: internal error: the monitor broke" >&2; exit 1');
  const s = await resolveLibvirtDomain("web1", { uri: URI, virsh });
  assert.equal(s.state, "error");
  assert.match(s.state === "error" ? s.message : "", /virsh-fails -c qemu:\/\/\/system dominfo web1.*exited 1.*the monitor broke/s);
});

void test("a virsh that prints nonsense: an error state naming the missing field", async () => {
  const virsh = fake("virsh-garbage", 'echo "hello"');
  const s = await resolveLibvirtDomain("web1", { uri: URI, virsh });
  assert.equal(s.state, "error");
  assert.match(s.state === "error" ? s.message : "", /dominfo web1: no "Name:" line/);
});

void test("a virsh that hangs: killed after the timeout, an error state naming it; the watcher stops and leaves no virsh", async () => {
  // A loop, not `exec sleep`: its command line keeps naming the fake, so the test can see it run.
  const virsh = fake("virsh-hangs", "while :; do sleep 0.1; done");
  const t0 = Date.now();
  const s = await resolveLibvirtDomain("web1", { uri: URI, virsh, timeoutMs: 300 });
  assert.ok(Date.now() - t0 < 5000, `resolution returned after ${Date.now() - t0} ms`);
  assert.equal(s.state, "error");
  assert.match(s.state === "error" ? s.message : "", /virsh-hangs -c qemu:\/\/\/system dominfo web1`: killed after 300 ms/);

  const states: LibvirtVmState[] = [];
  const w = new LibvirtDomainWatcher("web1", { uri: URI, virsh, timeoutMs: 300 }, (st) => states.push(st));
  try {
    await w.start();
    assert.equal(w.state.state, "error");
    assert.equal(states.length, 1, `reported once: ${JSON.stringify(states)}`);
    assert.ok(running(virsh).length > 0, "the hanging `virsh event` runs while the watcher does");
  } finally {
    await w.stop();
  }
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(running(virsh), [], "stop() ended every virsh it started");
});
