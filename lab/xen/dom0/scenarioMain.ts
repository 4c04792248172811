/**
 * Runs inside the Xen lab's dom0 (started by lab/xen/dom0/init.sh):
 *   node scenarioMain.js SPEC.json RESULTS_DIR
 * Creates the busy domU, starts the IDS in dom0, runs the agent (`cage run`) with the cage file
 * the scenario calls for, records the agent's 1 s cage windows and the hypervisor's view
 * (`xl list`, `xl sched-credit*`), stops everything it started and writes RESULTS_DIR/results.json.
 * Every step is bounded in time: the host harness also kills the whole machine if this overruns.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, createWriteStream } from "node:fs";
import { join } from "node:path";
import { getPriority, setPriority } from "node:os";
import { fileURLToPath } from "node:url";
import { Topic } from "../../../protocol/wireFormat.js";
import { decodeCollectorStatus, type CollectorStatus } from "../../../protocol/cageAggregate.js";
import { decodeXenDomainCpu, type XenDomainCpu } from "../../../protocol/xenDomainCpu.js";
import { defaultEndpoints } from "../../../protocol/endpoints.js";
import { ATTACH_TIMEOUT_ENV } from "../../../runtime/bpftraceAttachTimeout.js";
import { parseXlList } from "../../../host/xen/xlList.js";
import { parseProcCpuTicks, parseProcStat } from "../../../host/proc/processTable.js";
import { parseHostCpuTicks, type HostCpuTicks } from "../../../host/proc/hostCpu.js";
import { DomainRunTimeAccounting } from "../../../collectors/xentrace/domainRunTime.js";
import { XentraceParser } from "../../../collectors/xentrace/traceRecords.js";
import { actuatorProgress, balloonCheck, capCompliance, cr3CapVerdict, cr3IdsAgreement, freshCageWindows, DEFAULT_CR3_DOMU, cr3PaperGuestRuns, cr3PaperSegmentFigures, cr3PaperSegments, cr3PaperSeries, guestKthreadPct, guestPanic, guestRateSpread, parseGuestKthreads, parseGuestMmSpan, parseGuestSchedstat, procStatShares, traceLagS, validateScenarioSpec, type Cr3PaperGuestSample, type Cr3PaperStep, type Cr3PaperWindow, type ActuatorProgress, type BalloonStep, type CageWindow, type Cr3Dom0Span, type Cr3IdsAgreement, type CapCompliance, type CapVerdict, type LabScenarioSpec } from "../labScenario.js";
import { idsHelperOffsets, parseKernelBtf } from "./kernelBtf.js";
import { CageAggregator } from "../../../pipeline/cageAggregator.js";
import { helperSnapshotFromLs } from "../../../host/xen/idsHelperEntries.js";
import { parseConfigText as loadConfigText } from "../../../config/loadConfig.js";
import { CageRecorder } from "../../common/cageRecorder.js";
import { renderSvgPlot } from "../../common/svgPlot.js";
import { capture as captureOutput, elapsed, exitWithScenario, run, say, scenarioArgs, sleep, waitFor } from "../../common/guestCommands.js";
import { cageDocument, cr3DomuConfig, cr3IdsCageDocument, domuConfig, aideConfig, idsScript, idsVmConfig, LAB_CAGE, LAB_DOMU, LAB_IDS_VM, LAB_RUNTIME_DIR } from "./labFiles.js";

const cageCli = fileURLToPath(new URL("../../../cli/cage.js", import.meta.url));
const LAB_DIR = "/run/lab";
/** dom0's records keep a failed command's text; its commands are bounded at 30 s unless said. */
const capture = (cmd: string, args: string[], timeoutMs = 30_000): Promise<string> => captureOutput(cmd, args, timeoutMs);

/** `xl list` can fail for a moment while a domain is being built or torn down: retry a few times. */
async function xlListRetrying(): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run("xl", ["list"]);
    } catch (err) {
      if (attempt >= 5) throw err;
      say(`xl list failed (attempt ${attempt}): ${(err as Error).message}`);
      await sleep(2_000);
    }
  }
}

async function domuMemMiB(): Promise<{ domu: number; dom0: number; table: string }> {
  const table = await xlListRetrying();
  const rows = parseXlList(table);
  const domu = rows.find((r) => r.name === LAB_DOMU);
  const dom0 = rows.find((r) => r.domain === 0);
  if (!domu || !dom0) throw new Error(`xl list has no ${LAB_DOMU} or no dom0:\n${table}`);
  return { domu: domu.memMiB, dom0: dom0.memMiB, table };
}

/** Starts a process in its own group so the whole tree can be killed; output to a log file. */
function startGroup(cmd: string, args: string[], logPath: string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const out = createWriteStream(logPath);
  const child = spawn(cmd, args, { detached: true, stdio: ["ignore", "pipe", "pipe"], env });
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  return child;
}

async function stopGroup(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  try {
    process.kill(-child.pid, "SIGTERM");
  } catch {
    return;
  }
  const timer = sleep(graceMs).then(() => "timeout" as const);
  if ((await Promise.race([exited.then(() => "exited" as const), timer])) === "timeout") {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
    await exited;
  }
}

/** Checks that the pieces the agent needs work in dom0: node + zeromq, bpftrace, xl, xentrace. */
async function smokeProbes(): Promise<Record<string, string>> {
  const probes: Record<string, [string, string[]]> = {
    cpuFlags: ["grep", ["-m1", "^flags", "/proc/cpuinfo"]],
    zeromq: [process.execPath, ["--input-type=module", "-e", "import * as zmq from 'zeromq'; const s = new zmq.Publisher(); await s.bind('ipc:///tmp/smoke.sock'); s.close(); console.log('zeromq ok');"]],
    bpftraceSched: ["bpftrace", ["-e", 'tracepoint:sched:sched_switch { @n = count(); } interval:s:1 { exit(); }']],
    xlList: ["xl", ["list"]],
    xentrace: ["xentrace", ["-D", "-e", "0x0002f000", "-T", "1", "/tmp/smoke.trace"]],
    nodeStart: [process.execPath, ["-e", "0"]],
    nodeStartJitless: [process.execPath, ["--jitless", "-e", "0"]],
    validate: [process.execPath, [cageCli, "validate", "/run/lab/smoke-cage.json"]],
    validateJitless: [process.execPath, ["--jitless", cageCli, "validate", "/run/lab/smoke-cage.json"]],
    validateNoOpt: [process.execPath, ["--max-lazy", "--no-opt", cageCli, "validate", "/run/lab/smoke-cage.json"]],
  };
  writeFileSync("/run/lab/smoke-cage.json", JSON.stringify({ cages: [] }));
  const out: Record<string, string> = {};
  for (const [name, [cmd, args]] of Object.entries(probes)) {
    const t = Date.now();
    out[name] = `${await capture(cmd, args, 120_000)}\n(${Date.now() - t} ms)`;
    say(`probe ${name}: ${out[name].split("\n")[0]}`);
  }
  return out;
}

/** Subscribes to everything the agent publishes and keeps what the phases need. */
class AgentRecorder extends CageRecorder {
  readonly xen: XenDomainCpu[] = [];
  /** When each raw.xen window arrived here (dom0's clock), index for index with xen. */
  readonly xenArrivalMs: number[] = [];
  readonly statuses: CollectorStatus[] = [];

  constructor() {
    const ep = defaultEndpoints(LAB_RUNTIME_DIR);
    super(LAB_CAGE, [ep.aggregates, ep.collectors.xentrace as string, ...Object.values(ep.actuators ?? {})], [Topic.rawXen, Topic.status, Topic.actuatorDecision, Topic.actuatorState]);
  }

  protected override keep(topic: string, payload: Buffer): boolean {
    if (topic === Topic.rawXen) {
      this.xen.push(decodeXenDomainCpu(payload));
      this.xenArrivalMs.push(Date.now());
    }
    else if (topic === Topic.status) this.statuses.push(decodeCollectorStatus(payload));
    else return false;
    return true;
  }

