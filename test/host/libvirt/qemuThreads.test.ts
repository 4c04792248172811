import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QemuThreadCpu, classifyQemuThread, findKernelVhostWorkers, readQemuThreads, readThreadSchedstatNs, readVmThreads } from "../../../host/libvirt/qemuThreads.js";

void test("thread names: vCPU (TCG or KVM), vhost of this QEMU, everything else emulator", () => {
  assert.equal(classifyQemuThread("CPU 0/TCG", 500), "vcpu");
  assert.equal(classifyQemuThread("CPU 12/KVM", 500), "vcpu");
  assert.equal(classifyQemuThread("vhost-500", 500), "vhost");
  assert.equal(classifyQemuThread("vhost-501", 500), "emulator");
  assert.equal(classifyQemuThread("qemu-system-x86", 500), "emulator");
  assert.equal(classifyQemuThread("IO mon_iothread", 500), "emulator");
  assert.equal(classifyQemuThread("call_rcu", 500), "emulator");
});

/** Thread `tid` of process `pid` in a fake /proc: its comm and its schedstat run time `ns`. */
type AddThread = (pid: number, tid: number, comm: string, ns: number) => void;

/** Runs `body` on a temporary /proc laid out as the kernel does, removed afterwards. */
function withFakeProc(body: (root: string, thread: AddThread) => void): void {
  const root = mkdtempSync(join(tmpdir(), "oc-proc-"));
  try {
    body(root, (pid, tid, comm, ns) => {
      const task = join(root, String(pid), "task", String(tid));
      mkdirSync(task, { recursive: true });
      writeFileSync(join(task, "comm"), `${comm}\n`);
      writeFileSync(join(task, "schedstat"), `${ns} 5 7\n`);
      if (pid === tid) writeFileSync(join(root, String(pid), "comm"), `${comm}\n`);
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

// QEMU 500 with threads, and a pre-6.4 kernel vhost thread 900.
void test("readQemuThreads: task threads, kernel vhost workers found by name, schedstat", () => {
  withFakeProc((root, thread) => {
    thread(500, 500, "qemu-system-x86", 1000);
    thread(500, 501, "call_rcu", 20);
    thread(500, 503, "CPU 0/TCG", 90000);
    thread(500, 504, "vhost-500", 300);
    thread(900, 900, "vhost-500", 4000);
    thread(901, 901, "vhost-77", 1);
    assert.deepEqual(findKernelVhostWorkers(500, root), [900]);
    assert.deepEqual(readQemuThreads(500, root).map((t) => [t.tid, t.kind]), [
      [500, "emulator"],
      [501, "emulator"],
      [503, "vcpu"],
      [504, "vhost"],
      [900, "vhost"],
    ]);
    assert.deepEqual(readQemuThreads(777, root), []);
    assert.equal(readThreadSchedstatNs(500, 503, root), 90000);
    assert.equal(readThreadSchedstatNs(500, 999, root), null);
  });
});

void test("QemuThreadCpu: seconds by kind from schedstat, cumulative, ended threads keep theirs, new PID restarts", () => {
  withFakeProc((root, thread) => {
    thread(500, 500, "qemu-system-x86", 1e9);
    thread(500, 503, "CPU 0/TCG", 2e9);
    thread(500, 504, "vhost-500", 0.5e9);
    thread(900, 900, "vhost-500", 0.25e9); // a kernel vhost worker (Linux < 6.4)
    const cpu = new QemuThreadCpu(root);
    assert.deepEqual(cpu.sample(500), { vcpu: 2, emulator: 1, vhost: 0.75 });
    thread(500, 503, "CPU 0/TCG", 3e9);
    rmSync(join(root, "500", "task", "504"), { recursive: true });
    assert.deepEqual(cpu.sample(500), { vcpu: 3, emulator: 1, vhost: 0.75 });
    thread(600, 600, "qemu-system-x86", 0.1e9);
    assert.deepEqual(cpu.sample(600), { vcpu: 0, emulator: 0.1, vhost: 0 });
  });
});

// The process's own threads as the kernel reports them: the sum by kind equals the sum of
// /proc/self/task/*/schedstat (here every thread is "emulator": none is named like a vCPU).
void test("QemuThreadCpu on a real process: the total matches its threads' schedstat within 2%", () => {
  let x = 0;
  for (let i = 0; i < 2e7; i++) x += i % 7;
  assert.ok(x > 0);
  const direct = (): number => readdirSync(`/proc/${process.pid}/task`).reduce((sum, tid) => sum + (readThreadSchedstatNs(process.pid, Number(tid)) ?? 0), 0) / 1e9;
  const cpu = new QemuThreadCpu();
  // This thread keeps running while it reads: the sample lies between a read just before and one just after.
  const before = direct();
  const byKind = cpu.sample(process.pid);
  const afterwards = direct();
  const total = byKind.vcpu + byKind.emulator + byKind.vhost;
  assert.ok(total > 0.01, `total ${total}`);
  assert.ok(total >= before * 0.98 && total <= afterwards * 1.02, `by kind ${total} s, schedstat ${before}..${afterwards} s`);
});

void test("readVmThreads: each QEMU's threads under its PID, kernel vhost workers from the given table, names read afresh", () => {
  const root = mkdtempSync(join(tmpdir(), "oc-proc-"));
  try {
    const thread = (pid: number, tid: number, comm: string): void => {
      mkdirSync(join(root, String(pid), "task", String(tid)), { recursive: true });
      writeFileSync(join(root, String(pid), "task", String(tid), "comm"), `${comm}\n`);
    };
    thread(500, 500, "qemu-system-x86");
    thread(500, 501, "qemu-system-x86"); // not named yet
    thread(500, 502, "vhost-500");
    thread(600, 600, "qemu-system-x86");
    thread(600, 601, "CPU 0/KVM");
    // The table is the caller's: a kernel worker of 600, one of a QEMU not asked about, another process.
    const table = [
      { pid: 500, comm: "qemu-system-x86" },
      { pid: 600, comm: "qemu-system-x86" },
      { pid: 910, comm: "vhost-600" },
      { pid: 911, comm: "vhost-777" },
      { pid: 912, comm: "sshd" },
    ];
    assert.deepEqual(readVmThreads([500, 600], table, root), [
      { pid: 500, tid: 500, kind: "emulator" },
      { pid: 500, tid: 501, kind: "emulator" },
      { pid: 500, tid: 502, kind: "vhost" },
      { pid: 600, tid: 600, kind: "emulator" },
      { pid: 600, tid: 601, kind: "vcpu" },
      { pid: 910, tid: 910, kind: "vhost" },
    ]);
    thread(500, 501, "CPU 0/TCG"); // QEMU named it since
    assert.equal(readVmThreads([500], table, root).find((t) => t.tid === 501)?.kind, "vcpu");
    assert.deepEqual(readVmThreads([777], [], root), [], "a QEMU that is gone has no threads");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
