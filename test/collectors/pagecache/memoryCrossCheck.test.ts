/**
 * Our attributed resident page cache against the kernel's memory cgroup accounting for the same
 * workload: a reader of 1 GiB over four files, before and after partial eviction.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync, unlinkSync } from "node:fs";
import { evictFileFromCache, killAndWait, readThenSleepArgv, spawnReader, writeUncachedFile } from "../../../collectors/pagecache/cacheWorkloads.js";
import { openMemoryCgroupCrossCheck, verifyAgainstMemoryCgroup, type CrossCheckComparison } from "../../../collectors/pagecache/memoryCgroupCrossCheck.js";

const MiB = 1 << 20;
const tag = (): string => `offloadcage-test-pc-${process.pid}-${randomBytes(3).toString("hex")}`;

function assertAgrees(c: CrossCheckComparison, what: string): void {
  console.log(what, c);
  assert.ok(Math.abs(c.relativeDifference) <= 0.02, `${what}: attributed ${c.attributedResidentBytes} vs memcg ${c.memcgKey} ${c.memcgCacheBytes}`);
}

void test("resident attribution agrees with the memory cgroup's cache for 1 GiB over 4 files, before and after partial eviction", { timeout: 120_000 }, async () => {
  const name = tag();
  const files = [0, 1, 2, 3].map((i) => `/var/tmp/${name}-${i}.bin`);
  const check = await openMemoryCgroupCrossCheck({ name, trackingParent: "", intervalMs: 200, maxTrackedPages: 524_288 });
  let reader = null;
  try {
    for (const f of files) writeUncachedFile(f, 256 * MiB);
    reader = await spawnReader(check.argv(readThenSleepArgv(files, 60)));

    const full = await check.compare();
    assertAgrees(full, "after reading 1 GiB:");
    assert.ok(full.attributedInsertedBytes >= 0.98 * 1024 * MiB, `inserted ${full.attributedInsertedBytes} after reading 1 GiB`);
    // Not exactly 1 GiB resident: the host's proactive reclaim (kdamond) may already take some.
    assert.ok(full.attributedResidentBytes >= 0.5 * 1024 * MiB, `resident ${full.attributedResidentBytes} after reading 1 GiB`);
    assert.equal(full.untrackedInserts, 0);

    // Partial eviction by other tasks: unlink one file, DONTNEED another.
    unlinkSync(files[0]!);
    evictFileFromCache(files[1]!);
    const half = await check.compare();
    assertAgrees(half, "after evicting 2 of 4 files:");
    assert.ok(half.attributedResidentBytes <= 1.02 * 512 * MiB, `resident ${half.attributedResidentBytes} after evicting half`);
    assert.ok(half.attributedResidentBytes >= 0.25 * 1024 * MiB, `resident ${half.attributedResidentBytes} after evicting half`);
  } finally {
    if (reader) await killAndWait(reader);
    await check.close();
    for (const f of files) rmSync(f, { force: true });
  }
  assert.equal(existsSync(check.tracking.path), false, "tracking group removed");
  assert.equal(existsSync(check.memory.path), false, "memory group removed");
});

void test("verifyAgainstMemoryCgroup on a command (cage measure --verify)", { timeout: 60_000 }, async () => {
  const name = tag();
  const f = `/var/tmp/${name}.bin`;
  try {
    writeUncachedFile(f, 128 * MiB);
    const r = await verifyAgainstMemoryCgroup({ name, trackingParent: "", intervalMs: 200, argv: ["cat", f], stdio: "ignore" });
    console.log("verify:", r);
    assert.equal(r.exitCode, 0);
    assert.equal(r.agrees, true);
    assert.ok(r.comparison.attributedInsertedBytes >= 128 * MiB);
  } finally {
    rmSync(f, { force: true });
  }
});
