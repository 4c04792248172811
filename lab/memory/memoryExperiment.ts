/**
 * Runs one `cage lab memory` experiment end to end, with the real agent:
 *
 *   VM (a QEMU guest with virtio-balloon, the same guest as a private libvirtd's domain, or a
 *       process VM under a v1 memory cgroup)
 *   IDS (memoryLoad.c, AIDE scanning a tree, or Tripwire checking one) started inside the agent's page cache tracking
 *       group and inside a v1 memory cgroup of the lab's own (the independent measure)
 *   `cage run` with one cage and the balloon actuator: collectors → pipeline → actuator → VM
 *
 * Once a second the lab records the IDS's memory (VmRSS + the memory cgroup's page cache) and
 * what the VM gave up (base − actual). Everything it creates is removed, also on failure.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, type WriteStream, existsSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { enterCgroupsArgv } from "../../host/cgroup/cgroupMounts.js";
import { createTrackingCgroup } from "../../host/cgroup/trackingCgroup.js";
import { defaultEndpoints } from "../../protocol/endpoints.js";
import { createIdsAccounting, createProcessVmGroup } from "./labCgroups.js";
import { LabAgentLink } from "./labAgentLink.js";
import { fileIdsStep, filePartSizes, labCageConfig, labSizes, tripwireTreeSizes, type LabCageInput, type LabSizes } from "./memoryLabPlan.js";
import type { MemoryLabOptions } from "./memoryLabOptions.js";
import { agreement, floorCheck, moveTiming, REACTION_S, type BalloonMove, type BalloonStateSample, type MemoryRecord } from "./memoryRecords.js";
import { aidePath, aideScanArgv, compileMemoryLoad, evictPart, mallocIdsArgv, vmHoldArgv, writeFileTree, writeScanTree, type FileTree, type TreePart } from "./labWorkloads.js";
import { startLabQemuVm } from "./labQemuVm.js";
import { startLabLibvirtVm } from "./labLibvirtVm.js";
import { BALLOON_PERFORMER_TRIPWIRE, setUpTripwire, tripwireCheckArgv, type TripwireInstance } from "../common/tripwire.js";

/** The group `cage run` moves IDS processes into and the page cache collector traces (docs/config.md, agent.pageCache). */
export const AGENT_TRACKING_PARENT = "offloadcage";
export const AGENT_TRACKING_NAME = "ids";
/** The QEMU guest's RAM, MiB: the balloon's base. */
export const GUEST_MIB = 512;
/** What the lab must show: the guest (QEMU or libvirt) reaches each balloon target within 10 s. */
export const REACH_LIMIT_S = 10;

const cageEntry = (): string => fileURLToPath(new URL("../../cli/cage.js", import.meta.url));

/** A VM the lab runs and the balloon actuator moves. */
export interface LabVm {
  description: string;
  config: LabCageInput["vm"];
  /** The VM's actual memory as the lab itself can see it (cgroup limit), or null when only the actuator's QMP connection knows. */
  observedActualBytes(): number | null;
  /** Called once per record, with what the VM gave up then (for the VM's own view of it). */
  onSample(movedBytes: number | null): void;
  /** Extra figures for the summary (the guest's own MemTotal, the VM cgroup's usage). */
  details(): Record<string, unknown>;
}

export interface MemoryExperimentResult {
  records: MemoryRecord[];
  summary: Record<string, unknown>;
}

/** Balloon Performer §2's footprint, ours beside the paper's (`summary.tripwireFootprint`). */
export interface TripwireFootprint {
  files: number;
  treeBytes: number;
  peakRssBytes: number;
  peakCacheBytes: number;
  paper: typeof BALLOON_PERFORMER_TRIPWIRE;
}

export type Cleanup = { what: string; run: () => void | Promise<void> };

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await closed;
  clearTimeout(timer);
}

/** A log file several children write to; closed by the cleanups (after the children stopped). */
function logFile(path: string, cleanups: Cleanup[]): WriteStream {
  const stream = createWriteStream(path);
  stream.on("error", () => undefined);
  cleanups.push({ what: `close ${path}`, run: () => new Promise<void>((resolve) => stream.end(resolve)) });
  return stream;
}

function tail(path: string, chars: number): string {
  try {
    const text = readFileSync(path, "utf8");
    return text.slice(-chars).trim();
  } catch {
    return "(no log)";
  }
}

/**
 * The balloon actuator's config section for the lab: empty, so the experiment measures the
 * actuator as a user gets it (its default period, step limit, hysteresis and rate limit).
 */
export function labBalloonSection(): Record<string, unknown> {
  return {};
}

