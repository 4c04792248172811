/**
 * The QEMU side of `cage lab memory`: the project's small guest (lab/common/qemuGuest.ts) with a
 * virtio-balloon device; the balloon actuator drives it over QMP. The guest also reports its
 * own MemTotal on the serial console, which the lab keeps as the guest's view of each move.
 */
import { QemuGuest } from "../common/qemuGuest.js";
import type { Cleanup, LabVm } from "./memoryExperiment.js";

export async function startLabQemuVm(memoryMiB: number, cleanups: Cleanup[]): Promise<LabVm> {
  const guest = await QemuGuest.start({ memoryMiB });
  cleanups.push({ what: "stop the QEMU guest", run: () => guest.stop() });
  const startTotal = guest.memInfo()?.memTotalBytes ?? null;
  let minTotal = startTotal;
  // The guest's MemTotal drop next to what the lab counted as moved, at the largest move.
  let largest: { movedBytes: number; memTotalDropBytes: number | null } | null = null;
  return {
    description: `real QEMU guest (TCG, ${memoryMiB} MiB, virtio-balloon-pci, QMP at ${guest.qmpSocket}); the balloon actuator sets its balloon over QMP, actual from query-balloon`,
    config: { kind: "qemu", pid: guest.pid, qmpSocket: guest.qmpSocket },
    // Only the actuator's QMP connection sees `actual`; the lab takes it from act.state.
    observedActualBytes: () => null,
    onSample(movedBytes) {
      const total = guest.memInfo()?.memTotalBytes ?? null;
      if (total !== null) minTotal = minTotal === null ? total : Math.min(minTotal, total);
      if (movedBytes !== null && (largest === null || movedBytes > largest.movedBytes)) {
        largest = { movedBytes, memTotalDropBytes: total === null || startTotal === null ? null : startTotal - total };
      }
    },
    details: () => ({
      qemuPid: guest.pid,
      guestMemTotalStartBytes: startTotal,
      guestMemTotalMinBytes: minTotal,
      guestViewAtLargestMove: largest,
    }),
  };
}
