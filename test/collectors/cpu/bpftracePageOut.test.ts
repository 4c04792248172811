import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { pageOutFileMappings } from "../../../collectors/cpu/bpftracePageOut.js";

/** RssFile of a process, KiB. */
function rssFileKiB(pid: number): number {
  const m = /^RssFile:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(m, `RssFile in /proc/${pid}/status`);
  return Number(m[1]);
}

void test("the read-only file pages of a running process are paged out; it keeps running", async () => {
  // A node process run from its own copy of the binary: tens of MiB of file pages resident and
  // mapped by it alone, as bpftrace's LLVM pages are (the kernel leaves pages other processes map).
  // On disk, not tmpfs: a tmpfs page could only go to swap.
  const dir = mkdtempSync("/var/tmp/oc-pageout-");
  const node = join(dir, "node");
  copyFileSync(process.execPath, node);
  const child = spawn(node, ["-e", "console.log('up'); setInterval(() => console.log('tick'), 100);"], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    await once(child.stdout, "data");
    const pid = child.pid as number;
    const before = rssFileKiB(pid);
    assert.ok(before > 10 * 1024, `the child maps its binary: RssFile ${before} kB`);
    const r = await pageOutFileMappings(pid);
    assert.ok(r.advisedBytes > before * 1024, `advised ${r.advisedBytes} bytes`);
    const after = rssFileKiB(pid);
    assert.ok(after < before / 2, `RssFile ${before} kB before, ${after} kB after`);
    // Still alive and working: what it touches again is read back from the file.
    await once(child.stdout, "data");
    assert.equal(child.exitCode, null);
  } finally {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

void test("a PID that is not a process, or not a PID at all, is refused with a message naming it", async () => {
  await assert.rejects(pageOutFileMappings(0), { message: "page out: pid must be a positive integer, got 0" });
  await assert.rejects(pageOutFileMappings(1.5), { message: "page out: pid must be a positive integer, got 1.5" });
  const gone = spawn("true");
  await once(gone, "exit");
  await assert.rejects(pageOutFileMappings(gone.pid as number), new RegExp(`^Error: page out of PID ${gone.pid}: pidfd_open\\(${gone.pid}\\): No such process$`));
});
