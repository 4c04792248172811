/**
 * `cage lab memory` end to end, short runs of the real experiments: the real agent (`cage run`
 * with the page cache collector, pipeline and balloon actuator), a real IDS (the malloc/free
 * program compiled with gcc, AIDE from Debian) and a real VM (a process VM under a cgroup v1
 * memory limit; the QEMU guest with virtio-balloon). The must-show properties are asserted on
 * what was measured: the IDS's memory is the lab's own measure (VmRSS + memory cgroup page
 * cache), the VM's memory is read from the kernel (cgroup) or from QMP (guest).
 * Two runs keep the whole under about 3.5 minutes: malloc on the guest (Figure 4, floor, reach
 * time) and AIDE on the process VM (Figure 5, cgroup back end). `cage lab memory` runs the others.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { CAGE_JS, pidsMatching } from "../../cli/cliHarness.js";
import type { MemoryRecord, MemoryAgreement, FloorCheck, MoveTiming } from "../../../lab/memory/memoryRecords.js";

interface LabRun {
  code: number | null;
  records: MemoryRecord[];
  summary: Record<string, unknown> & { agreement: MemoryAgreement; floor: FloorCheck; moves: MoveTiming };
  stderr: string;
}

/** Runs the lab; on a timeout it asks it to stop (SIGTERM: it cleans up), and only then kills. */
function runLab(args: string[], timeoutMs: number): Promise<LabRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CAGE_JS, "lab", "memory", "--json", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 20_000).unref();
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (timedOut) return reject(new Error(`cage lab memory ${args.join(" ")} did not finish within ${timeoutMs} ms\nstderr: ${stderr.slice(-3000)}`));
      if (stdout.trim() === "") return reject(new Error(`cage lab memory ${args.join(" ")} printed nothing (exit ${String(code)})\nstderr: ${stderr.slice(-3000)}`));
      const out = JSON.parse(stdout) as Omit<LabRun, "code" | "stderr">;
      resolve({ code, stderr, ...out });
    });
  });
}

function describe(run: LabRun): string {
  const a = run.summary.agreement;
  const rows = run.records.map((r) => `${r.t}: ids ${(r.idsBytes / 1048576).toFixed(1)} moved ${r.movedBytes === null ? "-" : (r.movedBytes / 1048576).toFixed(1)}`);
  return `settled ${a.settledSamples}, matching ${a.matchingSamples}, max error ${a.maxSettledErrorBytes}\n${rows.join("\n")}\nstderr: ${run.stderr.slice(-1500)}`;
}

function assertMustShow(run: LabRun, durationS: number): void {
  assert.equal(run.records.length, durationS + 1, "one record per second");
  for (const r of run.records) assert.deepEqual(Object.keys(r), ["t", "idsBytes", "movedBytes", "vmTargetBytes", "vmActualBytes"]);
  const a = run.summary.agreement;
  // Enough settled samples that the fraction means something (several holds of the IDS).
  assert.ok(a.settledSamples >= 8, `too few settled samples: ${describe(run)}`);
  assert.ok(a.matchFraction >= 0.95, `moved ≠ IDS memory in too many settled samples: ${describe(run)}`);
  assert.equal(run.summary.floor.crossed, false, "the VM went below its floor");
  // The IDS really moved memory: something was given to the host.
  assert.ok(Math.max(...run.records.map((r) => r.movedBytes ?? 0)) > 16 * 1048576, describe(run));
}

async function assertCleanedUp(): Promise<void> {
  // The lab's own groups (offloadcage-lab-<6 hex>-ids / -vm), not other labs' on this shared machine.
  const left = readdirSync("/sys/fs/cgroup/memory").filter((d) => /^offloadcage-lab-[0-9a-f]{6}-(ids|vm)$/.test(d));
  assert.deepEqual(left, [], "memory cgroups left behind");
  assert.deepEqual(await pidsMatching("/var/tmp/offloadcage-lab-memory-"), [], "processes of the run left behind");
}

void test("file IDS (AIDE), process VM: moved follows RSS + page cache, up and down", { timeout: 150_000 }, async () => {
  const run = await runLab(["--ids", "file", "--vm", "cgroup", "--duration", "55", "--hold", "10", "--seed", "777"], 140_000);
  assertMustShow(run, 55);
  // Scan, scan, evict, scan: moved grew and fell again.
  let highest = 0;
  let largestFall = 0;
  for (const r of run.records) {
    highest = Math.max(highest, r.movedBytes ?? 0);
    largestFall = Math.max(largestFall, highest - (r.movedBytes ?? 0));
  }
  assert.ok(largestFall > 100 * 1048576, `moved never fell after the eviction: ${describe(run)}`);
  assert.ok((run.summary.idsPeakCacheBytes as number) > 100 * 1048576, "AIDE's page cache was counted");
  assert.equal(run.summary.vm, "cgroup");
  // The lab read the limit from the kernel: what the actuator set is what the VM has.
  assert.ok(run.records.every((r) => r.vmActualBytes !== null && r.vmActualBytes <= (run.summary.baseBytes as number)));
  assert.equal(run.code, 0, run.stderr.slice(-1500));
  await assertCleanedUp();
});

// How fast a TCG guest's balloon follows depends on the host's load: the reach times are
// reported, not asserted; that every move was reached and the floor held is.
void test("malloc IDS, real QEMU guest: actual reaches each target, floor never crossed", { timeout: 240_000 }, async (t) => {
  const run = await runLab(["--ids", "malloc", "--vm", "qemu", "--duration", "60", "--hold", "15", "--seed", "1"], 220_000);
  assertMustShow(run, 60);
  const m = run.summary.moves;
  assert.ok(m.moves >= 3, `too few balloon moves: ${JSON.stringify(m)}`);
  assert.equal(m.unreached, 0, JSON.stringify(m));
  t.diagnostic(`balloon moves ${m.moves}: reached median ${m.medianReachS} s, max ${m.maxReachS} s; over ${m.limitS} s: ${m.slowerThanLimit}; load ${JSON.stringify(run.summary.loadAverage)}`);
  // The IDS grew past base − floor in this run (seeded), so the floor was really tested.
  assert.equal(run.summary.floor.idsExceededBaseMinusFloor, true, describe(run));
  assert.ok((run.summary.floor.minVmActualBytes ?? 0) >= run.summary.floor.floorBytes);
  assert.equal(run.code, m.withinLimit ? 0 : 1, `the exit status says whether every move was reached within ${m.limitS} s: ${run.stderr.slice(-1500)}`);
  await assertCleanedUp();
});