  /** The newest cage window and xentrace window, for progress lines. */
  describe(): string {
    const a = this.latest;
    const x = this.xen[this.xen.length - 1];
    const cage = a ? `cage vm ${a.vm.cpuPct.toFixed(1)}% ids ${a.ids.cpuPct.toFixed(1)}% (ids pids ${a.ids.pids.length}) at ${a.timeMs}` : "no cage window";
    const xen = x ? `xen window at ${x.timeMs}: ${x.domains.map((d) => `${d.name || d.domain} ${(d.runNs / 1e6).toFixed(0)} ms`).join(", ")}` : "no xen window";
    return `${cage}; ${xen}; ${this.windows.length} cage / ${this.xen.length} xen windows`;
  }
}

/** Records `n` cage windows from now on, sampling the domU's scheduler parameters as it goes. */
async function recordWindows(recorder: AgentRecorder, n: number, schedCmd: string, label: string): Promise<{ windows: CageWindow[]; sched: { atS: number; text: string }[] }> {
  const from = recorder.windows.length;
  const sched: { atS: number; text: string }[] = [];
  const deadline = Date.now() + (n * 3 + 30) * 1000;
  while (recorder.windows.length - from < n && Date.now() < deadline) {
    await sleep(3_000);
    sched.push({ atS: elapsed(), text: await capture("xl", [schedCmd, "-d", LAB_DOMU]) });
    const w = recorder.windows[recorder.windows.length - 1];
    say(`${label}: ${recorder.windows.length - from}/${n} windows, last vm ${w?.vmPct.toFixed(1)}% ids ${w?.idsPct.toFixed(1)}% total ${w?.totalPct.toFixed(1)}%`);
  }
  return { windows: recorder.windows.slice(from, from + n), sched };
}

async function main(): Promise<number> {
  const args = scenarioArgs<LabScenarioSpec>(process.argv.slice(2), validateScenarioSpec);
  if (args === null) return 2;
  const { spec, resultsDir } = args;
  // The project root: bare imports (zeromq) resolve from here.
  process.chdir(fileURLToPath(new URL("../../../../", import.meta.url)));
  mkdirSync(LAB_DIR, { recursive: true });
  const results: Record<string, unknown> = { spec, ok: false };
  const phases: Record<string, unknown> = {};
  const timings: Record<string, number> = {};
  results.timings = timings;
  results.phases = phases;
  const cleanups: (() => Promise<void>)[] = [];
  const save = (): void => writeFileSync(join(resultsDir, "results.json"), JSON.stringify(results, null, 2));
  const schedCmd = spec.scheduler === "credit" ? "sched-credit" : "sched-credit2";
  try {
    results.xlInfo = await run("xl", ["info"]);
    results.node = process.version;
    say(`xl info: ${/xen_scheduler\s*:\s*(\S+)/.exec(results.xlInfo as string)?.[1] ?? "?"}`);
    if (spec.phases[0] === "smoke") {
      results.probes = await smokeProbes();
      results.ok = true;
      return 0;
    }
    if (spec.phases[0] === "cr3-ids") {
      // cr3-paper, when asked for, runs inside it (validateScenarioSpec: only as cr3-ids,cr3-paper).
      // Filled as the phase goes: a later step that throws (actuators that never start) keeps the
      // comparison's figures in results.json.
      const r: Cr3IdsResult = {};
      phases["cr3-ids"] = r;
      await cr3IdsPhase(spec, resultsDir, cleanups, schedCmd, r);
      if (r.paper !== undefined) phases["cr3-paper"] = r.paper;
      results.ok = r.agreement !== undefined;
      return 0;
    }
    if (spec.phases[0] === "cr3-trace") {
      results.cr3 = await cr3TracePhase(spec, resultsDir, cleanups);
      results.ok = (results.cr3 as { traceBytes: number }).traceBytes > 0;
      return 0;
    }
    if (spec.phases[0] === "domu-probe") {
      writeFileSync(join(LAB_DIR, "domu1.cfg"), domuConfig(spec));
      await run("xl", ["create", join(LAB_DIR, "domu1.cfg")], 900_000);
      cleanups.push(async () => {
        await capture("xl", ["destroy", LAB_DOMU]);
      });
      say("domU created");
      // dom0 processes crashed once a domU ran (docs/xen-lab.md): which load makes them crash?
      const loads: ChildProcess[] = [];
      for (const l of spec.probeLoad ?? []) {
        if (l === "burn") for (const i of [1, 2]) loads.push(startGroup("sh", ["-c", "while :; do :; done"], join(resultsDir, `burn${i}.log`)));
        if (l === "xentrace") {
          // How many bytes xentrace gives in 5 s into a file and into a pipe.
          const sizes: Record<string, string> = {};
          sizes.file = await capture("sh", ["-c", "xentrace -D -e 0x0002f000 -T 5 /tmp/t.bin; ls -l /tmp/t.bin"]);
          // dom0 has no /dev/stdout symlink (devtmpfs alone): xentrace would write a file of that name.
          sizes.pipe = await capture("sh", ["-c", "xentrace -D -e 0x0002f000 -T 5 /proc/self/fd/1 | wc -c"]);
          results.xentraceSizes = sizes;
          say(`xentrace sizes: ${JSON.stringify(sizes)}`);
          loads.push(startGroup("xentrace", ["-D", "-e", "0x0002f000", "-S", "32", "/dev/null"], join(resultsDir, "xentrace.log")));
        }
        if (l === "bpftrace") loads.push(startGroup("bpftrace", ["-e", "tracepoint:sched:sched_switch { @[args->prev_pid] = count(); } interval:s:1 { clear(@); }"], join(resultsDir, "bpftrace.log")));
      }
      say(`domu-probe: loads ${JSON.stringify(spec.probeLoad ?? [])} for ${spec.durationS} s`);
      const probes: string[] = [];
      const until = elapsed() + spec.durationS;
      while (elapsed() < until) {
        probes.push(await capture(process.execPath, ["-e", "let x = 0; for (let i = 0; i < 3e6; i++) x += i; console.log(x)"]));
        probes.push((await capture("top", ["-b", "-n", "1"])).split("\n")[0] ?? "");
      }
      for (const c of loads) await stopGroup(c, 3_000);
      results.probes = probes;
      results.segfaults = (await capture("dmesg", [])).split("\n").filter((l) => /segfault|traps:|fatal signal/.test(l));
      say(`domu-probe: ${(results.segfaults as string[]).length} segfault/trap lines`);
      results.ok = true;
      return 0;
    }

    // What dom0 is doing, every 15 s: under TCG on a busy host everything is slow, and this
    // shows where the time goes.
    const psLog = createWriteStream(join(resultsDir, "ps.log"));
    const psTimer = setInterval(() => {
      void capture("top", ["-b", "-n", "1"]).then((t) => psLog.write(`--- ${elapsed()}s\n${t}\n`));
    }, 15_000);
    cleanups.push(() => Promise.resolve(clearInterval(psTimer)));

    // The agent, without actuators: the phases start those themselves.
    const cagePath = join(LAB_DIR, "cage.json");
    writeFileSync(cagePath, JSON.stringify(cageDocument(spec, null), null, 2));
    // bpftrace compiles its program for minutes under TCG on a loaded host: 30 s is not enough.
    const agent = startGroup(process.execPath, [cageCli, "run", "--config", cagePath], join(resultsDir, "agent.log"), { ...process.env, [ATTACH_TIMEOUT_ENV]: "900000" });
    cleanups.push(() => stopGroup(agent, 15_000));
    timings.agentStartS = elapsed();
    say(`agent started, pid ${agent.pid}`);
    const recorder = new AgentRecorder();
    cleanups.push(() => recorder.close());
    // What the agent published, kept whether the scenario passes or fails.
    cleanups.push(() => {
      results.xenWindows = recorder.xen.slice(-200).map((w) => ({ timeMs: w.timeMs, windowSeconds: w.windowSeconds, session: w.session, domains: w.domains.map((d) => ({ domain: d.domain, name: d.name, runNs: d.runNs })), lostRecords: w.lostRecords }));
      results.cageWindows = recorder.windows.slice(-200);
      results.statuses = recorder.statuses.slice(-20);
      results.actuatorMessages = recorder.other.slice(-300);
      return Promise.resolve();
    });
    // The agent starts (node, bpftrace compiling its program) before the load does: under
    // TCG its start-up is slow enough without competing with the busy domU and IDS.
    await waitFor("the agent's first cage window", 900_000, () => Promise.resolve(recorder.latest !== null ? true : null));
    timings.agentFirstWindowS = elapsed();
    say(`agent publishing after ${(timings.agentFirstWindowS - timings.agentStartS).toFixed(1)} s`);

    writeFileSync(join(LAB_DIR, "domu1.cfg"), domuConfig(spec));
    // Minutes under TCG on a loaded host (measured: 74 s, 127 s, and over 120 s).
    await run("xl", ["create", join(LAB_DIR, "domu1.cfg")], 900_000);
    cleanups.push(async () => {
      await capture("xl", ["destroy", LAB_DOMU]);
    });
    await waitFor(`${LAB_DOMU} in xl list`, 300_000, async () => (await domuMemMiB()).domu > 0 || null);
    timings.domuCreatedS = elapsed();
    say(`domU created`);

    results.xlListStart = (await domuMemMiB()).table;

    // The IDS in dom0.
    if (spec.ids === "aide") {
      await run("mount", ["-t", "ext4", "-o", "ro", "/dev/vdd", "/mnt/domu-disk"]);
      cleanups.push(async () => {
        await capture("umount", ["/mnt/domu-disk"]);
      });
      for (const i of [1, 2]) writeFileSync(join(LAB_DIR, `aide-${i}.conf`), aideConfig("/mnt/domu-disk", join(LAB_DIR, `aide-${i}.db`)));
      // A cold walk of the disk's thousands of files: past 60 s under TCG on a loaded host.
      const files = await run("find", ["/mnt/domu-disk", "-type", "f"], 300_000);
      results.domuDiskFiles = files.split("\n").filter(Boolean).length;
      results.domuDiskUsage = await capture("df", ["-k", "/mnt/domu-disk"]);
    }
    writeFileSync(join(LAB_DIR, "lab-ids.sh"), idsScript(spec.ids, [1, 2].map((i) => join(LAB_DIR, `aide-${i}.conf`))));
    const ids = startGroup("sh", [join(LAB_DIR, "lab-ids.sh")], join(resultsDir, "ids.log"));
    cleanups.push(() => stopGroup(ids, 3_000));
    say(`IDS started (${spec.ids}), pid ${ids.pid}`);

    // Live = both halves of the cage are measured: xentrace windows and bpftrace windows.
    await waitFor("the cage's first window with both domU and IDS CPU", 300_000, () =>
      Promise.resolve(recorder.latest !== null && recorder.latest.vm.cpuPct > 0 && recorder.latest.ids.cpuPct > 0 ? true : null),
      () => recorder.describe(),
    );
    timings.liveS = elapsed();
    say(`cage live after ${(timings.liveS - timings.agentStartS).toFixed(1)} s`);
    // A few windows for the collectors' first, partial windows to pass.
    await sleep(3_000);

    for (const phase of spec.phases) {
      const t0 = elapsed();
      if (phase === "cpu-off") {
        const r = await recordWindows(recorder, spec.durationS, schedCmd, phase);
        phases[phase] = { windows: r.windows, sched: r.sched, compliance: capCompliance(r.windows, 3) };
      } else if (phase === "cpu-on") {
        const onPath = join(LAB_DIR, "cage-cpu.json");
        writeFileSync(onPath, JSON.stringify(cageDocument(spec, "cpu"), null, 2));
        // The CPU actuator caps the domU at cage cap − IDS CPU; the limiter holds the IDS at idsCap.
        const act = startGroup(process.execPath, [cageCli, "actuator", "cpu", "--config", onPath], join(resultsDir, "actuator-cpu.log"));
        const lim = startGroup(process.execPath, [cageCli, "actuator", "limiter", "--config", onPath], join(resultsDir, "actuator-limiter.log"));
        // Settling: both nodes starting (slow under TCG, and seconds to tens of seconds apart), the
        // CPU actuator's first cap reaching Xen, the caps taking hold. Waiting for any one
        // actuator's act.state let the recording start with the domU still uncapped.
        const tallies = (): { cpu: ActuatorProgress; limiter: ActuatorProgress } => ({ cpu: actuatorProgress(recorder.other, "cpu"), limiter: actuatorProgress(recorder.other, "limiter") });
        await waitFor("the limiter's act.state and the CPU actuator's first applied cap", 600_000, () => {
          const t = tallies();
          return Promise.resolve(t.limiter.states > 0 && t.cpu.applied > 0 ? true : null);
        }, () => JSON.stringify(tallies()));
        timings.actuatorLiveS = elapsed();
        say(`actuators live: ${JSON.stringify(tallies())}`);
        await sleep(10_000);
        const r = await recordWindows(recorder, spec.durationS, schedCmd, phase);
        await stopGroup(act, 10_000);
        await stopGroup(lim, 10_000);
        phases[phase] = {
          windows: r.windows,
          sched: r.sched,
          compliance: capCompliance(r.windows, 3),
          actuators: tallies(),
          actuatorExit: act.exitCode ?? act.signalCode,
          limiterExit: lim.exitCode ?? lim.signalCode,
        };
      } else if (phase === "balloon") {
        // Only the memory-growing IDS from here on: AIDE's RSS comes and goes with each scan.
        await stopGroup(ids, 3_000);
        phases[phase] = await balloonPhase(spec, recorder, resultsDir);
      }
      timings[`${phase}S`] = elapsed() - t0;
    }
    results.xlListEnd = (await domuMemMiB()).table;
    results.ok = true;
    return 0;
  } catch (err) {
    results.error = (err as Error).stack ?? String(err);
    say(`FAILED: ${(err as Error).message}`);
    return 1;
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    timings.totalS = elapsed();
    save();
  }
}