function processVm(id: string, sizes: LabSizes, memload: string, dir: string, cleanups: Cleanup[]): LabVm {
  const group = createProcessVmGroup(`offloadcage-lab-${id}-vm`, sizes.baseBytes);
  cleanups.push({ what: "remove the VM's memory cgroup", run: () => group.remove() });
  const [cmd, ...args] = enterCgroupsArgv([group.procsFile], vmHoldArgv(memload, sizes.vmHoldMiB)) as [string, ...string[]];
  const vmLog = logFile(join(dir, "vm.log"), cleanups);
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.pipe(vmLog, { end: false });
  child.stderr.pipe(vmLog, { end: false });
  cleanups.push({ what: "stop the process VM", run: () => stopChild(child, 2000) });
  return {
    description: `process VM under a cgroup v1 memory group (${group.path}); the balloon is its memory.limit_in_bytes`,
    config: { kind: "cgroup", path: group.path },
    observedActualBytes: () => group.limitBytes(),
    onSample: () => undefined,
    details: () => ({ vmCgroup: group.path, vmUsageBytes: group.usageBytes() }),
  };
}

/**
 * @param stop aborting it (SIGINT/SIGTERM in the command) ends the run early with an error,
 *   after everything it created is removed.
 */
export async function runMemoryExperiment(opts: MemoryLabOptions, progress: (line: string) => void, stop?: AbortSignal): Promise<MemoryExperimentResult> {
  const checkStop = (): void => {
    if (stop?.aborted === true) throw new Error("lab memory: interrupted; everything it started has been stopped and removed");
  };
  const id = randomBytes(3).toString("hex");
  const cageName = `lab-memory-${id}`;
  // On disk, not tmpfs: tmpfs pages are shmem, which the page cache attribution does not see.
  const dir = mkdtempSync("/var/tmp/offloadcage-lab-memory-");
  const cleanups: Cleanup[] = [{ what: "remove the run's temp dir", run: () => rmSync(dir, { recursive: true, force: true }) }];
  const loadAtStart = loadavg();
  try {
    checkStop();
    const sizes = labSizes(opts.vm, GUEST_MIB);
    const memload = compileMemoryLoad(dir);

    // The agent's tracking group (it adopts it if we create it first) and our accounting group.
    const tracking = createTrackingCgroup(AGENT_TRACKING_NAME, AGENT_TRACKING_PARENT);
    cleanups.push({
      what: "remove the tracking group if no one else uses it",
      run: () => {
        for (const d of [tracking.path, dirname(tracking.path)]) {
          try {
            rmdirSync(d);
          } catch {
            // Still used by another agent, or already removed by ours.
          }
        }
      },
    });
    const accounting = createIdsAccounting(`offloadcage-lab-${id}-ids`, tracking);
    cleanups.push({ what: "remove the IDS accounting group", run: () => accounting.remove() });

    let s = opts.seed;
    const random = (): number => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let parts: TreePart[] = [];
    if (opts.ids === "file") {
      progress(`writing the tree: ${sizes.fileParts} parts of ${sizes.filePartMiB} MiB`);
      parts = writeScanTree(dir, Array.from({ length: sizes.fileParts }, () => filePartSizes(sizes.filePartMiB, random)));
    }
    let tripwire: { tree: FileTree; instance: TripwireInstance } | null = null;
    if (opts.tripwireFiles !== null) {
      const files = opts.tripwireFiles;
      // The paper's mean file size (407 MB over 27,752 files), whatever the count.
      const totalBytes = (files * BALLOON_PERFORMER_TRIPWIRE.pageCacheMB * 1e6) / BALLOON_PERFORMER_TRIPWIRE.files;
      progress(`writing the tree: ${files} files, ${(totalBytes / 1e6).toFixed(0)} MB`);
      const tree = writeFileTree(join(dir, "tree"), tripwireTreeSizes(files, totalBytes, random));
      // The baseline reads every file and drops it from the cache as it closes it, so the first check reads cold.
      progress("tripwire --init (the baseline)");
      tripwire = { tree, instance: setUpTripwire(join(dir, "tw"), [tree.dir]) };
    }

    progress(opts.vm === "qemu" ? `starting the QEMU guest (${GUEST_MIB} MiB, virtio-balloon)` : opts.vm === "libvirt" ? `starting a private libvirtd and the guest as its domain (${GUEST_MIB} MiB, virtio-balloon)` : "starting the process VM");
    const vm =
      opts.vm === "qemu" ? await startLabQemuVm(GUEST_MIB, cleanups) : opts.vm === "libvirt" ? await startLabLibvirtVm(`oc-labmem-${id}`, GUEST_MIB, cleanups) : processVm(id, sizes, memload, dir, cleanups);

    const runtimeDir = join(dir, "run");
    const configPath = join(dir, "cage.json");
    writeFileSync(
      configPath,
      JSON.stringify(
        labCageConfig({ cageName, runtimeDir, idsCgroup: accounting.group.path, vm: vm.config, sizes, balloon: labBalloonSection() }),
        null,
        2,
      ),
    );
    const endpoints = defaultEndpoints(runtimeDir);
    const link = new LabAgentLink(cageName, endpoints.actuators?.balloon as string, endpoints.collectors.pagecache as string);
    cleanups.push({ what: "close the lab's sockets", run: () => link.close() });

    progress("starting the agent (cage run)");
    const agentLogPath = join(dir, "agent.log");
    const agentLog = logFile(agentLogPath, cleanups);
    const agent = spawn(process.execPath, [cageEntry(), "run", "--config", configPath], { stdio: ["ignore", "pipe", "pipe"] });
    agent.stdout.pipe(agentLog, { end: false });
    agent.stderr.pipe(agentLog, { end: false });
    cleanups.push({ what: "stop the agent", run: () => stopChild(agent, 15_000) });

    const readyBy = Date.now() + 60_000;
    // Ready: the actuator acts on fresh aggregates (not its start-up fail-safe) and the page cache collector runs.
    while (link.seen.latestState?.mode !== "active" || !link.seen.pageCacheCollectorUp) {
      checkStop();
      if (agent.exitCode !== null) throw new Error(`lab memory: cage run exited with ${agent.exitCode}; its log ends:\n${tail(agentLogPath, 2000)}`);
      if (Date.now() > readyBy) {
        const missing =
          link.seen.latestState === null
            ? "no act.state from the balloon actuator for the lab's cage"
            : link.seen.latestState.mode !== "active"
              ? `the balloon actuator is in mode ${link.seen.latestState.mode}`
              : "no status from the page cache collector";
        throw new Error(`lab memory: the agent was not ready within 60 s (${missing}); its log ends:\n${tail(agentLogPath, 2000)}`);
      }
      await sleep(200);
    }

    const idsChildren: ChildProcess[] = [];
    const idsLog = logFile(join(dir, "ids.log"), cleanups);
    const startIds = (argv: string[]): ChildProcess => {
      // Enter both groups before the IDS's first instruction, so its first reads are traced.
      const [cmd, ...args] = enterCgroupsArgv([tracking.procsFile, accounting.procsFile], argv) as [string, ...string[]];
      const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
      child.stdout.pipe(idsLog, { end: false });
      child.stderr.pipe(idsLog, { end: false });
      idsChildren.push(child);
      return child;
    };
    cleanups.push({ what: "stop the IDS", run: async () => void (await Promise.all(idsChildren.map((c) => stopChild(c, 2000)))) });

    const aide = opts.ids === "file" ? aidePath() : "";
    const stepLog: Array<{ t: number; step: string }> = [];
    let recording = true;
    const records: MemoryRecord[] = [];
    let peakRss = 0;
    let peakCache = 0;
    const t0 = Date.now();
    progress(`recording for ${opts.durationS} s`);
    if (opts.ids === "malloc") startIds(mallocIdsArgv(memload, sizes.mallocMinMiB, sizes.mallocMaxMiB, opts.holdS, opts.seed));
    const runIds = async (argv: string[], what: string): Promise<void> => {
      const child = startIds(argv);
      const code = await new Promise<number | null>((resolve) => child.once("close", (c) => resolve(c)));
      if (code !== 0 && recording) progress(`${what} exited with ${String(code)} (see ids.log)`);
    };
    // The file IDS: one step, then a hold once it is done (a scan takes as long as the machine
    // lets it; the hold is still a hold), like the malloc program, which holds after touching.
    const fileDriver =
      opts.ids === "malloc"
        ? Promise.resolve()
        : (async () => {
            await sleep(1000);
            for (let k = 0; recording; k++) {
              const started = Date.now();
              let step: string;
              if (tripwire !== null) {
                // Tripwire drops each file from the cache as it closes it: no evictions needed.
                await runIds(tripwireCheckArgv(tripwire.instance, join(tripwire.instance.dir, `check-${k}.twr`)), "tripwire --check");
                step = `check the tree (${tripwire.tree.files} files)`;
              } else {
                const { action, part } = fileIdsStep(k);
                if (action === "scan") await runIds(aideScanArgv(aide, parts[part]!), `aide scanning part ${part}`);
                else evictPart(parts[part]!);
                step = `${action} part ${part} (${parts[part]!.bytes / 1048576} MiB)`;
              }
              stepLog.push({ t: Math.round((started - t0) / 100) / 10, step: `${step}, ${((Date.now() - started) / 1000).toFixed(1)} s` });
              for (let waited = 0; waited < opts.holdS * 1000 && recording; waited += 200) await sleep(200);
            }
          })();
    const stopIds = async (): Promise<void> => {
      recording = false;
      await Promise.all(idsChildren.map((c) => stopChild(c, 2000)));
      await fileDriver;
    };
    cleanups.push({ what: "stop the IDS driver", run: stopIds });

    for (let t = 0; t <= opts.durationS; t++) {
      const wait = t0 + t * 1000 - Date.now();
      if (wait > 0) await sleep(wait);
      checkStop();
      if (agent.exitCode !== null) throw new Error(`lab memory: cage run exited during the run (${agent.exitCode}); its log ends:\n${tail(agentLogPath, 2000)}`);
      const ids = accounting.idsBytes();
      peakRss = Math.max(peakRss, ids.rssBytes);
      peakCache = Math.max(peakCache, ids.cacheBytes);
      const state = link.seen.latestState;
      const vmActual = vm.observedActualBytes() ?? state?.values.vmActualBytes ?? null;
      const moved = vmActual === null ? null : sizes.baseBytes - vmActual;
      vm.onSample(moved);
      records.push({
        t,
        idsBytes: ids.totalBytes,
        movedBytes: moved,
        vmTargetBytes: state?.values.vmTargetBytes ?? null,
        vmActualBytes: vmActual,
      });
    }
    const endMs = Date.now();
    await stopIds();
    const vmDetails = vm.details();
    const seen = link.seen;

    const states: BalloonStateSample[] = seen.states.map((s) => ({ timeMs: s.timeMs, targetBytes: s.values.vmTargetBytes ?? null, actualBytes: s.values.vmActualBytes ?? null }));
    const moves: BalloonMove[] = seen.decisions
      .filter((d) => d.setting === "vm.memory.target" && !d.dryRun && d.error === undefined && d.to !== null && d.timeMs >= t0)
      .map((d) => ({ timeMs: d.timeMs, targetBytes: d.to as number }));
    const modes: Record<string, number> = {};
    // Modes while recording (before t0 the actuator may still be in its start-up fail-safe).
    for (const s of seen.states) if (s.timeMs >= t0) modes[s.mode] = (modes[s.mode] ?? 0) + 1;

    const summary = {
      ids: opts.ids,
      idsWorkload:
        opts.ids === "malloc"
          ? `memoryLoad.c: frees its block, mallocs and touches a random ${sizes.mallocMinMiB}–${sizes.mallocMaxMiB} MiB, holds it ${opts.holdS} s, and again (seed ${opts.seed})`
          : opts.ids === "tripwire"
            ? `Tripwire (tripwire --check, a private instance) checking a tree of ${tripwire?.tree.files ?? 0} files (${((tripwire?.tree.bytes ?? 0) / 1e6).toFixed(0)} MB), again ${opts.holdS} s after each check ends (Tripwire drops each file from the page cache as it closes it)`
            : `AIDE (${aide} --init) scanning ${parts.length} tree parts of ${sizes.filePartMiB} MiB, one step every ${opts.holdS} s (scan a part, or evict one from the page cache; at most 3 parts cached)`,
      idsMeasure: "VmRSS of the IDS processes + page cache charged to the IDS's own cgroup v1 memory group (memory.stat cache)",
      vm: opts.vm,
      vmDescription: vm.description,
      backend: seen.latestState?.backend ?? null,
      durationS: opts.durationS,
      holdS: opts.holdS,
      seed: opts.seed,
      baseBytes: sizes.baseBytes,
      floorBytes: sizes.floorBytes,
      settled: `no second-to-second change of the IDS's memory larger than the tolerance in the ${opts.settleS} s before the sample, and the IDS within half the tolerance of its value ${REACTION_S} s before`,
      agreement: agreement(records, sizes.baseBytes, sizes.floorBytes, opts.settleS),
      floor: floorCheck(records, states, sizes.baseBytes, sizes.floorBytes),
      moves: moveTiming(moves, states.filter((s) => s.timeMs >= t0), REACH_LIMIT_S, endMs),
      idsPeakRssBytes: peakRss,
      idsPeakCacheBytes: peakCache,
      // Balloon Performer §2: what its Tripwire kept, beside ours (peaks over the run's 1 s samples).
      tripwireFootprint: (tripwire === null
        ? null
        : { files: tripwire.tree.files, treeBytes: tripwire.tree.bytes, peakRssBytes: peakRss, peakCacheBytes: peakCache, paper: BALLOON_PERFORMER_TRIPWIRE }) satisfies TripwireFootprint | null,
      actuatorStates: seen.states.filter((x) => x.timeMs >= t0).length,
      actuatorModes: modes,
      malformedMessages: seen.malformed,
      vmDetails,
      steps: stepLog,
      loadAverage: { start: loadAtStart.map((x) => Math.round(x * 100) / 100), end: loadavg().map((x) => Math.round(x * 100) / 100) },
    };
    return { records, summary };
  } finally {
    for (const c of cleanups.reverse()) {
      try {
        await c.run();
      } catch (err) {
        progress(`cleanup (${c.what}) failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (existsSync(dir)) progress(`warning: ${dir} could not be removed`);
  }
}
