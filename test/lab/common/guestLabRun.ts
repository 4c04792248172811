// What the QEMU-guest lab tests (test/lab/xen/xenLab.xen.ts, test/lab/v2/v2Lab.v2.ts) do around
// each boot: keep its console log, results and a summary in .cache/LAB/last-run/NAME/, print the
// markers as they come and the summary, and fail when QEMU overran or the guest wrote no results.
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { markerTime, repoRoot, type GuestRunResult, type LabMarker } from "../../../lab/common/guestBoot.js";

/** One lab's boots in its test file. */
export interface GuestLabTest {
  /** The lab's cache folder below .cache/ (xen-lab, v2-lab). */
  lab: string;
  timeoutMs: number;
  /** Who is said to have overrun the bound, and who wrote no results, in the assertions' messages. */
  machine: string;
  guest: string;
  /** Summary key → the marker whose time it shows. */
  markers: Record<string, string>;
}

/**
 * Boots once (`boot`, into the boot's folder), writes and prints the summary (timings, marker
 * times, then what `details` adds), asserts the boot ended in time with results; returns the run.
 */
export async function recordBoot<R extends GuestRunResult>(
  lab: GuestLabTest,
  name: string,
  spec: unknown,
  boot: (outDir: string, onMarker: (m: LabMarker) => void) => Promise<R>,
  details: (r: R) => Record<string, unknown>,
  diag: (s: string) => void,
): Promise<R & { results: NonNullable<R["results"]> }> {
  const outDir = join(repoRoot, ".cache", lab.lab, "last-run", name);
  mkdirSync(outDir, { recursive: true });
  const r = await boot(outDir, (m) => diag(`${m.atS.toFixed(1)}s ${m.name} ${m.rest}`));
  const summary = {
    spec,
    imagesSeconds: r.imagesSeconds,
    lockWaitSeconds: r.boot.lockWaitSeconds,
    qemuSeconds: r.boot.wallSeconds,
    ...Object.fromEntries(Object.entries(lab.markers).map(([key, marker]) => [key, markerTime(r.boot.markers, marker)])),
    ...details(r),
  };
  writeFileSync(join(outDir, "summary.json"), JSON.stringify(summary, null, 2));
  diag(JSON.stringify(summary));
  assert.equal(r.boot.timedOut, false, `${lab.machine} overran ${lab.timeoutMs} ms and QEMU was killed; console: ${r.consoleLogPath}`);
  assert.ok(r.results, `${lab.guest} wrote no results; console: ${r.consoleLogPath}`);
  return r as R & { results: NonNullable<R["results"]> };
}