/** xentrace's scheduler class (runstates, switches) and HVM class (VMEXIT/VMENTRY, CR writes). */
const CR3_TRACE_MASK = "0x000af000";
const GUEST_CONSOLE = `/var/log/xen/console/guest-${LAB_DOMU}.log`;

/**
 * Creates the PVH domU with the spec's paging mode, waits for its init's first tick (or its end),
 * records `durationS` seconds of xentrace into RESULTS/cr3-trace.bin, and counts what the trace
 * holds with the collector's own parser. The guest's console and `xl dmesg` go to the results
 * whichever way it went: a guest that does not boot under TCG is itself the finding.
 */
async function cr3TracePhase(spec: LabScenarioSpec, resultsDir: string, cleanups: (() => Promise<void>)[]): Promise<Record<string, unknown>> {
  const cr3 = spec.cr3Domu ?? DEFAULT_CR3_DOMU;
  const out: Record<string, unknown> = { domu: cr3, traceBytes: 0 };
  const cfg = cr3DomuConfig(spec, cr3);
  out.xlConfig = cfg;
  writeFileSync(join(LAB_DIR, "domu1.cfg"), cfg);
  cleanups.push(async () => {
    if (existsSync(GUEST_CONSOLE)) copyFileSync(GUEST_CONSOLE, join(resultsDir, "domu-console.log"));
    writeFileSync(join(resultsDir, "cr3-xl-dmesg.txt"), await capture("xl", ["dmesg"]));
    await capture("xl", ["destroy", LAB_DOMU]);
  });
  out.create = await capture("xl", ["create", join(LAB_DIR, "domu1.cfg")], 900_000);
  out.createdAtS = elapsed();
  say(`cr3-trace: xl create: ${String(out.create).split("\n").slice(-3).join(" | ")}`);
  const consoleText = (): string => (existsSync(GUEST_CONSOLE) ? readFileSync(GUEST_CONSOLE, "utf8") : "");
  const state = async (): Promise<string> => {
    const row = (await capture("xl", ["list", LAB_DOMU])).split("\n")[1] ?? "";
    return row.trim().split(/\s+/)[4] ?? "gone";
  };
  // The guest's first tick means its init runs processes; a crashed or vanished guest ends the wait.
  const booted = await waitFor("the PVH domU's first tick", 300_000, async () => {
    if (consoleText().includes("domU: tick")) return "ticking";
    const st = await state();
    return st === "gone" || st.includes("c") || st.includes("s") ? `ended (${st})` : null;
  }, async () => `state ${await state()}, console ${consoleText().length} bytes: ${consoleText().split("\n").slice(-2).join(" | ")}`).catch((err: Error) => `not ticking: ${err.message}`);
  out.booted = booted;
  if (cr3.monitor) {
    const domid = (await capture("xl", ["domid", LAB_DOMU])).trim();
    out.monitor = await capture("cr3-monitor", [domid, "on"]);
    say(`cr3-trace: ${String(out.monitor).trim()}`);
  }
  out.bootWaitEndS = elapsed();
  say(`cr3-trace: domU ${booted}`);
  out.xlListBeforeTrace = await capture("xl", ["list"]);
  const tracePath = join(resultsDir, "cr3-trace.bin");
  // -S: 256 pages of trace buffer per CPU: HVM exits are many under shadow paging.
  out.xentrace = await capture("xentrace", ["-D", "-S", "256", "-e", CR3_TRACE_MASK, "-T", String(spec.durationS), tracePath], (spec.durationS + 60) * 1000);
  out.traceBytes = existsSync(tracePath) ? statSync(tracePath).size : 0;
  out.xlListAfterTrace = await capture("xl", ["list"]);
  if (out.traceBytes !== 0) {
    const accounting = new DomainRunTimeAccounting();
    const parser = new XentraceParser({ onRecordView: (r) => accounting.recordView(r), onCpuEnd: (cpu, tsc) => accounting.endCpu(cpu, tsc) });
    parser.write(readFileSync(tracePath));
    parser.end();
    const snap = accounting.snapshot();
    out.records = parser.stats.records;
    out.lostRecords = parser.stats.lostRecords;
    out.cr3Writes = snap.cr3Writes;
    out.cr3Values = snap.cr3.length;
  }
  say(`cr3-trace: ${String(out.traceBytes)} bytes, ${String(out.records)} records, ${String(out.cr3Writes)} CR3 writes, ${String(out.cr3Values)} (vCPU, CR3) pairs`);
  return out;
}

