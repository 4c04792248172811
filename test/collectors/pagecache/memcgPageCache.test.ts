// The memory.stat fallback on a temporary directory tree that mimics cgroupfs (fake groups with
// cgroup.procs and memory.stat text as a v2 kernel writes them): this hybrid host has no v2
// memory controller, so no real v2 memory.stat exists here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PageCacheBatch } from "../../../protocol/rawBatches.js";
import { memcgBatch, memcgCrossCheck, memcgFallbackProblem, MemcgPageCacheSource } from "../../../collectors/pagecache/memcgPageCache.js";

function fakeGroup(root: string, name: string, procs: string, stat: string | null): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "cgroup.procs"), procs);
  if (stat !== null) writeFileSync(join(dir, "memory.stat"), stat);
  return dir;
}

void test("each group's memory.stat file under its lowest PID; empty groups left out; a group without memory.stat is named", async () => {
  const root = mkdtempSync(join(tmpdir(), "oc-fake-cgroupfs-"));
  try {
    const web = fakeGroup(root, "cages/web/ids", "812\n733\n", "anon 4096\nfile 73400320\nkernel 12288\nfile_mapped 0\n");
    const db = fakeGroup(root, "cages/db/ids", "", "anon 0\nfile 4096\n");
    const bare = fakeGroup(root, "cages/old/ids", "901\n", null);
    assert.deepEqual(memcgBatch([web, db], 5n), { sampledAtNs: 5n, untrackedInserts: 0, processes: [{ pid: 733, insertedBytes: 73400320, residentBytes: 73400320 }] });
    assert.equal(memcgFallbackProblem([web, db]), null);
    assert.equal(memcgFallbackProblem([web, bare]), `no memory.stat in ${bare} (the v2 memory controller is not enabled there)`);
    assert.throws(() => new MemcgPageCacheSource([bare], () => undefined), /^Error: page cache from memory.stat: no memory.stat in /);
    const batches: PageCacheBatch[] = [];
    const source = new MemcgPageCacheSource([web], (b) => batches.push(b));
    source.start(20);
    await new Promise((r) => setTimeout(r, 70));
    writeFileSync(join(web, "memory.stat"), "anon 0\nfile 0\n");
    await new Promise((r) => setTimeout(r, 50));
    source.stop();
    assert.ok(batches.length >= 3, `${batches.length} batches`);
    assert.equal(batches[0]?.processes[0]?.residentBytes, 73400320);
    assert.equal(batches.at(-1)?.processes[0]?.residentBytes, 0, "follows the kernel's figure");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

void test("cross-check: eBPF's resident bytes of a group's processes beside the group's memory.stat file", () => {
  const root = mkdtempSync(join(tmpdir(), "oc-fake-cgroupfs-"));
  try {
    const web = fakeGroup(root, "cages/web/ids", "733\n812\n", "file 8388608\n");
    const db = fakeGroup(root, "cages/db/ids", "900\n", "file 4096\n");
    const bare = fakeGroup(root, "ids", "950\n", null);
    const batch: PageCacheBatch = {
      sampledAtNs: 1n,
      untrackedInserts: 0,
      processes: [
        { pid: 733, insertedBytes: 9 << 20, residentBytes: 6 << 20 },
        { pid: 812, insertedBytes: 2 << 20, residentBytes: 2 << 20 },
        { pid: 950, insertedBytes: 1 << 20, residentBytes: 1 << 20 },
        { pid: 1234, insertedBytes: 1 << 20, residentBytes: 1 << 20 },
      ],
    };
    assert.deepEqual(memcgCrossCheck(batch, [web, db, bare]), { ebpfResidentBytes: 8 << 20, memcgFileBytes: 8388608 + 4096 });
    assert.equal(memcgCrossCheck(batch, [bare]), null, "no group with memory.stat: no cross-check");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
