/**
 * The libvirt side of `cage lab memory --vm libvirt`: the project's small guest as a domain of a
 * private libvirtd (lab/common/libvirtLab.ts), virtio-balloon with a 1 s stats period. The
 * balloon actuator drives it with `virsh setmem --live`; the lab reads the balloon's `actual`
 * itself from `virsh dommemstat` twice a second (not from the actuator's report), and the
 * guest's own MemTotal from its serial console.
 */
import { GUEST_BOOT_TIMEOUT_MS, LibvirtLab } from "../common/libvirtLab.js";
import type { Cleanup, LabVm } from "./memoryExperiment.js";
import { guestMemTotalView } from "./guestMemTotalView.js";

const POLL_MS = 500;

/** `virsh dommemstat` "actual N" (KiB) → bytes, or null when the line is missing. */
export function parseDommemstatActualBytes(out: string): number | null {
  const m = /^actual\s+(\d+)\s*$/m.exec(out);
  return m ? Number(m[1]) * 1024 : null;
}

export async function startLabLibvirtVm(domain: string, memoryMiB: number, cleanups: Cleanup[]): Promise<LabVm> {
  const lab = await LibvirtLab.start();
  cleanups.push({ what: `stop the private libvirtd ${lab.dir}`, run: () => lab.stop() });
  await lab.define(domain, { memoryMiB });
  await lab.virsh("start", domain);
  const guest = lab.console(domain);
  await guest.waitUntilReady(GUEST_BOOT_TIMEOUT_MS);
  const view = guestMemTotalView(() => guest.memInfo()?.memTotalBytes ?? null);
  let actualBytes: number | null = null;
  let pollError: string | null = null;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      try {
        actualBytes = parseDommemstatActualBytes(await lab.virsh("dommemstat", domain));
        pollError = null;
      } catch (err) {
        // Kept for the summary; the next poll tries again.
        pollError = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  })();
  cleanups.push({
    what: "stop reading the domain's balloon",
    run: async () => {
      polling = false;
      await poller;
    },
  });
  return {
    description: `libvirt domain ${domain} of a private libvirtd (${lab.uri}): the test guest (TCG, ${memoryMiB} MiB, virtio-balloon, stats period 1 s); the balloon actuator sets it with virsh setmem --live, actual from virsh dommemstat (read by the lab every ${POLL_MS} ms)`,
    config: { kind: "libvirt", domain, uri: lab.uri },
    observedActualBytes: () => actualBytes,
    onSample: (movedBytes) => view.onSample(movedBytes),
    details: () => ({
      domain,
      uri: lab.uri,
      ...view.details(),
      lastDommemstatError: pollError,
    }),
  };
}