/** A process's CPU ticks, state and name from /proc/PID/stat; null once it is gone. */
function procStat(pid: string): { name: string; state: string; ticks: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const { comm, state } = parseProcStat(text);
    const { utimeTicks, stimeTicks } = parseProcCpuTicks(text);
    return { name: comm, state, ticks: utimeTicks + stimeTicks };
  } catch {
    return null; // gone between the listing and the read
  }
}

/** The agent's node processes by their role (`collector xentrace`, `pipeline`, ...); others by comm. */
function processRole(pid: string, comm: string, cache: Map<string, string>): string {
  if (comm !== "node") return comm;
  let role = cache.get(pid);
  if (role === undefined) {
    let argv: string[] = [];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      /* gone */
    }
    // The agent's children run `node FLAGS --import armParentWatch.js DIR/main.js ...`; the CLI `cage.js COMMAND`.
    const at = argv.findIndex((a, i) => a.endsWith(".js") && argv[i - 1] !== "--import");
    const script = argv[at] ?? "";
    role = at < 0 ? "node" : script.endsWith("cage.js") ? `node ${argv.slice(at + 1, at + 3).filter((a) => !a.startsWith("-")).join(" ")}` : `node ${script.split("/").slice(-2).join("/")}`;
    cache.set(pid, role);
  }
  return role;
}

/**
 * Where dom0's time goes while the trace is read (docs/xen-lab.md §CR3 IDS, dom0's load): every
 * 250 ms xentrace's state and wait channel (draining, waiting for Xen, or blocked writing into
 * the collector's pipe); every 2 s dom0's busy/idle/steal from /proc/stat (steal: its vCPUs
 * runnable but not run by Xen), the load average, CPU by process, and the trace's lag and lost
 * records from the raw.xen windows; every 10 s `xl vcpu-list` and a line on the console.
 * Lines go to RESULTS/dom0-load.jsonl; the summaries to the caller.
 */
function startDom0Sampler(resultsDir: string, recorder: AgentRecorder): { stop: () => void; samples: Record<string, unknown>[] } {
  const log = createWriteStream(join(resultsDir, "dom0-load.jsonl"));
  const samples: Record<string, unknown>[] = [];
  const roles = new Map<string, string>();
  let xentracePid: string | undefined;
  let xentraceStates: Record<string, number> = {};
  // xentrace's PID comes from the 2 s scan: a /proc scan every 250 ms while xentrace was not yet
  // running cost dom0 more than the rest of this sampler.
  const fast = setInterval(() => {
    try {
      if (xentracePid === undefined) return;
      const st = procStat(xentracePid);
      let wchan = "?";
      try {
        wchan = readFileSync(`/proc/${xentracePid}/wchan`, "utf8").trim() || "0";
      } catch {
        /* gone */
      }
      const key = `${st?.state ?? "gone"} ${wchan}`;
      xentraceStates[key] = (xentraceStates[key] ?? 0) + 1;
    } catch {
      /* a sample missed is no reason to stop sampling */
    }
  }, 250);
  let prevStat: HostCpuTicks | undefined;
  let prevTicks = new Map<string, number>();
  let prevXen = 0;
  let n = 0;
  const slow = setInterval(() => {
    try {
      n++;
      const stat = parseHostCpuTicks(readFileSync("/proc/stat", "utf8"));
      const shares = prevStat ? procStatShares(prevStat, stat) : undefined;
      prevStat = stat;
      const ticks = new Map<string, number>();
      const byRole: Record<string, number> = {};
      let xentrace: string | undefined;
      for (const pid of readdirSync("/proc")) {
        if (!/^\d+$/.test(pid)) continue;
        const st = procStat(pid);
        if (st === null) continue;
        ticks.set(pid, st.ticks);
        if (st.name === "xentrace") xentrace = pid;
        const d = st.ticks - (prevTicks.get(pid) ?? st.ticks);
        if (d > 0) {
          const role = processRole(pid, st.name, roles);
          byRole[role] = (byRole[role] ?? 0) + d;
        }
      }
      prevTicks = ticks;
      xentracePid = xentrace;
      const xen = recorder.xen.slice(prevXen);
      const lags = traceLagS(recorder.xen.map((w, i) => ({ arrivalMs: recorder.xenArrivalMs[i] ?? 0, windowSeconds: w.windowSeconds, session: w.session, lostRecords: w.lostRecords })));
      prevXen = recorder.xen.length;
      const sample = {
        atS: elapsed(),
        loadavg: readFileSync("/proc/loadavg", "utf8").trim(),
        ...shares,
        ticksByProcess: Object.fromEntries(Object.entries(byRole).sort((a, b) => b[1] - a[1]).slice(0, 8)),
        xentrace: xentraceStates,
        xenWindows: xen.length,
        traceS: xen.reduce((t, w) => t + w.windowSeconds, 0),
        lostRecords: xen.reduce((t, w) => t + w.lostRecords, 0),
        lagS: lags[lags.length - 1],
      };
      xentraceStates = {};
      samples.push(sample);
      log.write(`${JSON.stringify(sample)}\n`);
      if (n % 5 === 0) {
        const last = samples.slice(-5) as typeof sample[];
        const sum = (f: (s: typeof sample) => number): number => last.reduce((t, s) => t + f(s), 0);
        say(`dom0 load: ${sample.loadavg.split(" ").slice(0, 3).join(" ")}; busy ${sample.busyPct?.toFixed(0)}% steal ${sample.stealPct?.toFixed(0)}%; by process ${JSON.stringify(sample.ticksByProcess)}; xentrace ${JSON.stringify(sample.xentrace)}; last 10 s: ${sum((s) => s.xenWindows)} raw.xen windows, ${sum((s) => s.traceS).toFixed(1)} s of trace, ${sum((s) => s.lostRecords)} records lost; trace lag ${sample.lagS?.toFixed(1)} s`);
        void capture("xl", ["vcpu-list"]).then((t) => log.write(`${JSON.stringify({ atS: elapsed(), vcpuList: t })}\n`));
      }
    } catch (err) {
      say(`dom0 load: sample failed: ${(err as Error).message}`);
    }
  }, 2_000);
  return {
    samples,
    stop: () => {
      clearInterval(fast);
      clearInterval(slow);
      log.end();
    },
  };
}

/** The nice value the trace's reader runs at in dom0 during the cr3 phases. */
const TRACE_READER_NICE = -10;

/**
 * Puts the trace's reader ahead of everything else dom0 runs: the xentrace collector's node
 * process and xentrace itself, at TRACE_READER_NICE, checked every 2 s (a restarted xentrace
 * inherits the collector's). dom0 is held on one pCPU while the IDS-VM is measured, and there the
 * agent's other processes and this scenario took the CPU while xentrace sat blocked writing into
 * the collector's pipe and Xen dropped records (docs/xen-lab.md, the cr3-ids section).
 */
