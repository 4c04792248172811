/**
 * What `cage lab memory` sets up, decided before anything runs. Pure.
 *
 * Sizes: the IDS is driven up to about 1.15 × (base − floor), so that in every run some holds
 * push past what the VM can give and the floor has to hold.
 */
import type { LabVmKind } from "./memoryLabOptions.js";

const MiB = 1024 * 1024;

export interface LabSizes {
  baseBytes: number;
  floorBytes: number;
  /** malloc IDS: random sizes in [min, max] MiB. */
  mallocMinMiB: number;
  mallocMaxMiB: number;
  /** file IDS: the tree is this many parts of this many MiB each; at most three are cached at once (see fileIdsSchedule). */
  fileParts: number;
  filePartMiB: number;
  /** Memory the process VM itself holds (cgroup VM only), MiB: far below the floor so a limit never has to reclaim it. */
  vmHoldMiB: number;
}

/**
 * @param guestMiB the guest's RAM (its balloon base), QEMU or libvirt; ignored for the cgroup VM.
 */
export function labSizes(vm: LabVmKind, guestMiB: number): LabSizes {
  // The cgroup VM gets the guest's sizes: AIDE hashes a part at 15 to 30 MB/s on this shared,
  // loaded 2-CPU machine, and every second it scans is a second the IDS is not holding still.
  // The guest: a kernel and a busybox initramfs need well under 100 MiB; keep 160 MiB (or 30 %).
  const baseMiB = vm === "cgroup" ? 512 : guestMiB;
  const floorMiB = Math.max(160, Math.round(baseMiB * 0.3));
  const movable = baseMiB - floorMiB;
  const peak = Math.round(movable * 1.15);
  return {
    baseBytes: baseMiB * MiB,
    floorBytes: floorMiB * MiB,
    mallocMinMiB: 16,
    mallocMaxMiB: peak,
    fileParts: FILE_PARTS,
    filePartMiB: Math.ceil(peak / 3),
    vmHoldMiB: 64,
  };
}

/** Sizes of the files of one tree part, MiB each (1 to 8 MiB, like a tree of binaries and data), summing to partMiB. */
export function filePartSizes(partMiB: number, random: () => number): number[] {
  const sizes: number[] = [];
  let left = partMiB;
  while (left > 0) {
    const s = Math.min(left, 1 + Math.floor(random() * 8));
    sizes.push(s);
    left -= s;
  }
  return sizes;
}

/**
 * Sizes of the Tripwire tree's files, bytes: `files` files averaging totalBytes / files, drawn
 * from 0.1 to 1.9 times that mean (Balloon Performer's tree: 407 MB over 27,752 files, about 14.7 KB each).
 */
export function tripwireTreeSizes(files: number, totalBytes: number, random: () => number): number[] {
  if (!Number.isInteger(files) || files < 1) throw new Error(`tripwireTreeSizes: files must be a positive integer, got ${files}`);
  const mean = totalBytes / files;
  return Array.from({ length: files }, () => Math.max(1, Math.round(mean * (0.1 + 1.8 * random()))));
}

export type FileIdsStep = { action: "scan" | "evict"; part: number };

/**
 * The Figure 5 steps over 4 parts, one after another, each followed by a hold: AIDE scans parts 0
 * and 1 (its page cache grows), part 0 is evicted (it shrinks: a short run sees both directions),
 * then parts 2 and 3 are scanned (three parts cached: the peak, past base − floor), and parts 2,
 * 1, 3 are evicted again (back to nothing), and so on.
 */
const FILE_CYCLE: readonly FileIdsStep[] = [
  { action: "scan", part: 0 },
  { action: "scan", part: 1 },
  { action: "evict", part: 0 },
  { action: "scan", part: 2 },
  { action: "scan", part: 3 },
  { action: "evict", part: 2 },
  { action: "evict", part: 1 },
  { action: "evict", part: 3 },
];
export const FILE_PARTS = 4;

/** The k-th step (k from 0), cycling. */
export function fileIdsStep(k: number): FileIdsStep {
  return FILE_CYCLE[k % FILE_CYCLE.length]!;
}

/** Regular-expression text matching `s` literally. */
export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

export interface LabCageInput {
  cageName: string;
  runtimeDir: string;
  /** The lab's memory group every IDS process starts in (Tripwire blanks its command line, so the group is what tells the lab's IDS apart). */
  idsCgroup: string;
  vm: { kind: "cgroup"; path: string } | { kind: "qemu"; pid: number; qmpSocket: string } | { kind: "libvirt"; domain: string; uri: string };
  sizes: LabSizes;
  /** The balloon actuator's section (agent.actuators.balloon). */
  balloon: Record<string, unknown>;
}

/** The cage file `cage run` gets: one cage, its IDS matched by the lab's memory group, balloon actuator on. */
export function labCageConfig(input: LabCageInput): Record<string, unknown> {
  const vm =
    input.vm.kind === "cgroup"
      ? { kind: "cgroup", path: input.vm.path }
      : input.vm.kind === "libvirt"
        ? { kind: "libvirt", domain: input.vm.domain, uri: input.vm.uri }
        : { kind: "qemu", match: [{ pid: input.vm.pid }], qmpSocket: input.vm.qmpSocket };
  return {
    agent: {
      runtimeDir: input.runtimeDir,
      // Other engineers' agents may hold the default port; the lab reads the sockets, not Prometheus.
      prometheus: false,
      logLevel: "info",
      actuators: { balloon: input.balloon },
    },
    cages: [
      {
        name: input.cageName,
        vm,
        ids: [{ cgroup: input.idsCgroup, uid: 0 }],
        cpu: { cap: 200 },
        // The balloon back end follows vm.kind (memory.backend auto): QMP for qemu, virsh for libvirt, the limit for cgroup.
        memory: { base: input.sizes.baseBytes, floor: input.sizes.floorBytes },
      },
    ],
  };
}
