/**
 * The guest's own view of the balloon, for both guest kinds of `cage lab memory`: the MemTotal it
 * reports on its serial console at the start, its lowest, and its drop at the largest move the lab
 * counted (next to that move, so the summary shows whether the guest saw it too).
 */
export interface GuestMemTotalView {
  /** Called with each sample's moved bytes (null before the first move). */
  onSample(movedBytes: number | null): void;
  details(): { guestMemTotalStartBytes: number | null; guestMemTotalMinBytes: number | null; guestViewAtLargestMove: { movedBytes: number; memTotalDropBytes: number | null } | null };
}

export function guestMemTotalView(memTotalBytes: () => number | null): GuestMemTotalView {
  const startTotal = memTotalBytes();
  let minTotal = startTotal;
  let largest: { movedBytes: number; memTotalDropBytes: number | null } | null = null;
  return {
    onSample(movedBytes) {
      const total = memTotalBytes();
      if (total !== null) minTotal = minTotal === null ? total : Math.min(minTotal, total);
      if (movedBytes !== null && (largest === null || movedBytes > largest.movedBytes)) {
        largest = { movedBytes, memTotalDropBytes: total === null || startTotal === null ? null : startTotal - total };
      }
    },
    details: () => ({ guestMemTotalStartBytes: startTotal, guestMemTotalMinBytes: minTotal, guestViewAtLargestMove: largest }),
  };
}