function keepTraceReaderAhead(): { stop: () => void; applied: string[] } {
  const applied: string[] = [];
  const roles = new Map<string, string>();
  const timer = setInterval(() => {
    try {
      for (const pid of readdirSync("/proc")) {
        if (!/^\d+$/.test(pid)) continue;
        const st = procStat(pid);
        if (st === null) continue;
        const role = processRole(pid, st.name, roles);
        if (role !== "xentrace" && role !== "node xentrace/main.js") continue;
        if (getPriority(Number(pid)) <= TRACE_READER_NICE) continue;
        setPriority(Number(pid), TRACE_READER_NICE);
        applied.push(`${role} ${pid} at ${elapsed()} s`);
        say(`cr3-ids: ${role} (pid ${pid}) now at nice ${TRACE_READER_NICE}`);
      }
    } catch (err) {
      say(`cr3-ids: raising the trace reader's priority failed: ${(err as Error).message}`);
    }
  }, 2_000);
  return { applied, stop: () => clearInterval(timer) };
}

const IDS_VM_CONSOLE = `/var/log/xen/console/guest-${LAB_IDS_VM}.log`;

interface Cr3IdsResult {
  offsets?: { pgd: number; pid: number; comm: number };
  agreement?: Cr3IdsAgreement;
  dom0Span?: Cr3Dom0Span;
  guestRateSpread?: [number, number];
  guestKthreadPct?: number;
  capXenWindows?: number;
  capDistinctWindows?: number;
  capXenArrivalMs?: number[];
  capAllWindows?: CageWindow[];
  capCollectorBefore?: CollectorStatus;
  capCollectorAfter?: CollectorStatus;
  capVerdict?: CapVerdict;
  compliance?: CapCompliance;
  windows?: CageWindow[];
  actuators?: { cpu: ActuatorProgress; limiter: ActuatorProgress };
  [key: string]: unknown;
}

/**
 * The IDS inside an IDS-VM, charged by CR3 (docs/xen-lab.md §CR3 IDS). Creates the PVH IDS-VM
 * (CR3 monitor on, its helper reporting `ids-loop`'s CR3 in xenstore) and the busy domU (paused),
 * runs the agent with the cage `vm: domu1, ids: [{ vm: idsvm, cr3From: helper }]`, and:
 * 1. with dom0 on pCPU 0 and the IDS-VM alone on pCPU 1, compares the cage's IDS CPU (dom0, by
 *    CR3) with ids-loop's own schedstat in the guest over 2 × durationS + 5 seconds, and with the
 *    guest's own trace of ids-loop's run time and of the time its address space was loaded;
 * 2. with cr3-paper, runs it (cr3PaperPhase) in the same IDS-VM under the same agent;
 * 3. unpauses the domU on pCPU 1 and starts the CPU actuator and the limiter: the cage (domU + the
 *    CR3-charged IDS) must stay within cap + 3 in durationS windows.
 * Fills `out` as it goes.
 * Bad helper input is planted from dom0 (a forged report below dom0's own path, a malformed one and
 * a CR3 that never runs below the IDS-VM's); the agent's log must show them ignored.
 */
