/**
 * Against the real kernel (needs root, bpftrace, cgroup v2): attribution of a cold read,
 * eviction by another task, unlink, restart after bpftrace dies, and a full ownership map.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { cachedBytesOfFile, evictFileFromCache, killAndWait, readThenSleepArgv, spawnReader, writeUncachedFile } from "../../../collectors/pagecache/cacheWorkloads.js";
import { enterCgroupsArgv } from "../../../host/cgroup/cgroupMounts.js";
import { startPageCacheMeasurement } from "../../../collectors/pagecache/pageCacheMeasurement.js";
import { startPageCacheSource } from "../../../collectors/pagecache/pageCacheSource.js";
import { createTrackingCgroup } from "../../../host/cgroup/trackingCgroup.js";
import { decodeCollectorStatus } from "../../../protocol/cageAggregate.js";
import { MessageSubscriber } from "../../../protocol/messageBus.js";
import { decodePageCacheBatch, type PageCacheBatch } from "../../../protocol/rawBatches.js";
import { Encoding, Topic } from "../../../protocol/wireFormat.js";
import { processExists } from "../../../host/proc/processTable.js";

const MiB = 1 << 20;
const tag = (): string => `offloadcage-test-pc-${process.pid}-${randomBytes(3).toString("hex")}`;
const file = (name: string): string => `/var/tmp/${name}.bin`;

async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | null | false): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

void test("512 MiB cold read: inserted ≈ file size; evicted (DONTNEED, then unlink) while the reader lives: resident ≈ 0", { timeout: 90_000 }, async () => {
  const name = tag();
  const a = file(`${name}-a`);
  const b = file(`${name}-b`);
  const m = await startPageCacheMeasurement({ name, trackingParent: "", intervalMs: 200 });
  const readers = [];
  try {
    writeUncachedFile(a, 512 * MiB);
    const readerA = await spawnReader(m.wrapCommand(readThenSleepArgv([a], 60)));
    readers.push(readerA);
    const afterRead = await m.sample();
    console.log("512 MiB read:", afterRead);
    const size = 512 * MiB;
    assert.ok(Math.abs(afterRead.pageCacheInsertedBytes - size) <= 0.02 * size, `inserted ${afterRead.pageCacheInsertedBytes} vs file ${size}`);
    // Resident is checked against what is really cached (mincore): the host's proactive reclaim
    // (kdamond) or another test's drop_caches may already have taken some of it.
    const cachedNow = cachedBytesOfFile(a);
    assert.ok(Math.abs(afterRead.pageCacheResidentBytes - cachedNow) <= 0.02 * size, `resident ${afterRead.pageCacheResidentBytes} vs cached ${cachedNow}`);
    assert.equal(afterRead.pageCacheUntrackedInserts, 0);

    // Eviction by a task outside the group is still subtracted from the reader.
    evictFileFromCache(a);
    const afterEvict = await m.sample();
    console.log("after DONTNEED by another task:", afterEvict);
    assert.ok(processExists(readerA.pid!), "reader still alive");
    assert.ok(afterEvict.pageCacheResidentBytes <= 0.02 * size, `resident ${afterEvict.pageCacheResidentBytes} after eviction`);
    assert.equal(afterEvict.pageCacheInsertedBytes, afterRead.pageCacheInsertedBytes);

    // Unlink: the page cache of a deleted file goes once its last user closed it.
    writeUncachedFile(b, 256 * MiB);
    readers.push(await spawnReader(m.wrapCommand(readThenSleepArgv([b], 60))));
    const beforeUnlink = await m.sample();
    const cachedB = cachedBytesOfFile(b);
    assert.ok(beforeUnlink.pageCacheInsertedBytes - afterEvict.pageCacheInsertedBytes >= 0.98 * 256 * MiB, "reading b inserted it");
    assert.ok(Math.abs(beforeUnlink.pageCacheResidentBytes - cachedB) <= 0.02 * size, `resident ${beforeUnlink.pageCacheResidentBytes} vs cached ${cachedB}`);
    unlinkSync(b);
    const afterUnlink = await m.sample();
    console.log("after unlink:", afterUnlink);
    assert.ok(afterUnlink.pageCacheResidentBytes <= 0.02 * size, `resident ${afterUnlink.pageCacheResidentBytes} after unlink`);
  } finally {
    for (const r of readers) await killAndWait(r);
    await m.stop();
    rmSync(a, { force: true });
    rmSync(b, { force: true });
  }
});

void test("bpftrace killed: restarted with backoff; stop() leaves no bpftrace behind", { timeout: 60_000 }, async () => {
  const group = createTrackingCgroup(tag(), "");
  const batches: PageCacheBatch[] = [];
  const events: string[] = [];
  const source = await startPageCacheSource({
    cgroupV2Path: group.path,
    intervalMs: 100,
    maxTrackedPages: 1024,
    restartBackoff: { initialMs: 100, maxMs: 1000, healthyAfterMs: 60_000 },
    onBatch: (bt) => batches.push(bt),
    onEvent: (e) => events.push(`${e.level}: ${e.message}`),
  });
  try {
    await waitFor("a first batch", 30_000, () => batches.length > 0);
    const first = source.bpftracePid()!;
    process.kill(first, "SIGKILL");
    await waitFor("a restart", 20_000, () => source.counters.starts === 2 && source.bpftracePid() !== undefined);
    const second = source.bpftracePid()!;
    assert.notEqual(second, first);
    const n = batches.length;
    await waitFor("a batch from the new bpftrace", 20_000, () => batches.length > n);
    assert.equal(source.counters.restarts, 1);
    assert.ok(events.some((e) => e.startsWith("warn: page cache collector: bpftrace exited (SIGKILL)")), events.join("\n"));
    await source.stop();
    assert.equal(processExists(second), false, "bpftrace still running after stop()");
    assert.equal(source.bpftracePid(), undefined);
  } finally {
    await source.stop();
    group.remove();
  }
});

void test("several groups (one per cage on a v2 host): a reader in the second group is attributed, one outside is not", { timeout: 60_000 }, async () => {
  const first = createTrackingCgroup(tag(), "");
  const second = createTrackingCgroup(tag(), "");
  const name = tag();
  const inside = file(`${name}-in`);
  const outside = file(`${name}-out`);
  const batches: PageCacheBatch[] = [];
  const readers = [];
  const source = await startPageCacheSource({ cgroupV2Path: first.path, extraCgroupV2Paths: [second.path], intervalMs: 100, maxTrackedPages: 65_536, onBatch: (bt) => batches.push(bt) });
  try {
    writeUncachedFile(inside, 64 * MiB);
    writeUncachedFile(outside, 64 * MiB);
    const reader = await spawnReader(enterCgroupsArgv([second.procsFile], readThenSleepArgv([inside], 30)));
    readers.push(reader);
    const stranger = await spawnReader(readThenSleepArgv([outside], 30));
    readers.push(stranger);
    const seen = await waitFor("the second group's reader in a batch", 20_000, () => batches.at(-1)?.processes.find((p) => p.pid === reader.pid && p.insertedBytes >= 0.98 * 64 * MiB));
    assert.ok(seen.insertedBytes <= 1.02 * 64 * MiB, `inserted ${seen.insertedBytes}`);
    assert.equal(batches.at(-1)?.processes.find((p) => p.pid === stranger.pid), undefined, "a reader in neither group is not tracked");
  } finally {
    for (const r of readers) await killAndWait(r);
    await source.stop();
    first.remove();
    second.remove();
    rmSync(inside, { force: true });
    rmSync(outside, { force: true });
  }
});

void test("a missing cgroup path fails at start with an exact message", { timeout: 30_000 }, async () => {
  await assert.rejects(
    startPageCacheSource({ cgroupV2Path: "/sys/fs/cgroup/unified/offloadcage-test-pc-missing", intervalMs: 100, maxTrackedPages: 16, onBatch: () => undefined }),
    /is not a cgroup directory/,
  );
});

void test("tiny ownership map: insertions that do not fit are counted, never silently lost", { timeout: 60_000 }, async () => {
  const name = tag();
  const f = file(name);
  const group = createTrackingCgroup(name, "");
  const seen: { last: PageCacheBatch | null } = { last: null };
  const source = await startPageCacheSource({ cgroupV2Path: group.path, intervalMs: 100, maxTrackedPages: 16, onBatch: (bt) => { seen.last = bt; } });
  let reader = null;
  try {
    writeUncachedFile(f, 64 * MiB);
    await killAndWait(await spawnReader(readThenSleepArgv([], 0))); // perl's own files cached first: the 16 slots are for f
    reader = await spawnReader(enterCgroupsArgv([group.procsFile], readThenSleepArgv([f], 60)));
    const pid = reader.pid!;
    const full = await waitFor("the read in a batch", 30_000, () => {
      const batch = seen.last;
      const p = batch?.processes.find((x) => x.pid === pid);
      return batch && p && p.insertedBytes >= 64 * MiB ? { batch, p } : null;
    });
    console.log("map of 16:", full.batch.untrackedInserts, "untracked;", source.counters);
    assert.ok(full.batch.untrackedInserts > 0, "untracked insertions counted");
    assert.ok(source.counters.untrackedBytes > 0);
    // At most 16 folios (2 MiB each at most) can be owned, so resident is bounded by the map.
    assert.ok(full.p.residentBytes <= 16 * 2 * MiB, `resident ${full.p.residentBytes}`);
    assert.ok(source.counters.ownedFolios <= 16);
    // What was tracked is still subtracted on eviction. (Not necessarily to 0: if another test
    // dropped the caches, perl's own files may be among the 16 folios owned.)
    evictFileFromCache(f);
    const after = await waitFor("the eviction subtracted", 30_000, () => {
      const p = seen.last?.processes.find((x) => x.pid === pid);
      return p && p.residentBytes < full.p.residentBytes && source.counters.ownedFolios < 16 ? p : null;
    });
    console.log("map of 16, resident before/after eviction:", full.p.residentBytes, after.residentBytes);
  } finally {
    if (reader) await killAndWait(reader);
    await source.stop();
    group.remove();
    rmSync(f, { force: true });
  }
});

/** bpftrace processes whose command line mentions `needle` (our unique cgroup path): ours only. */
function bpftraceWith(needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0");
      if (argv[0]!.endsWith("bpftrace") && argv.includes(needle)) out.push(Number(d));
    } catch {
      /* exited */
    }
  }
  return out;
}

