/**
 * The embedded demo's workloads, one process each (`--kind vm|ids`):
 *  - vm:  a service that burns CPU in a duty cycle (about 40% of one CPU), like a busy guest.
 *  - ids: a file-integrity scanner stand-in that hashes files under /usr for a few seconds,
 *         then idles, like a periodic Tripwire/AIDE run: CPU in bursts, and page cache.
 */
// First: a parent that dies while the modules below load must not leave us behind.
import "../../runtime/armParentWatch.js";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { stopWhenParentDies } from "../../runtime/parentWatch.js";

function burn(ms: number): void {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x = (x * 1103515245 + 12345) % 2147483648;
}

async function vmLoop(): Promise<never> {
  for (;;) {
    burn(40);
    await sleep(60);
  }
}

/** Yields file paths under `root`, depth first, skipping what we cannot read. */
function* walk(root: string): Generator<string> {
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return;
  }
  for (const name of entries) {
    const p = join(root, name);
    try {
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) yield* walk(p);
      else if (st.isFile() && st.size < 16 * 1024 * 1024) yield p;
    } catch {
      // unreadable entry: skip it, as a real scanner reports and moves on
    }
  }
}

async function idsLoop(): Promise<never> {
  for (;;) {
    const until = performance.now() + 3_000;
    for (const file of walk("/usr")) {
      try {
        createHash("sha256").update(readFileSync(file)).digest();
      } catch {
        // vanished or unreadable: skip
      }
      if (performance.now() > until) break;
      await sleep(0); // let signals be handled between files
    }
    await sleep(4_000);
  }
}

const kind = process.argv[process.argv.indexOf("--kind") + 1];
process.on("SIGTERM", () => process.exit(0));
stopWhenParentDies();
process.on("SIGINT", () => process.exit(0));
if (kind === "vm") void vmLoop();
else if (kind === "ids") void idsLoop();
else {
  process.stderr.write(`demoWorkload: --kind must be vm or ids, got ${String(kind)}\n`);
  process.exit(2);
}