async function cr3IdsPhase(spec: LabScenarioSpec, resultsDir: string, cleanups: (() => Promise<void>)[], schedCmd: string, out: Cr3IdsResult): Promise<void> {
  const cr3 = spec.cr3Domu ?? DEFAULT_CR3_DOMU;
  // dom0 and the domUs boot the same kernel: dom0's BTF gives the IDS-VM's struct offsets.
  const offsets = idsHelperOffsets(parseKernelBtf(readFileSync("/sys/kernel/btf/vmlinux")));
  out.offsets = offsets;
  say(`cr3-ids: helper offsets ${JSON.stringify(offsets)}`);
  out.pinDom0 = await capture("xl", ["vcpu-pin", "Domain-0", "all", "0"]);
  const consoleText = (): string => (existsSync(IDS_VM_CONSOLE) ? readFileSync(IDS_VM_CONSOLE, "utf8") : "");
  cleanups.push(async () => {
    if (existsSync(IDS_VM_CONSOLE)) copyFileSync(IDS_VM_CONSOLE, join(resultsDir, "idsvm-console.log"));
    await capture("xl", ["destroy", LAB_IDS_VM]);
    await capture("xl", ["destroy", LAB_DOMU]);
  });
  writeFileSync(join(LAB_DIR, "idsvm.cfg"), idsVmConfig(spec, cr3, offsets));
  out.createIdsVm = await capture("xl", ["create", join(LAB_DIR, "idsvm.cfg")], 900_000);
  // A guest whose kernel panicked never prints one: stop then, not after the whole wait.
  const idsVmStart = await waitFor("the IDS-VM's first ids-schedstat line", 300_000, () => {
    const text = consoleText();
    return Promise.resolve(parseGuestSchedstat(text).length > 0 ? "up" : guestPanic(text) !== null ? "panic" : null);
  }, () => Promise.resolve(consoleText().split("\n").slice(-3).join(" | ")));
  if (idsVmStart === "panic") throw new Error(`cr3-ids: the IDS-VM's kernel panicked before its first ids-schedstat line: ${guestPanic(consoleText()) ?? "?"}`);
  const domid = (await capture("xl", ["domid", LAB_IDS_VM])).trim();
  out.monitor = await capture("cr3-monitor", [domid, "on"]);
  say(`cr3-ids: IDS-VM d${domid} up; ${String(out.monitor).trim()}`);
  // The busy domU, paused until the cap part: only the IDS-VM runs on pCPU 1 while the views are compared.
  writeFileSync(join(LAB_DIR, "domu1.cfg"), `${domuConfig(spec)}cpus = "1"\n`);
  out.createDomu = await capture("xl", ["create", "-p", join(LAB_DIR, "domu1.cfg")], 900_000);
  // Bad input, planted from dom0 (which may write anywhere): the agent must ignore all three.
  const helperDir = (d: string): string => `/local/domain/${d}/data/offloadcage/ids`;
  out.planted = [
    await capture("xenstore-write", [`${helperDir("0")}/4242`, "0x1000 1"]),
    await capture("xenstore-write", [`${helperDir(domid)}/not-a-pid`, "0x2000 2"]),
    await capture("xenstore-write", [`${helperDir(domid)}/4194303`, "0x7ffff000 3"]),
  ];

  const cagePath = join(LAB_DIR, "cage.json");
  writeFileSync(cagePath, JSON.stringify(cr3IdsCageDocument(spec, null), null, 2));
  const agent = startGroup(process.execPath, [cageCli, "run", "--config", cagePath], join(resultsDir, "agent.log"), { ...process.env, [ATTACH_TIMEOUT_ENV]: "900000" });
  cleanups.push(() => stopGroup(agent, 15_000));
  const recorder = new AgentRecorder();
  cleanups.push(() => recorder.close());
  const dom0Load = startDom0Sampler(resultsDir, recorder);
  const readerAhead = keepTraceReaderAhead();
  cleanups.push(() => {
    readerAhead.stop();
    out.traceReaderNice = readerAhead.applied;
    dom0Load.stop();
    out.dom0Load = dom0Load.samples;
    // Each raw.xen window's arrival, trace span, lost records and the trace's lag behind dom0's clock.
    const arrivals = recorder.xen.map((w, i) => ({ arrivalMs: recorder.xenArrivalMs[i] ?? 0, windowSeconds: w.windowSeconds, session: w.session, lostRecords: w.lostRecords }));
    const lags = traceLagS(arrivals);
    out.xenArrivals = arrivals.map((a, i) => ({ ...a, lagS: lags[i] }));
    return Promise.resolve();
  });
  cleanups.push(() => {
    out.xenWindows = recorder.xen.slice(-120);
    out.cageWindows = recorder.windows.slice(-200);
    out.statuses = recorder.statuses.slice(-20);
    return Promise.resolve();
  });
  // The IDS-VM's console and state in each progress line: the one view of the guest from outside.
  const guestState = async (): Promise<string> => `${LAB_IDS_VM} ${((await capture("xl", ["list", LAB_IDS_VM])).split("\n")[1] ?? "").trim().split(/\s+/)[4] ?? "gone"}: ${consoleText().trim().split("\n").slice(-2).join(" | ")}`;
  const cr3View = async (): Promise<string> => {
    const x = recorder.xen[recorder.xen.length - 1]?.domains.find((d) => d.name === LAB_IDS_VM);
    const traced = (x?.vcpus ?? []).flatMap((v) => v.cr3s ?? []).sort((a, b) => b.runNs - a.runNs).slice(0, 4).map((c) => `${c.cr3} ${(c.runNs / 1e6).toFixed(0)} ms`);
    const reported = (await capture("xenstore-ls", ["-f", `/local/domain/${domid}/data`])).trim().split("\n").slice(-3).join(" | ");
    return `traced ${traced.join(", ") || "none"}; reported ${reported}`;
  };
  await waitFor("the cage's first window with IDS CPU charged by CR3", 900_000, () => Promise.resolve(recorder.latest !== null && recorder.latest.ids.cpuPct > 0 ? true : null), async () => `${recorder.describe()}; ${await guestState()}; ${await cr3View()}`);
  say(`cr3-ids: charging by CR3: ${recorder.describe()}`);
  writeFileSync(join(resultsDir, "xenstore-ls.txt"), await capture("xenstore-ls", ["-f", "/local/domain"]));
  await sleep(3_000);

  // 1. dom0's CR3 figure against the guest's own. dom0's is the agent's own aggregation
  // (CageAggregator: the helper's reports as xenstore holds them, the raw.xen windows the
  // collector published meanwhile), summed over whole windows: the cage windows only sample
  // the newest raw.xen window's rate, and the xentrace windows come irregularly under TCG.
  // Each edge of the span is cut as a fresh guest sample arrives (polled every 200 ms), not at
  // whatever sample is newest: a loaded guest's `sleep 1` sampler came round every 4.4 s.
  const freshSample = async (): Promise<number> => {
    const seen = parseGuestSchedstat(consoleText()).length;
    return waitFor("a new ids-schedstat line on the IDS-VM's console", 120_000, () => {
      const n = parseGuestSchedstat(consoleText()).length;
      return Promise.resolve(n > seen ? n - 1 : null);
    }, undefined, 200);
  };
  // The guest's address-space recording starts before the span and is accounted over exactly it.
  const mmNode = `/local/domain/${domid}/data/offloadcage/lab/mm`;
  out.mmOn = await capture("xenstore-write", [mmNode, "on"]);
  const firstIndex = await freshSample();
  const fromXen = recorder.xen.length;
  // Twice the windows: the xentrace windows lag the guest's clock by seconds, and a longer span
  // makes the misalignment a smaller part of it (guestRateSpread says how much it can be).
  await sleep((2 * spec.durationS + 5) * 1000);
  const lastIndex = await freshSample();
  const spanSamples = parseGuestSchedstat(consoleText());
  const mmFrom = spanSamples[firstIndex]?.uptimeS;
  const mmTo = spanSamples[lastIndex]?.uptimeS;
  if (mmFrom !== undefined && mmTo !== undefined) out.mmOff = await capture("xenstore-write", [mmNode, `off ${mmFrom} ${mmTo}`]);
  const xenSpan = recorder.xen.slice(fromXen);
  const guestSamples = parseGuestSchedstat(consoleText());
  const first = guestSamples[firstIndex];
  const last = guestSamples[lastIndex];
  if (first === undefined || last === undefined || lastIndex <= firstIndex) throw new Error(`cr3-ids: no ids-schedstat lines on the IDS-VM's console over the span (samples ${firstIndex} to ${lastIndex})`);
  const reportsText = await capture("xenstore-ls", ["-f", "/local/domain"]);
  const aggregator = new CageAggregator(loadConfigText(JSON.stringify(cr3IdsCageDocument(spec, null)), "cage.json").cages);
  aggregator.setIdsHelpers(helperSnapshotFromLs(reportsText));
  for (const w of xenSpan) aggregator.ingestXen(w);
  const idsVmEntries = xenSpan.map((w) => w.domains.find((d) => d.domain === Number(domid)));
  const dom0Span = {
    idsS: aggregator.cpuSeconds(LAB_CAGE, "ids"),
    vcpuRunS: idsVmEntries.reduce((s, d) => s + (d?.runNs ?? 0), 0) / 1e9,
    cr3UnknownS: idsVmEntries.reduce((s, d) => s + (d?.vcpus ?? []).reduce((t, v) => t + (v.cr3UnknownNs ?? 0), 0), 0) / 1e9,
    traceS: xenSpan.reduce((s, w) => s + w.windowSeconds, 0),
    windows: xenSpan.length,
    lostRecords: xenSpan.reduce((s, w) => s + w.lostRecords, 0),
  };
  out.guestSchedstat = { first, last };
  out.reportedCr3s = aggregator.reportedCr3s(LAB_CAGE);
  out.dom0Span = dom0Span;
  out.agreement = cr3IdsAgreement(first, last, dom0Span);
  out.guestRateSpread = guestRateSpread(guestSamples, firstIndex, lastIndex);
  out.guestKthreadPct = guestKthreadPct(parseGuestKthreads(consoleText()), first.uptimeS, last.uptimeS);
  // Every window of the span, with the IDS CR3's time in each, for a look at where the figures part.
  out.spanWindows = xenSpan.map((w, i) => ({ timeMs: w.timeMs, windowSeconds: w.windowSeconds, lostRecords: w.lostRecords, idsVmRunNs: idsVmEntries[i]?.runNs ?? 0, cr3s: idsVmEntries[i]?.vcpus.flatMap((v) => v.cr3s ?? []) ?? [] }));
  out.agreementCageWindows = recorder.windows.slice(-xenSpan.length).map((w) => w.idsPct);
  out.idsVmOwnPct = recorder.latest?.ids.idsVmOwnCpuPct;
  const a = out.agreement;
  // The guest's own trace of the IDS's address space over the same span: what of the gap to
  // schedstat is lazy TLB (kernel threads under ids-loop's CR3), measured instead of bounded.
  try {
    // The guest accounts its recording after the span: busybox awk under TCG takes minutes.
    await waitFor("the IDS-VM's ids-mm-span line", 600_000, () => Promise.resolve(consoleText().includes(`domU: ids-mm-span ${first.uptimeS} ${last.uptimeS} `) ? true : null), () => Promise.resolve(consoleText().trim().split("\n").slice(-2).join(" | ")), 1_000);
    const mm = parseGuestMmSpan(consoleText(), first.uptimeS, last.uptimeS);
    out.guestMm = mm;
    const mmRelError = mm.mmLoadedPct > 0 ? Math.abs(a.dom0Pct - mm.mmLoadedPct) / mm.mmLoadedPct : 1;
    out.mmLoadedRelError = mmRelError;
    say(`cr3-ids: over the same ${mm.spanS.toFixed(1)} s the guest's trace has ids-loop on the CPU ${mm.ownPct.toFixed(2)}% (schedstat ${a.guestPct.toFixed(2)}%), other tasks under its address space ${mm.othersPct.toFixed(2)}% (idle ${mm.idlePct.toFixed(2)}%), its address space loaded ${mm.mmLoadedPct.toFixed(2)}% (${mm.events} events, ${mm.overrun} dropped); dom0 by CR3 ${a.dom0Pct.toFixed(2)}%: ${(mmRelError * 100).toFixed(2)}% from "loaded", ${(a.relError * 100).toFixed(2)}% from schedstat`);
    const others = consoleText().split("\n").filter((l) => l.startsWith("domU: ids-mm-others ")).slice(-1)[0];
    // Who ran under ids-loop's address space, by the task its turn ended with.
    if (others !== undefined) out.guestMmOthers = others.trim();
  } catch (err) {
    const message = (err as Error).message;
    out.guestMmError = message;
    say(`cr3-ids: no guest address-space figures: ${message}`);
  }
  say(`cr3-ids: guest ${a.guestPct.toFixed(2)}% over ${a.spanS.toFixed(1)} s (steal ${a.guestStealPct.toFixed(2)}%, kernel threads ${out.guestKthreadPct.toFixed(2)}%, shifted ±3 samples ${out.guestRateSpread.map((x) => x.toFixed(2)).join("–")}%) vs dom0 ${a.dom0Pct.toFixed(2)}% of the IDS-VM's traced time (${a.dom0PerTracePct.toFixed(2)}% per trace second; traced ${a.vcpuTracedPct.toFixed(1)}% of ${a.traceS.toFixed(1)} s, ${a.windows} raw.xen windows, ${a.lostRecords} records lost): ${(a.relError * 100).toFixed(2)}% apart`);

  if (spec.phases.includes("cr3-paper")) {
    // Before the cap part: dom0 is still on pCPU 0, the domU still paused since its creation, and
    // the actuators' slow start (minutes on a loaded host) cannot starve it. A failure here must
    // not lose cr3-ids's figures above.
    try {
      out.paper = await cr3PaperPhase(spec, resultsDir, recorder, domid, consoleText, freshSample, schedCmd);
    } catch (err) {
      out.paper = { error: (err as Error).message };
      say(`cr3-paper: failed: ${(err as Error).message}`);
    }
  }

  // 2. The cage's cap with the domU running and the actuators on; dom0 gets both pCPUs back (the
  // actuators' node processes start slowly enough under TCG).
  out.unpinDom0 = await capture("xl", ["vcpu-pin", "Domain-0", "all", "all"]);
  out.unpause = await capture("xl", ["unpause", LAB_DOMU]);
  const onPath = join(LAB_DIR, "cage-cpu.json");
  writeFileSync(onPath, JSON.stringify(cr3IdsCageDocument(spec, "cpu"), null, 2));
  const act = startGroup(process.execPath, [cageCli, "actuator", "cpu", "--config", onPath], join(resultsDir, "actuator-cpu.log"));
  const lim = startGroup(process.execPath, [cageCli, "actuator", "limiter", "--config", onPath], join(resultsDir, "actuator-limiter.log"));
  cleanups.push(() => stopGroup(act, 10_000));
  cleanups.push(() => stopGroup(lim, 10_000));
  const tallies = (): { cpu: ActuatorProgress; limiter: ActuatorProgress } => ({ cpu: actuatorProgress(recorder.other, "cpu"), limiter: actuatorProgress(recorder.other, "limiter") });
  // 900 s: in a dom0 starved on a loaded host (load 8-18) neither had published after 600 s.
  await waitFor("the limiter's act.state and the CPU actuator's first applied cap", 900_000, () => {
    const t = tallies();
    return Promise.resolve(t.limiter.states > 0 && t.cpu.applied > 0 ? true : null);
  }, () => Promise.resolve(JSON.stringify(tallies())));
  await sleep(10_000);
  // The cage windows come from the pipeline's own 1 s timer, each with the newest raw.xen rate: when
  // the collector stalls they repeat one measurement. How many fresh ones there were says whether
  // the count within cap + 3 measured anything.
  // The bar is counted over the cage windows that each carry a fresh raw.xen window, recorded
  // until durationS of them arrived (or a bound): a stalled collector cannot pass it.
  const xenBeforeCap = recorder.xen.length;
  const cageBeforeCap = recorder.windows.length;
  out.capCollectorBefore = recorder.statuses[recorder.statuses.length - 1];
  const capDeadline = Date.now() + (spec.durationS * 6 + 60) * 1000;
  let fresh: CageWindow[] = [];
  const sched: { atS: number; text: string }[] = [];
  while (fresh.length < spec.durationS && Date.now() < capDeadline) {
    await sleep(3_000);
    sched.push({ atS: elapsed(), text: await capture("xl", [schedCmd, "-d", LAB_DOMU]) });
    fresh = freshCageWindows(recorder.windows.slice(cageBeforeCap), recorder.xen.slice(xenBeforeCap).map((x) => x.timeMs));
    const w = fresh[fresh.length - 1];
    say(`cr3-ids: ${fresh.length}/${spec.durationS} fresh windows (${recorder.windows.length - cageBeforeCap} cage, ${recorder.xen.length - xenBeforeCap} raw.xen), last vm ${w?.vmPct.toFixed(1)}% ids ${w?.idsPct.toFixed(1)}% total ${w?.totalPct.toFixed(1)}%`);
  }
  const capWindows = recorder.windows.slice(cageBeforeCap);
  out.capXenWindows = recorder.xen.length - xenBeforeCap;
  out.capXenArrivalMs = recorder.xenArrivalMs.slice(xenBeforeCap).map((t) => t - (recorder.xenArrivalMs[xenBeforeCap] ?? t));
  out.capCollectorAfter = recorder.statuses[recorder.statuses.length - 1];
  out.capDistinctWindows = new Set(capWindows.map((w) => `${w.vmPct}/${w.idsPct}`)).size;
  out.capAllWindows = capWindows;
  out.windows = fresh.slice(0, spec.durationS);
  out.sched = sched;
  out.compliance = capCompliance(out.windows, 3);
  out.capVerdict = cr3CapVerdict(out.compliance);
  out.actuators = tallies();
  out.idsSched = await capture("xl", [schedCmd, "-d", LAB_IDS_VM]);
  say(`cr3-ids: cap part ${out.capVerdict.ok ? "passed" : "FAILED"}: ${out.capVerdict.message} (${capWindows.length} cage windows, ${out.capDistinctWindows} distinct, ${out.capXenWindows} raw.xen windows)`);
  await stopGroup(act, 10_000);
  await stopGroup(lim, 10_000);
  out.agentLogRejections = readFileSync(join(resultsDir, "agent.log"), "utf8").split("\n").filter((l) => l.includes("IDS-VM helper entry ignored")).slice(0, 10);
}

