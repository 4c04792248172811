/**
 * The host threads of one QEMU process, by what they do for the VM. libvirt starts QEMU with
 * `-name guest=NAME,debug-threads=on`, so threads carry names:
 *   "CPU 0/TCG", "CPU 1/KVM"   a vCPU
 *   "vhost-PID"                a vhost worker moving the NIC's packets: a QEMU thread since Linux 6.4
 *                              (vhost_task), a kernel thread of that name before (found by name, not
 *                              under /proc/PID/task)
 *   anything else              the emulator: main loop, I/O threads, RCU, workers
 * Pure except readQemuThreads, which reads /proc.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export type QemuThreadKind = "vcpu" | "emulator" | "vhost";
export const QEMU_THREAD_KINDS: readonly QemuThreadKind[] = ["vcpu", "emulator", "vhost"];

export interface QemuThread {
  tid: number;
  comm: string;
  kind: QemuThreadKind;
}

export function classifyQemuThread(comm: string, qemuPid: number): QemuThreadKind {
  if (/^CPU \d+\/[A-Za-z]+$/.test(comm)) return "vcpu";
  if (comm === `vhost-${qemuPid}`) return "vhost";
  return "emulator";
}

function readComm(path: string): string | null {
  try {
    return readFileSync(path, "utf8").replace(/\n$/, "");
  } catch {
    return null; // the thread ended between listing and reading
  }
}

/**
 * The QEMU process's own threads plus, on kernels before 6.4, the kernel threads `vhost-PID`
 * (not children of QEMU in /proc/PID/task). An empty list when the process is gone.
 */
export function readQemuThreads(qemuPid: number, procRoot = "/proc", kernelVhostPids?: readonly number[]): QemuThread[] {
  let tids: string[];
  try {
    tids = readdirSync(join(procRoot, String(qemuPid), "task"));
  } catch {
    return [];
  }
  const out: QemuThread[] = [];
  for (const t of tids) {
    const comm = readComm(join(procRoot, String(qemuPid), "task", t, "comm"));
    if (comm !== null) out.push({ tid: Number(t), comm, kind: classifyQemuThread(comm, qemuPid) });
  }
  for (const pid of kernelVhostPids ?? findKernelVhostWorkers(qemuPid, procRoot)) {
    if (out.some((t) => t.tid === pid)) continue;
    out.push({ tid: pid, comm: `vhost-${qemuPid}`, kind: "vhost" });
  }
  return out.sort((a, b) => a.tid - b.tid);
}

/** Kernel threads named vhost-QEMUPID (Linux < 6.4); none on newer kernels, where they are QEMU's threads. */
export function findKernelVhostWorkers(qemuPid: number, procRoot = "/proc"): number[] {
  const want = `vhost-${qemuPid}`;
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync(procRoot);
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === qemuPid) continue;
    if (readComm(join(procRoot, e, "comm")) === want) out.push(Number(e));
  }
  return out;
}

/** A thread's CPU time in ns from /proc/PID/task/TID/schedstat (first field); null when gone. */
export function readThreadSchedstatNs(pid: number, tid: number, procRoot = "/proc"): number | null {
  const text = readComm(join(procRoot, String(pid), "task", String(tid), "schedstat"));
  if (text === null) return null;
  const first = text.split(" ")[0] ?? "";
  return /^\d+$/.test(first) ? Number(first) : null;
}
