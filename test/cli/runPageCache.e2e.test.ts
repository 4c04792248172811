/**
 * `cage run` with a cage that has a memory section: the agent starts the page cache collector,
 * moves the IDS into the cgroup v2 tracking group, and the aggregates carry the IDS's resident
 * page cache (real bpftrace, real files, real cgroup moves). At exit the IDS is moved back.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { decodeCageAggregates, type CageAggregate } from "../../protocol/cageAggregate.js";
import { MessageSubscriber } from "../../protocol/messageBus.js";
import { Topic } from "../../protocol/wireFormat.js";
import { evictFileFromCache, killAndWait, writeUncachedFile } from "../../collectors/pagecache/cacheWorkloads.js";
import { cgroupV2Root } from "../../host/cgroup/trackingCgroup.js";
import { startCage } from "./cliHarness.js";

const MiB = 1 << 20;
const FILE_BYTES = 64 * MiB;

function v2CgroupOf(pid: number): string {
  return /^0::(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, "utf8"))?.[1] ?? "?";
}

test("cage run charges the IDS's resident page cache to its cage, and puts the IDS back at exit", async () => {
  const dir = mkdtempSync(join(tmpdir(), "offloadcage-runpc-"));
  const marker = dir.replace(/[^A-Za-z0-9]/g, "");
  const file = join(dir, "scanned.bin");
  const trigger = join(dir, "go");
  writeUncachedFile(file, FILE_BYTES);
  // The IDS waits for the trigger so it reads only once it is inside the tracking group.
  const ids: ChildProcess = spawn("perl", ["-e", `until (-e $ARGV[0]) { select(undef, undef, undef, 0.05) } open(my $h, "<", $ARGV[1]) or die; my $b; while (sysread($h, $b, 1 << 20)) {} sleep 120`, trigger, file, `${marker}-ids`], { stdio: "ignore" });
  const vm: ChildProcess = spawn("perl", ["-e", "sleep 120", `${marker}-vm`], { stdio: "ignore" });
  const originalV2 = v2CgroupOf(ids.pid as number);
  const config = join(dir, "cages.json");
  writeFileSync(
    config,
    JSON.stringify({
      agent: { runtimeDir: join(dir, "run"), prometheus: false, resolveMs: 100, pageCache: { intervalMs: 200 } },
      cages: [{ name: "pc", vm: { kind: "process", match: [{ cmdline: `${marker}-vm` }] }, ids: [{ cmdline: `${marker}-ids`, uid: 0 }], cpu: { cap: 100 }, memory: { base: "1GiB", floor: "256MiB" } }],
    }),
  );
  const agent = startCage(["run", "--config", config]);
  const sub = new MessageSubscriber();
  let latest: CageAggregate | null = null;
  const waitFor = async (what: string, ok: (a: CageAggregate) => boolean, ms: number): Promise<CageAggregate> => {
    const t0 = Date.now();
    while (Date.now() - t0 < ms) {
      if (latest !== null && ok(latest)) return latest;
      await sleep(100);
    }
    throw new Error(`${what}: not seen within ${ms} ms; last ids.pageCacheBytes ${String(latest?.ids.pageCacheBytes)}; agent output:\n${agent.output().slice(-3000)}`);
  };
  try {
    sub.connect(`ipc://${join(dir, "run", "aggregates.sock")}`);
    sub.subscribe(Topic.cageAggregates);
    const consuming = (async () => {
      for await (const m of sub.messages(() => undefined)) latest = decodeCageAggregates(m.payload).aggregates.find((a) => a.cage === "pc") ?? latest;
    })();

    const t0 = Date.now();
    while (!v2CgroupOf(ids.pid as number).endsWith("/offloadcage/ids")) {
      assert.ok(Date.now() - t0 < 20_000, `IDS never moved into the tracking group; agent output:\n${agent.output().slice(-3000)}`);
      await sleep(100);
    }
    writeFileSync(trigger, "");
    const read = await waitFor("IDS page cache ≈ the file", (a) => a.ids.pageCacheBytes >= FILE_BYTES * 0.98, 20_000);
    assert.ok(read.ids.pageCacheBytes <= FILE_BYTES * 1.02, `attributed ${read.ids.pageCacheBytes} B for a ${FILE_BYTES} B file`);
    assert.deepEqual(read.ids.pids, [ids.pid]);

    evictFileFromCache(file);
    const evicted = await waitFor("IDS page cache back to ≈ 0 after eviction", (a) => a.ids.pageCacheBytes <= FILE_BYTES * 0.02, 10_000);
    assert.ok(evicted.ids.pageCacheBytes >= 0);
    sub.close();
    await consuming;
  } finally {
    sub.close();
    agent.child.kill("SIGTERM");
    await new Promise((r) => agent.child.once("exit", r));
    const after = v2CgroupOf(ids.pid as number);
    await killAndWait(ids);
    await killAndWait(vm);
    rmSync(dir, { recursive: true, force: true });
    assert.equal(after, originalV2, "the IDS is back in its own cgroup after the agent stopped");
    assert.ok(!existsSync(join(cgroupV2Root(), "offloadcage", "ids")), "the tracking group is removed");
  }
});