/**
 * The paper's §5.3 in the cr3-ids phase's IDS-VM, under its agent (docs/xen-lab.md §cr3-paper):
 * dom0 on pCPU 0 and the busy domU still paused (before cr3-ids's cap part), both uncapped, the
 * IDS-VM's IDS is its CPU loop, then AIDE, each
 * for durationS; half-way the busy domU is unpaused beside the IDS-VM on pCPU 1, and the loop and
 * AIDE run again. dom0's figure per raw.xen window (the agent's aggregation with every report the
 * helper made in the phase) and the guest's schedstat per sample, as per-second series, per-segment
 * figures, cr3-paper.json and cr3-paper.svg.
 */
async function cr3PaperPhase(spec: LabScenarioSpec, resultsDir: string, recorder: AgentRecorder, domid: string, consoleText: () => string, freshSample: () => Promise<number>, schedCmd: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const stepNode = `/local/domain/${domid}/data/offloadcage/lab/step`;
  const setStep = async (step: Cr3PaperStep): Promise<void> => {
    await run("xenstore-write", [stepNode, step]);
  };
  out.pinDom0 = await capture("xl", ["vcpu-pin", "Domain-0", "all", "0"]);
  // Both domains uncapped, whatever ran before: the phase is about shares, not caps.
  out.uncap = [await capture("xl", [schedCmd, "-d", LAB_IDS_VM, "-c", "0"]), await capture("xl", [schedCmd, "-d", LAB_DOMU, "-c", "0"])];
  await setStep("loop");
  await sleep(5_000);
  // Every report the helper makes in the phase: AIDE's passes come and go, each with its own CR3.
  const reportLines = new Set<string>();
  // With the domain's name: the aggregator finds the cage's IDS-VM (named in the cage file) by it.
  const pollReports = async (): Promise<void> => {
    for (const line of (await capture("xenstore-ls", ["-f", `/local/domain/${domid}`])).split("\n")) {
      if (line.startsWith(`/local/domain/${domid}/name = `) || line.startsWith(`/local/domain/${domid}/data/offloadcage/ids/`)) reportLines.add(line.trim());
    }
  };
  const segments = cr3PaperSegments(spec.durationS);
  // The phase's clock: dom0's, started as a fresh guest sample arrives, whose uptime is the guest's zero.
  const zeroIndex = await freshSample();
  const t0 = Date.now();
  const zeroUptime = parseGuestSchedstat(consoleText())[zeroIndex]?.uptimeS;
  if (zeroUptime === undefined) throw new Error("cr3-paper: no ids-schedstat line at the phase's start");
  const fromXen = recorder.xen.length;
  const fromCage = recorder.windows.length;
  const marks: { atS: number; what: string }[] = [];
  const nowS = (): number => (Date.now() - t0) / 1000;
  for (const seg of segments) {
    if (seg.busyVm && !segments[segments.indexOf(seg) - 1]?.busyVm) {
      await run("xl", ["unpause", LAB_DOMU]);
      marks.push({ atS: nowS(), what: "busy domU unpaused" });
    }
    await setStep(seg.step);
    marks.push({ atS: nowS(), what: `step ${seg.step}` });
    say(`cr3-paper: ${seg.step}${seg.busyVm ? " beside the busy domU" : " alone"} from ${nowS().toFixed(1)} s; ${recorder.describe()}`);
    while (nowS() < seg.toS) {
      await pollReports();
      await sleep(Math.max(0, Math.min(3_000, (seg.toS - nowS()) * 1000)));
    }
  }
  // The trace trails dom0's clock by seconds: the last windows of the last segment come after it.
  await sleep(5_000);
  await pollReports();
  // The cap part after this phase runs with the loop, as cr3-ids alone does.
  await setStep("loop");
  // The guest's figures are cut on its own steps, which beside the busy domU come late: its last
  // segment's run ends when it takes this loop step (bounded, so a guest that lost a step still ends).
  const guestSamples = (): Cr3PaperGuestSample[] =>
    parseGuestSchedstat(consoleText())
      .map((g) => ({ atS: g.uptimeS - zeroUptime, runNs: g.runNs, ...(g.step !== undefined ? { step: g.step } : {}) }))
      .filter((g) => g.atS >= 0);
  const last = segments[segments.length - 1]!;
  const backOnLoop = (): boolean => {
    if (last.step === "loop") return true;
    const runs = cr3PaperGuestRuns(guestSamples().filter((g) => g.atS >= last.fromS));
    const i = runs.findIndex((r) => r.step === last.step);
    return i >= 0 && runs.slice(i + 1).some((r) => r.step === "loop");
  };
  await waitFor("the IDS-VM back on the loop after the phase", 120_000, () => Promise.resolve(backOnLoop() ? true : null)).catch((err: Error) => say(`cr3-paper: ${err.message}`));
  const lengthS = segments[segments.length - 1]!.toS;
  const xen = recorder.xen.slice(fromXen);
  const arrivals = recorder.xenArrivalMs.slice(fromXen);
  const aggregator = new CageAggregator(loadConfigText(JSON.stringify(cr3IdsCageDocument(spec, null)), "cage.json").cages);
  aggregator.setIdsHelpers(helperSnapshotFromLs([...reportLines].join("\n")));
  const windows: Cr3PaperWindow[] = xen.map((w, i) => {
    const before = aggregator.cpuSeconds(LAB_CAGE, "ids");
    aggregator.ingestXen(w);
    const vm = w.domains.find((d) => d.domain === Number(domid));
    const domu = w.domains.find((d) => d.name === LAB_DOMU);
    const unknownS = (vm?.vcpus ?? []).reduce((t, v) => t + (v.cr3UnknownNs ?? 0), 0) / 1e9;
    const runS = (vm?.runNs ?? 0) / 1e9;
    return { atS: ((arrivals[i] ?? w.timeMs) - t0) / 1000, windowSeconds: w.windowSeconds, idsS: aggregator.cpuSeconds(LAB_CAGE, "ids") - before, idsVmRunS: runS, idsVmKnownS: runS - unknownS, domuRunS: (domu?.runNs ?? 0) / 1e9 };
  });
  const guest = guestSamples();
  const series = cr3PaperSeries(lengthS + 5, windows, guest);
  const figures = cr3PaperSegmentFigures(segments, windows, guest, 5);
  const cage = recorder.windows.slice(fromCage).map((w) => ({ atS: (w.timeMs - t0) / 1000, idsPct: w.idsPct, vmPct: w.vmPct }));
  out.segments = figures;
  out.marks = marks;
  out.series = series;
  out.windows = windows;
  out.guest = guest;
  out.cageWindows = cage;
  out.reports = [...reportLines];
  out.lostRecords = xen.reduce((t, w) => t + w.lostRecords, 0);
  for (const f of figures) {
    const p = (v: number | null): string => (v === null ? "-" : `${v.toFixed(1)}%`);
    say(`cr3-paper: ${f.step}${f.busyVm ? " + busy domU" : " alone"} [${f.fromS + 5}, ${f.toS}) s: dom0 IDS ${p(f.dom0IdsPct)} per trace second, ${p(f.dom0IdsSharePct)} of the IDS-VM's time; guest schedstat ${p(f.guestIdsPct)}; IDS-VM ${p(f.idsVmPct)}, domU ${p(f.domuPct)} (${f.windows} windows, ${f.traceS.toFixed(1)} s of trace)`);
  }
  const plot = renderSvgPlot({
    title: `cr3-paper: IDS in its own VM (loop, AIDE; busy domU from ${segments[2]!.fromS} s)`,
    xLabel: "time (s)",
    yLabel: "CPU (% of one CPU)",
    x: series.x,
    series: [
      { label: "IDS by CR3 (dom0)", values: series.dom0IdsPct, color: "#ff7f0e" },
      { label: "IDS share of IDS-VM (dom0)", values: series.dom0IdsSharePct, color: "#8c564b", dashed: true },
      { label: "IDS schedstat (guest)", values: series.guestIdsPct, color: "#2ca02c" },
      { label: "IDS-VM (dom0)", values: series.idsVmPct, color: "#1f77b4" },
      { label: "busy domU (dom0)", values: series.domuPct, color: "#d62728" },
    ],
    yMax: 110,
  });
  writeFileSync(join(resultsDir, "cr3-paper.svg"), plot);
  writeFileSync(join(resultsDir, "cr3-paper.json"), JSON.stringify(out, null, 2));
  return out;
}

