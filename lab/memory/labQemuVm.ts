/**
 * The QEMU side of `cage lab memory`: the project's small guest (lab/common/qemuGuest.ts) with a
 * virtio-balloon device; the balloon actuator drives it over QMP. The guest also reports its
 * own MemTotal on the serial console, which the lab keeps as the guest's view of each move.
 */
import { QemuGuest } from "../common/qemuGuest.js";
import type { Cleanup, LabVm } from "./memoryExperiment.js";
import { guestMemTotalView } from "./guestMemTotalView.js";

export async function startLabQemuVm(memoryMiB: number, cleanups: Cleanup[]): Promise<LabVm> {
  const guest = await QemuGuest.start({ memoryMiB });
  cleanups.push({ what: "stop the QEMU guest", run: () => guest.stop() });
  const view = guestMemTotalView(() => guest.memInfo()?.memTotalBytes ?? null);
  return {
    description: `real QEMU guest (TCG, ${memoryMiB} MiB, virtio-balloon-pci, QMP at ${guest.qmpSocket}); the balloon actuator sets its balloon over QMP, actual from query-balloon`,
    config: { kind: "qemu", pid: guest.pid, qmpSocket: guest.qmpSocket },
    // Only the actuator's QMP connection sees `actual`; the lab takes it from act.state.
    observedActualBytes: () => null,
    onSample: (movedBytes) => view.onSample(movedBytes),
    details: () => ({ qemuPid: guest.pid, ...view.details() }),
  };
}
