/**
 * The whole host's CPU time from /proc/stat's `cpu` line (all CPUs together), in USER_HZ ticks.
 * Pure: the caller reads the file. One parser, so that every lab and bench counts "busy" alike.
 */

export interface HostCpuTicks {
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  /** Time a hypervisor ran something else while this host (a VM) had work: neither busy nor idle here. */
  steal: number;
}

/** Throws naming /proc/stat and the line when there is no `cpu` line of eight or more numbers. */
export function parseHostCpuTicks(text: string): HostCpuTicks {
  const m = /^cpu[ \t]+(.*)$/m.exec(text);
  if (m === null) throw new Error(`/proc/stat: no "cpu" line in ${JSON.stringify(text.slice(0, 80))}`);
  const fields = m[1]!.trim().split(/\s+/);
  const n = fields.map(Number);
  if (n.length < 8 || n.some((x) => !Number.isFinite(x) || x < 0)) {
    throw new Error(`/proc/stat: the "cpu" line needs eight or more counts ≥ 0, got ${JSON.stringify(`cpu  ${m[1]!}`.slice(0, 120))}`);
  }
  const [user, nice, system, idle, iowait, irq, softirq, steal] = n as [number, number, number, number, number, number, number, number];
  return { user, nice, system, idle, iowait, irq, softirq, steal };
}

/** Ticks the host's own CPUs spent running something (steal excluded: see HostCpuTicks.steal). */
export function hostBusyTicks(t: HostCpuTicks): number {
  return t.user + t.nice + t.system + t.irq + t.softirq;
}

/** Ticks the host's CPUs sat idle, waiting for I/O included. */
export function hostIdleTicks(t: HostCpuTicks): number {
  return t.idle + t.iowait;
}
