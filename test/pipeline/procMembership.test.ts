/**
 * The /proc membership resolver on hand-made /proc trees: the periodic resolution, and the PIDs a
 * CPU window names that the last scan did not see (resolveNewPids).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import type { CageSpec } from "../../config/cageConfig.js";
import { NEW_PID_READS_PER_PID, NEW_PID_READS_PER_WINDOW, procMembershipResolver } from "../../pipeline/procMembership.js";

const silent = pino({ level: "silent" });

function cage(name: string): CageSpec {
  return {
    name,
    vm: { kind: "process", match: [{ comm: `${name}-vm`, descendants: false }] },
    ids: [{ cmdline: `^${name}-ids --scan`, descendants: true }],
    cpu: { cap: 100, idsCap: 30, weight: 1 },
    memory: null,
  } as unknown as CageSpec;
}

/** Writes (or rewrites: an exec) a fake /proc/PID; `stack` stands for the new address space an exec maps. */
function writeProcess(root: string, pid: number, comm: string, cmdline: string[], o: { ppid?: number; startTime?: number; stack?: number } = {}): void {
  const fields = [String(pid), `(${comm})`, "S", String(o.ppid ?? 1)];
  for (let n = 5; n <= 52; n++) fields.push(n === 22 ? String(o.startTime ?? pid * 10) : n === 28 ? String(o.stack ?? 1000) : String(n * 10));
  mkdirSync(join(root, String(pid)), { recursive: true });
  writeFileSync(join(root, String(pid), "stat"), `${fields.join(" ")}\n`);
  writeFileSync(join(root, String(pid), "cmdline"), cmdline.map((a) => `${a}\0`).join(""));
  writeFileSync(join(root, String(pid), "status"), "Uid:\t0\t0\t0\t0\n");
}

async function withResolver(run: (root: string, r: ReturnType<typeof procMembershipResolver>) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), "fake-proc-"));
  const r = procMembershipResolver([cage("web"), cage("db")], silent, root);
  try {
    await run(root, r);
  } finally {
    await r.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

void test("a restarted IDS (new PID, by cmdline) and its new child join their cage from the first window that names them", async () => {
  await withResolver(async (root, r) => {
    writeProcess(root, 10, "web-vm", ["web-vm"]);
    writeProcess(root, 11, "aide", ["web-ids", "--scan"]);
    const first = await r();
    assert.deepEqual(first.get("web")?.ids, [11]);
    assert.equal(r.resolveNewPids([10, 11, 0]), null, "PIDs the scan saw (and the idle task) are not read");
    assert.equal(r.newPidStats.reads, 0);
    // The IDS exits and is started again: a new PID, and a worker child of it.
    rmSync(join(root, "11"), { recursive: true });
    writeProcess(root, 20, "aide", ["web-ids", "--scan"]);
    writeProcess(root, 21, "worker", ["worker"], { ppid: 20 });
    const m = r.resolveNewPids([10, 20, 21, 11]);
    assert.ok(m !== null);
    assert.deepEqual(m.get("web")?.ids, [11, 20, 21], "the new IDS and its descendant; the old one stays until the next scan");
    assert.equal(m.get("web")?.startTimes.get(20), 200);
    assert.deepEqual(m.get("web")?.vm, [10]);
    assert.equal(r.newPidStats.reads, 2, "20 and 21 once each; 11 was in the scan");
    assert.equal(r.newPidStats.resolutions, 1);
    assert.equal(r.newPidStats.tablePasses, 1, "one resolution for both");
    // Uncharged again (a resolution computed before they joined replaced the membership): they rejoin without a read.
    assert.deepEqual(r.resolveNewPids([20, 21])?.get("web")?.ids, [11, 20, 21]);
    assert.equal(r.newPidStats.reads, 2);
    const next = await r();
    assert.deepEqual(next.get("web")?.ids, [20, 21]);
  });
});

void test("a new PID that has not exec'd yet is read again in a later window, at most NEW_PID_READS_PER_PID times until the next scan", async () => {
  await withResolver(async (root, r) => {
    writeProcess(root, 10, "web-vm", ["web-vm"]);
    await r();
    writeProcess(root, 30, "sh", ["sh", "-c", "exec db-ids --scan"]);
    assert.equal(r.resolveNewPids([30]), null, "still the shell");
    writeProcess(root, 30, "db-ids", ["db-ids", "--scan"], { stack: 2000 });
    assert.deepEqual(r.resolveNewPids([30])?.get("db")?.ids, [30], "after its exec: the db cage's IDS");
    writeProcess(root, 40, "bash", ["bash"]);
    for (let i = 0; i < NEW_PID_READS_PER_PID + 2; i++) assert.equal(r.resolveNewPids([40]), null);
    assert.equal(r.newPidStats.reads, 2 + NEW_PID_READS_PER_PID, "a PID that never matches stops being read");
    await r();
    assert.equal(r.resolveNewPids([40]), null, "seen by the scan now");
    assert.equal(r.newPidStats.reads, 2 + NEW_PID_READS_PER_PID);
  });
});

void test("at most NEW_PID_READS_PER_WINDOW new PIDs are read per window; the rest wait for a later window", async () => {
  await withResolver(async (root, r) => {
    await r();
    const storm = Array.from({ length: 3 * NEW_PID_READS_PER_WINDOW }, (_, i) => 100 + i);
    for (const pid of storm) writeProcess(root, pid, "cc1", ["cc1"]);
    writeProcess(root, 999, "aide", ["web-ids", "--scan"]);
    assert.equal(r.resolveNewPids([...storm, 999]), null);
    assert.equal(r.newPidStats.reads, NEW_PID_READS_PER_WINDOW);
    assert.equal(r.newPidStats.tablePasses, 0, "processes no matcher selects and whose parent is no member: no resolution");
    // Later windows read first what no window has read yet: the IDS waits for the storm's first reads only.
    assert.equal(r.resolveNewPids([...storm, 999]), null);
    assert.equal(r.resolveNewPids([...storm, 999]), null);
    assert.deepEqual(r.resolveNewPids([...storm, 999])?.get("web")?.ids, [999]);
    assert.equal(r.newPidStats.reads, 4 * NEW_PID_READS_PER_WINDOW, "the room 999 left in the fourth window went to re-reading the storm");
  });
});

void test("before the first resolution no new PID is read", async () => {
  await withResolver(async (root, r) => {
    writeProcess(root, 999, "aide", ["web-ids", "--scan"]);
    assert.equal(r.resolveNewPids([999]), null);
    assert.equal(r.newPidStats.reads, 0);
    assert.deepEqual((await r()).get("web")?.ids, [999]);
  });
});

void test("a new child of a member joins through a matcher's descendants; a new child of a non-member does not cost a resolution", async () => {
  await withResolver(async (root, r) => {
    writeProcess(root, 10, "web-vm", ["web-vm"]);
    writeProcess(root, 11, "aide", ["db-ids", "--scan"]);
    writeProcess(root, 12, "bash", ["bash"]);
    await r();
    writeProcess(root, 50, "sha512", ["sha512"], { ppid: 11 });
    writeProcess(root, 51, "ls", ["ls"], { ppid: 12 });
    writeProcess(root, 52, "web-vm-child", ["x"], { ppid: 10 });
    assert.equal(r.resolveNewPids([51, 52]), null, "the VM matcher takes no descendants, the shell is no member");
    assert.equal(r.newPidStats.tablePasses, 1, "52's parent is a member: resolved once; 51 not at all");
    assert.deepEqual(r.resolveNewPids([50])?.get("db")?.ids, [11, 50]);
    assert.equal(r.newPidStats.tablePasses, 2);
  });
});