void test("collector process publishes raw.pagecache and status, and SIGTERM leaves no bpftrace", { timeout: 60_000 }, async () => {
  const name = tag();
  const group = createTrackingCgroup(name, "");
  const dir = mkdtempSync("/tmp/offloadcage-test-pc-");
  const endpoint = `ipc://${dir}/pagecache.sock`;
  const entry = fileURLToPath(new URL("../../../collectors/pagecache/main.js", import.meta.url));
  const child = spawn(process.execPath, [entry, "--cgroup", group.path, "--endpoint", endpoint, "--interval-ms", "100", "--status-ms", "200", "--max-pages", "4096"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  const sub = new MessageSubscriber();
  try {
    sub.connect(endpoint);
    sub.subscribe(Topic.rawPageCache, Topic.status);
    const seen = new Set<string>();
    const deadline = setTimeout(() => sub.close(), 20_000);
    for await (const msg of sub.messages(() => undefined)) {
      if (msg.topic === Topic.rawPageCache) {
        assert.equal(msg.header.encoding, Encoding.pageCacheBatch);
        decodePageCacheBatch(msg.payload);
      } else {
        assert.equal(decodeCollectorStatus(msg.payload).collector, "pagecache");
      }
      seen.add(msg.topic);
      if (seen.size === 2) break;
    }
    clearTimeout(deadline);
    assert.deepEqual([...seen].sort(), [Topic.rawPageCache, Topic.status].sort(), stderr);
    assert.equal(bpftraceWith(group.path).length, 1, "one bpftrace running");
    child.kill("SIGTERM");
    assert.equal(await exited, 0, stderr);
    assert.deepEqual(bpftraceWith(group.path), [], "bpftrace left behind");
  } finally {
    sub.close();
    if (child.exitCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
    group.remove();
    rmSync(dir, { recursive: true, force: true });
  }
});
