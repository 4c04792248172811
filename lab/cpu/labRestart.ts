/**
 * The domain-restart check of `cage lab cpu --vm libvirt --restart-at S`: mid-run the domain is
 * destroyed and started again (a new QEMU process), and the lab measures whether the agent
 * follows it. restartCheck() does the restart and watches the domain's cap; restartSummary()
 * (pure) reads the aggregates' VM PIDs around it.
 */
import type { LabLibvirtVm } from "./labLibvirtVm.js";

/** The VM PIDs one aggregate of the lab's cage listed: its window's end and when the lab got it. */
export interface VmPidsSeen {
  timeMs: number;
  seenAtMs: number;
  pids: number[];
}

export interface RestartTimes {
  oldPid: number | null;
  newPid: number | null;
  /** When `virsh destroy` and `virsh start` returned. */
  destroyedAtMs: number;
  startedAtMs: number;
  /** global_quota read first after the start: the definition's (none), before the actuator acts. */
  quotaAfterStartUs: number | null;
  /** When a cap was first back on the domain, the quota then, and the CPU actuator's last reported VM cap. */
  reappliedAtMs: number | null;
  reappliedQuotaUs: number | null;
  actuatorVmCapPct: number | null;
  error: string | null;
}

export interface RestartSummary {
  oldPid: number | null;
  newPid: number | null;
  /** From `virsh start` returning to the first aggregate listing the new QEMU PID. */
  followedMs: number | null;
  /** Aggregates whose window ended after `virsh destroy` returned and still listed the old PID. */
  oldPidAfterDestroy: number;
  /** Aggregates from the first with the new PID on that still listed the old one (must be 0). */
  oldPidAfterNewSeen: number;
  quotaAfterStartUs: number | null;
  /** From `virsh start` returning to the domain's cap being set again by the actuator. */
  reappliedMs: number | null;
  reappliedQuotaUs: number | null;
  actuatorVmCapPct: number | null;
  /** Followed within FOLLOW_LIMIT_MS, no old PID once the new one was seen, the cap set again. */
  holds: boolean;
  error: string | null;
}

export const FOLLOW_LIMIT_MS = 2000;
/** How long the check waits for the cap to come back after the start. */
const REAPPLY_WAIT_MS = 15_000;

/** libvirt's "no quota": -1, or the kernel's unlimited read back as a huge number. */
function isCap(quotaUs: number): boolean {
  return quotaUs > 0 && quotaUs < 2 ** 40;
}

export async function restartCheck(vm: LabLibvirtVm, actuatorVmCapPct: () => number | null): Promise<RestartTimes> {
  const oldPid = vm.qemuPid();
  let times: { destroyedAtMs: number; startedAtMs: number };
  try {
    times = await vm.restart();
  } catch (err) {
    const now = Date.now();
    return { oldPid, newPid: null, destroyedAtMs: now, startedAtMs: now, quotaAfterStartUs: null, reappliedAtMs: null, reappliedQuotaUs: null, actuatorVmCapPct: null, error: (err as Error).message };
  }
  const out: RestartTimes = { oldPid, newPid: vm.qemuPid(), ...times, quotaAfterStartUs: null, reappliedAtMs: null, reappliedQuotaUs: null, actuatorVmCapPct: null, error: null };
  try {
    out.quotaAfterStartUs = await vm.globalQuotaUs();
    for (let q = out.quotaAfterStartUs; Date.now() - times.startedAtMs < REAPPLY_WAIT_MS; q = await vm.globalQuotaUs()) {
      if (isCap(q)) {
        out.reappliedAtMs = Date.now();
        out.reappliedQuotaUs = q;
        out.actuatorVmCapPct = actuatorVmCapPct();
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    out.error = (err as Error).message;
  }
  return out;
}

export function restartSummary(t: RestartTimes, log: readonly VmPidsSeen[]): RestartSummary {
  const firstNew = t.newPid === null ? undefined : log.find((e) => e.pids.includes(t.newPid as number));
  const hasOld = (e: VmPidsSeen): boolean => t.oldPid !== null && e.pids.includes(t.oldPid);
  const followedMs = firstNew === undefined ? null : firstNew.seenAtMs - t.startedAtMs;
  const oldPidAfterNewSeen = firstNew === undefined ? 0 : log.filter((e) => e.seenAtMs >= firstNew.seenAtMs && hasOld(e)).length;
  const reappliedMs = t.reappliedAtMs === null ? null : t.reappliedAtMs - t.startedAtMs;
  return {
    oldPid: t.oldPid,
    newPid: t.newPid,
    followedMs,
    oldPidAfterDestroy: log.filter((e) => e.timeMs > t.destroyedAtMs && hasOld(e)).length,
    oldPidAfterNewSeen,
    quotaAfterStartUs: t.quotaAfterStartUs,
    reappliedMs,
    reappliedQuotaUs: t.reappliedQuotaUs,
    actuatorVmCapPct: t.actuatorVmCapPct,
    holds: t.error === null && t.newPid !== null && t.newPid !== t.oldPid && followedMs !== null && followedMs <= FOLLOW_LIMIT_MS && oldPidAfterNewSeen === 0 && reappliedMs !== null,
    error: t.error,
  };
}