/**
 * Grows the IDS's memory step by step with the balloon actuator running; after each step waits
 * for `xl list` to settle and records the domU's and dom0's memory.
 */
async function balloonPhase(spec: LabScenarioSpec, recorder: AgentRecorder, resultsDir: string): Promise<Record<string, unknown>> {
  const grower = startGroup(process.execPath, [fileURLToPath(new URL("./idsMemory.js", import.meta.url)), "lab-ids", String(spec.balloonStepMiB)], join(resultsDir, "ids-memory.log"));
  const balloonPath = join(LAB_DIR, "cage-balloon.json");
  writeFileSync(balloonPath, JSON.stringify(cageDocument(spec, "balloon"), null, 2));
  const steps: (BalloonStep & { atS: number; table: string })[] = [];
  const sample = async (): Promise<void> => {
    const m = await domuMemMiB();
    const ids = recorder.latest;
    steps.push({ atS: elapsed(), idsBytes: ids ? ids.ids.rssBytes + ((ids.ids as { pageCacheBytes?: number }).pageCacheBytes ?? 0) : 0, domuMiB: m.domu, dom0MiB: m.dom0, table: m.table });
    say(`balloon: ids ${(steps[steps.length - 1]!.idsBytes / 2 ** 20).toFixed(1)} MiB, domU ${m.domu} MiB, dom0 ${m.dom0} MiB`);
  };
  // The grower's node must be up (and measured) before the actuator's baseline.
  await sleep(20_000);
  const act = startGroup(process.execPath, [cageCli, "actuator", "balloon", "--config", balloonPath], join(resultsDir, "actuator-balloon.log"));
  try {
    // The actuator is live once it publishes its state: node starts slowly in dom0 (minutes when the
    // host is busy), so a fixed sleep can end before it has moved anything.
    await waitFor("the balloon actuator's first act.state", 600_000, () => Promise.resolve(actuatorProgress(recorder.other, "balloon").states > 0 ? true : null));
    say(`balloon actuator live after ${elapsed().toFixed(1)} s`);
    await sleep(10_000);
    await sample();
    for (let i = 0; i < spec.balloonSteps; i++) {
      if (grower.pid !== undefined) process.kill(grower.pid, "SIGUSR1");
      // Memory sample (1 s), pipeline window, actuator period, balloon driver: give it time.
      await sleep(20_000);
      await sample();
    }
  } finally {
    await stopGroup(act, 10_000);
    await stopGroup(grower, 3_000);
  }
  return { steps, check: balloonCheck(steps), actuatorExit: act.exitCode ?? act.signalCode };
}

exitWithScenario(main);
