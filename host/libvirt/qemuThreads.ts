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
import { VM_CPU_KINDS, type VmCpuKind } from "../../protocol/cageAggregate.js";

/** The kinds are the wire format's (vm.cpuPctByKind): one list for the classifier and the aggregate. */
export type QemuThreadKind = VmCpuKind;
export const QEMU_THREAD_KINDS: readonly QemuThreadKind[] = VM_CPU_KINDS;

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

/** One host thread working for a VM: `pid` is its thread group (the QEMU, or a kernel vhost worker itself). */
export interface VmThread {
  pid: number;
  tid: number;
  kind: QemuThreadKind;
}

/**
 * The classified threads of these QEMU processes, plus the kernel vhost workers (Linux < 6.4)
 * among `processes` (a process table the caller already read, so /proc is not scanned twice);
 * a worker is its own process, so its pid and tid are its PID. Threads are read afresh on every
 * call: QEMU names a thread just after creating it, so a name read once can be outdated.
 */
export function readVmThreads(qemuPids: readonly number[], processes: readonly { pid: number; comm: string }[], procRoot = "/proc"): VmThread[] {
  const out: VmThread[] = [];
  const ownerOfWorkerComm = new Map<string, number>();
  for (const pid of qemuPids) {
    ownerOfWorkerComm.set(`vhost-${pid}`, pid);
    for (const t of readQemuThreads(pid, procRoot, [])) out.push({ pid, tid: t.tid, kind: t.kind });
  }
  for (const p of processes) {
    const owner = ownerOfWorkerComm.get(p.comm);
    if (owner !== undefined && p.pid !== owner) out.push({ pid: p.pid, tid: p.pid, kind: "vhost" });
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

export type CpuSecondsByKind = Record<QemuThreadKind, number>;

/**
 * CPU seconds of one QEMU's threads by kind, cumulative, from each thread's schedstat (ns on
 * CPU, the same clock the kernel's scheduler charges). A thread that ended keeps what it had
 * been charged, so the totals never go down; a new QEMU PID (a restart) starts from zero.
 */
export class QemuThreadCpu {
  private pid: number | null = null;
  private lastNs = new Map<number, { kind: QemuThreadKind; ns: number }>();
  private totals: CpuSecondsByKind = { vcpu: 0, emulator: 0, vhost: 0 };

  constructor(private readonly procRoot = "/proc") {}

  /** Reads the threads of qemuPid now; the cumulative seconds by kind since this PID was first seen. */
  sample(qemuPid: number): CpuSecondsByKind {
    if (this.pid !== qemuPid) {
      this.pid = qemuPid;
      this.lastNs = new Map();
      this.totals = { vcpu: 0, emulator: 0, vhost: 0 };
    }
    for (const t of readQemuThreads(qemuPid, this.procRoot)) {
      const owner = t.tid === qemuPid || t.comm !== `vhost-${qemuPid}` || existsTask(this.procRoot, qemuPid, t.tid) ? qemuPid : t.tid;
      const ns = readThreadSchedstatNs(owner, t.tid, this.procRoot);
      if (ns === null) continue;
      const prev = this.lastNs.get(t.tid);
      const delta = prev === undefined ? ns : Math.max(0, ns - prev.ns);
      this.totals[t.kind] += delta / 1e9;
      this.lastNs.set(t.tid, { kind: t.kind, ns });
    }
    return { ...this.totals };
  }
}

function existsTask(procRoot: string, pid: number, tid: number): boolean {
  try {
    readdirSync(join(procRoot, String(pid), "task", String(tid)));
    return true;
  } catch {
    return false;
  }
}
