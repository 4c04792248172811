/**
 * `cage lab cpu`: one run of the paper's cage experiment on this machine. A VM (nginx in its own
 * network namespace and cpu cgroup) serves HTTP load from wrk on the host; an IDS works for it
 * (tshark on the host-side veth, AIDE over /usr, or Tripwire over part of /usr, its baseline made
 * before the run); the agent (`cage run` with a generated cage file: real collectors, pipeline
 * and, with --actuators on, the CPU actuators) charges the IDS to the cage. The lab reads the agent's `agg.window` aggregates and the kernel's cpuacct counters
 * every second and returns the records and summary (lab/cpu/labRecords.ts).
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { enterCgroupsArgv } from "../../host/cgroup/cgroupMounts.js";
import { decodeCageAggregates } from "../../protocol/cageAggregate.js";
import { decodeActuatorState } from "../../protocol/actuatorMessages.js";
import { defaultEndpoints, ensurePrivateDir } from "../../protocol/endpoints.js";
import { MessageSubscriber } from "../../protocol/messageBus.js";
import { Topic } from "../../protocol/wireFormat.js";
import { setUpTripwireAsync, pickTrees, tripwireCheckArgv } from "../common/tripwire.js";
import { SCENARIOS, TRIPWIRE_ROOT, WARMUP_S, type LabCpuOptions } from "./labCpuOptions.js";
import {
  averagePerSecond,
  buildRecords,
  cpuSecondsOverSpans,
  crossCheck,
  lastPerSecond,
  limiterPrecision,
  parseProcStatBusyNs,
  percentPerSecond,
  phaseStats,
  workConserving,
  CAP_TOLERANCE_POINTS,
  type CounterSample,
  type CrossCheck,
  type LabCpuRecord,
  type LimiterPrecision,
  type PhaseStats,
  type WindowSample,
  type WorkConserving,
} from "./labRecords.js";
import { aideConfig, labCageFile, labNames, nginxConfig, NGINX_PORT, parseWrkRequestsPerSecond } from "./labSetup.js";
import { startLabLibvirtVm, LAB_CPU_SHARES, type LabLibvirtVm } from "./labLibvirtVm.js";
import { restartCheck, restartSummary, type RestartSummary, type RestartTimes, type VmPidsSeen } from "./labRestart.js";
import { CleanupStack, createNetwork, createV1Cgroup, killCgroupMembers, LabProcess, readCpuacctUsageNs, run, sweepDeadLabs, waitForHttp, writeCgroupFile } from "./labHost.js";

const CAGE_JS = fileURLToPath(new URL("../../cli/cage.js", import.meta.url));
/** wrk: one thread, enough connections to keep one nginx worker saturated. */
const WRK_THREADS = 1;
const WRK_CONNECTIONS = 16;
/**
 * The VM's CFS period. Every write of cpu.cfs_quota_us refills the group's runtime and restarts
 * its period, so an actuator rewriting the quota every 100 ms on a 100 ms period hands out up to
 * twice the quota (measured here: quota 30%, rewritten every 100 ms: 55% used). A 5 ms period
 * bounds that extra to about one period's quota per write (docs/lab-cpu.md).
 */
export const CFS_PERIOD_US = 5_000;
/** cpu.shares of the lab's VM and IDS groups (default 1024): labLibvirtVm.ts LAB_CPU_SHARES. */
/** The tree AIDE scans. */
const AIDE_TREE = "/usr";

/** The whole run after the warm-up has the same figures as one phase (labRecords.ts), minus its span. */
export interface LabCpuSummary extends Omit<PhaseStats, "fromS" | "toS"> {
  ids: string;
  idsTool: string;
  actuators: boolean;
  /** The IDS limiter's mode when set with --limiter-mode (else the limiter's default). */
  limiterMode: string | null;
  durationS: number;
  warmupS: number;
  toleratedPoints: number;
  capPct: number;
  idsCapPct: number | null;
  /** With --idle-after: the IDS-busy part alone, and the work-conserving idle part. */
  busyPhase: PhaseStats | null;
  workConserving: WorkConserving | null;
  kernelCrossCheck: {
    method: string;
    vm: CrossCheck;
    ids: CrossCheck;
    cpulimitIds?: CrossCheck;
  };
  /** With --compare-cpulimit: both IDS instances' precision against idsCap, same windows. */
  limiterComparison: { idsCapPct: number; fromS: number; toS: number; cageLimiter: LimiterPrecision; cpulimit: LimiterPrecision } | null;
  vm: { kind: string; description: string };
  /** With --restart-at: how the agent followed the domain's restart. */
  restart: RestartSummary | null;
  load: { tool: string; threads: number; connections: number; requestsPerSecond: number | null };
  /**
   * idsStarts: IDS runs begun (AIDE scans, Tripwire checks); idsExits: the runs that ended by
   * themselves, counted by exit code (or signal name); idsCommands: the process names of the PIDs
   * the agent listed as the cage's IDS, with how many PIDs had each.
   */
  agent: { aggregates: number; lostAggregates: number; idsStarts: number; idsExits: Record<string, number>; idsCommands: Record<string, number>; actuatorStates: number };
  /** --ids tripwire: what its policy covers and its baseline (`tripwire --init`, before the run, outside the records). */
  tripwire: TripwireSetUp | null;
  /** agentMeanPct: the agent's own CPU (collectors with bpftrace, pipeline, actuators), cpuacct. */
  host: { loadAvg1Start: number; loadAvg1End: number; meanBusyPct: number | null; agentMeanPct: number | null; cpus: number };
}

export interface TripwireSetUp {
  root: string;
  /** Whole directories picked from root (each a policy tree), and the regular files and bytes they hold. */
  dirs: number;
  files: number;
  bytes: number;
  baselineSeconds: number;
}

export interface LabCpuResult {
  records: LabCpuRecord[];
  summary: LabCpuSummary;
  /** Per second, the VM cap the CPU actuator last reported (act.state vmCpuCapPct); for the plot. */
  actuatorVmCapPct: (number | null)[];
}

/** An IDS that is restarted when it exits (AIDE finishes a scan) until stopped; `launch` returns [ids, helpers...]. */
class RestartingIds {
  starts = 0;
  /** Runs that ended by themselves (not stopped by the lab), by exit code or signal name. */
  readonly exits = new Map<string, number>();
  private current: LabProcess[] = [];
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly launch: () => LabProcess[]) {}

  start(): void {
    if (this.stopped) return;
    this.current = this.launch();
    this.starts++;
    const main = this.current[0];
    void main?.exited.then(({ code, signal }) => {
      if (this.stopped) return;
      const how = code === null ? (signal ?? "unknown") : String(code);
      this.exits.set(how, (this.exits.get(how) ?? 0) + 1);
      const helpers = this.current.slice(1);
      void Promise.all(helpers.map((h) => h.stop(1000))).then(() => {
        this.timer = setTimeout(() => this.start(), 200);
      });
    });
  }

  get pids(): number[] {
    return this.current.filter((p) => p.running).map((p) => p.pid);
  }

  get lastStderr(): string {
    return this.current[0]?.stderr ?? "";
  }

  /** Helpers (cpulimit) first, so none stops the IDS again after we resumed it. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const p of [...this.current].reverse()) await p.stop(1500);
  }
}

function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(":").concat(["/usr/sbin", "/sbin"])) {
    const p = join(dir, cmd);
    if (existsSync(p)) return p;
  }
  return null;
}

function requireTool(cmd: string, pkg: string): string {
  const p = which(cmd);
  if (p === null) throw new Error(`lab cpu: ${cmd} is not installed (Debian package ${pkg}; scripts/ensure-test-tools.sh installs it)`);
  return p;
}

/** The process's name (comm), or null once it is gone. */
function processName(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return null;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

function tail(path: string, chars = 3000): string {
  try {
    const t = readFileSync(path, "utf8");
    return t.slice(-chars);
  } catch {
    return "";
  }
}

function hostBusy(): CounterSample {
  return { atMs: Date.now(), ns: parseProcStatBusyNs(readFileSync("/proc/stat", "utf8")) };
}

export async function runLabCpu(opts: LabCpuOptions, abort: AbortSignal, progress: (line: string) => void): Promise<LabCpuResult> {
  if (process.getuid?.() !== 0) throw new Error("lab cpu: needs root (network namespaces, cgroups, bpftrace)");
  const scenario = SCENARIOS[opts.ids];
  const cgroupVm = opts.vm === "cgroup";
  if (cgroupVm) requireTool("ip", "iproute2");
  const nginx = cgroupVm ? requireTool("nginx", "nginx") : "";
  const wrk = cgroupVm ? requireTool("wrk", "wrk") : "";
  if (!cgroupVm) requireTool("virsh", "libvirt-clients");
  const tshark = opts.ids === "packet" ? requireTool("tshark", "tshark") : null;
  const dumpcap = opts.ids === "packet" ? requireTool("dumpcap", "tshark") : null;
  const aide = opts.ids === "file" ? requireTool("aide", "aide") : null;
  if (opts.ids === "tripwire") requireTool("tripwire", "tripwire");
  const cpulimit = opts.compareCpulimit ? requireTool("cpulimit", "cpulimit") : null;

  for (const r of await sweepDeadLabs()) progress(`removed a leftover of a dead lab: ${r}`);
  const names = labNames(process.pid);
  const cleanup = new CleanupStack();
  const aborted = (): void => {
    if (abort.aborted) throw new Error("lab cpu: interrupted");
  };
  try {
    const dir = mkdtempSync(join(tmpdir(), "offloadcage-lab-cpu-"));
    cleanup.push(`temp dir ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
    const runtimeDir = join(dir, "run");
    ensurePrivateDir(runtimeDir);

    // Tripwire's baseline first: it reads every file once, so it is made before anything is
    // measured, and its time is reported on its own. Its directory is in the temp dir.
    let tripwire: { setUp: TripwireSetUp; dir: string; argv: (report: string) => string[] } | null = null;
    if (opts.tripwireFiles !== null) {
      const pick = pickTrees(TRIPWIRE_ROOT, opts.tripwireFiles);
      if (pick.files === 0) throw new Error(`lab cpu: no regular files to check under ${TRIPWIRE_ROOT}`);
      const twDir = join(dir, "tripwire");
      progress(`IDS: Tripwire in ${twDir}: ${pick.files} files (${Math.round(pick.bytes / 1e6)} MB) in ${pick.dirs.length} directories of ${TRIPWIRE_ROOT}; making its baseline (tripwire --init)`);
      const started = Date.now();
      const inst = await setUpTripwireAsync(twDir, pick.dirs, abort);
      const baselineSeconds = Math.round((Date.now() - started) / 10) / 100;
      progress(`IDS: Tripwire's baseline made in ${baselineSeconds} s`);
      tripwire = { setUp: { root: TRIPWIRE_ROOT, dirs: pick.dirs.length, files: pick.files, bytes: pick.bytes, baselineSeconds }, dir: inst.dir, argv: (report) => tripwireCheckArgv(inst, report) };
    }
    aborted();

    // The VM: its cgroups (cpu for the actuator, cpuacct for the kernel cross-check) and network.
    const vmCpu = createV1Cgroup("cpu", `${names.cgroupParent}/vm`, cleanup);
    const vmAcct = createV1Cgroup("cpuacct", `${names.cgroupParent}/vm`, cleanup);
    const idsAcct = createV1Cgroup("cpuacct", `${names.cgroupParent}/ids`, cleanup);
    const idsCpu = createV1Cgroup("cpu", `${names.cgroupParent}/ids`, cleanup);
    // The conventional setup the paper compares with: the VM alone is capped at the cage's cap
    // (its own CFS quota); the IDS runs beside it, uncharged. With the actuators on, the cage CPU
    // actuator rewrites this quota every period (cap minus the IDS's share).
    writeCgroupFile(vmCpu, "cpu.cfs_period_us", String(CFS_PERIOD_US));
    writeCgroupFile(vmCpu, "cpu.cfs_quota_us", String(Math.round((scenario.capPct / 100) * CFS_PERIOD_US)));
    // This host is shared with other engineers' builds and VMs: large shares keep them from
    // starving the experiment below its caps (a cap only limits; shares decide who runs first).
    // The clients (wrk) too: the VM's load must not depend on how busy the rest of the host is.
    const loadCpu = createV1Cgroup("cpu", `${names.cgroupParent}/load`, cleanup);
    // Shares count among siblings only: the lab's parent groups need them as much as its leaves.
    const labCpuDir = join(vmCpu, "..");
    for (const d of [join(labCpuDir, ".."), labCpuDir, vmCpu, idsCpu, loadCpu]) writeCgroupFile(d, "cpu.shares", String(LAB_CPU_SHARES));
    const cmp = opts.compareCpulimit
      ? {
          vmCpu: createV1Cgroup("cpu", `${names.cgroupParent}/cpulimit-vm`, cleanup),
          idsAcct: createV1Cgroup("cpuacct", `${names.cgroupParent}/cpulimit-ids`, cleanup),
          idsCpu: createV1Cgroup("cpu", `${names.cgroupParent}/cpulimit-ids`, cleanup),
        }
      : null;
    if (cmp !== null) writeCgroupFile(cmp.idsCpu, "cpu.shares", String(LAB_CPU_SHARES));
    cleanup.push("processes left in the lab's cgroups", () => {
      for (const d of [vmAcct, idsAcct, idsCpu, loadCpu, cmp?.idsAcct, cmp?.idsCpu]) if (d !== undefined) killCgroupMembers(d);
    });
    if (cgroupVm) await createNetwork(names, cleanup);
    aborted();

    // The VM's process the agent must report before the run starts.
    let vmPid: () => number | null;
    let libvirtVm: LabLibvirtVm | null = null;
    if (cgroupVm) {
      // nginx with a generated config, in the namespace and both VM cgroups from its first instruction.
      // nginx's workers run as www-data: they may cross the temp dir (0711) and read the page.
      chmodSync(dir, 0o711);
      mkdirSync(join(dir, "www"), { mode: 0o755 });
      const page = existsSync("/usr/share/common-licenses/GPL-3") ? readFileSync("/usr/share/common-licenses/GPL-3", "utf8") : "OffloadCage lab page. ".repeat(1600);
      writeFileSync(join(dir, "www", "index.html"), `<html><body><pre>${page}</pre></body></html>\n`);
      writeFileSync(join(dir, "nginx.conf"), nginxConfig(dir, names.vmAddress));
      const nginxProc = LabProcess.start(
        "nginx",
        enterCgroupsArgv([join(vmCpu, "cgroup.procs"), join(vmAcct, "cgroup.procs")], ["ip", "netns", "exec", names.netns, nginx, "-c", join(dir, "nginx.conf"), "-e", join(dir, "nginx-error.log"), "-p", dir]),
      );
      cleanup.push("nginx", () => nginxProc.stop());
      await waitForHttp(names.vmAddress, NGINX_PORT, 10_000).catch((err: Error) => {
        throw new Error(`${err.message}\nnginx: ${nginxProc.stderr.trim()} ${tail(join(dir, "nginx-error.log"), 500)}`);
      });
      progress(`VM: nginx pid ${nginxProc.pid} in netns ${names.netns}, http://${names.vmAddress}:${NGINX_PORT}/, cgroup ${vmCpu}`);
      vmPid = () => nginxProc.pid;
    } else {
      const vm = await startLabLibvirtVm(dir, scenario.capPct, CFS_PERIOD_US, cleanup, progress);
      libvirtVm = vm;
      vmPid = () => vm.qemuPid();
      progress(`VM: ${vm.description}; QEMU pid ${vm.qemuPid() ?? "-"}`);
    }
    aborted();

    // The IDS, in its own cpuacct group (the kernel's count for the cross-check).
    let ids: RestartingIds;
    let cpulimitIds: RestartingIds | null = null;
    if (tshark !== null) {
      // dumpcap captures on the host-side veth and streams pcap through a FIFO to tshark, which
      // prints every packet's full dissection tree (-V, to /dev/null): the work an IDS's
      // decoders do. Streamed so tshark takes each packet as it comes (-l); a plain `tshark -i`
      // gets them from dumpcap in bursts every few hundred ms, which 100 ms windows see as 0%,
      // 70%, 0%... (measured). A FIFO, because tshark refuses a socket as its input.
      const fifo = join(dir, "capture.pcap");
      await run("mkfifo", ["-m", "0600", fifo]);
      const groups = [join(idsCpu, "cgroup.procs"), join(idsAcct, "cgroup.procs")];
      const dumpcapArgv = enterCgroupsArgv(groups, [dumpcap as string, "-i", names.vethHost, "-w", fifo, "-q", "-P"]);
      const tsharkArgv = enterCgroupsArgv(groups, [tshark, "-r", fifo, "-n", "-V", "-l"]);
      ids = new RestartingIds(() => [LabProcess.start("tshark", tsharkArgv, { env: { ...process.env, TMPDIR: dir } }), LabProcess.start("dumpcap", dumpcapArgv, { env: { ...process.env, TMPDIR: dir } })]);
    } else if (tripwire !== null) {
      // Each check writes its report over the last one's; the exit code says what it found. In
      // its instance's directory, like the set-up (tripwire blanks its command line).
      const twDir = tripwire.dir;
      const argv = enterCgroupsArgv([join(idsCpu, "cgroup.procs"), join(idsAcct, "cgroup.procs")], tripwire.argv(join(twDir, "check.twr")));
      ids = new RestartingIds(() => [LabProcess.start("tripwire", argv, { cwd: twDir })]);
    } else {
      const conf = join(dir, "aide-cage.conf");
      writeFileSync(conf, aideConfig(dir, "cage", AIDE_TREE));
      const argv = enterCgroupsArgv([join(idsCpu, "cgroup.procs"), join(idsAcct, "cgroup.procs")], [aide as string, "--init", `--config=${conf}`, "--workers=1"]);
      ids = new RestartingIds(() => [LabProcess.start("aide", argv)]);
      if (cmp !== null && cpulimit !== null) {
        const conf2 = join(dir, "aide-cpulimit.conf");
        writeFileSync(conf2, aideConfig(dir, "cpulimit", AIDE_TREE));
        const argv2 = enterCgroupsArgv([join(cmp.idsCpu, "cgroup.procs"), join(cmp.idsAcct, "cgroup.procs")], [aide as string, "--init", `--config=${conf2}`, "--workers=1"]);
        const limit = String(scenario.idsCapPct);
        cpulimitIds = new RestartingIds(() => {
          const a = LabProcess.start("aide (cpulimit)", argv2);
          // -z: cpulimit exits with its target; -q: no banner.
          return [a, LabProcess.start("cpulimit", [cpulimit, "-p", String(a.pid), "-l", limit, "-z", "-q"])];
        });
      }
    }
    cleanup.push("IDS", () => ids.stop());
    ids.start();
    if (cpulimitIds !== null) {
      const c = cpulimitIds;
      cleanup.push("IDS under cpulimit", () => c.stop());
      c.start();
    }
    progress(`IDS: ${scenario.idsDescription}`);

    // The agent: `cage run` with a generated cage file.
    const cageFile = join(dir, "cage.json");
    const cpulimitCageName = `${names.cageName}-cpulimit`;
    writeFileSync(
      cageFile,
      JSON.stringify(
        labCageFile({
          names,
          runtimeDir,
          vm: libvirtVm === null ? { kind: "cgroup", path: vmCpu } : { kind: "libvirt", domain: libvirtVm.domain, uri: libvirtVm.uri },
          idsCgroupDir: idsAcct,
          capPct: scenario.capPct,
          idsCapPct: scenario.idsCapPct,
          actuators: opts.actuators,
          actuatorPeriodMs: opts.actuatorPeriodMs,
          limiterMode: opts.limiterMode,
          cpulimitCage: cmp === null ? null : { name: cpulimitCageName, vmCgroupDir: cmp.vmCpu, idsCgroupDir: cmp.idsAcct },
        }),
        null,
        2,
      ),
    );
    // Its pino log lines (stderr) are kept, last 4000 characters, for the error messages.
    // In its own cpuacct group: its CPU is reported, and if the lab is SIGKILLed the next run's
    // sweep finds and stops it with everything else (cage run does not watch its parent).
    const agentAcct = createV1Cgroup("cpuacct", `${names.cgroupParent}/agent`, cleanup);
    cleanup.push("processes left in the agent's cgroup", () => void killCgroupMembers(agentAcct));
    // Beside a domain given the lab's shares (labLibvirtVm.ts), the agent at the root's 1024 got no
    // aggregate out in 45 s (bpftrace starved): with a libvirt VM it gets the lab's shares too.
    const agentGroups = [join(agentAcct, "cgroup.procs")];
    if (!cgroupVm) {
      const agentCpu = createV1Cgroup("cpu", `${names.cgroupParent}/agent`, cleanup);
      writeCgroupFile(agentCpu, "cpu.shares", String(LAB_CPU_SHARES));
      cleanup.push("processes left in the agent's cpu group", () => void killCgroupMembers(agentCpu));
      agentGroups.push(join(agentCpu, "cgroup.procs"));
    }
    const agentArgv = enterCgroupsArgv(agentGroups, [process.execPath, CAGE_JS, "run", "--config", cageFile]);
    const agent = LabProcess.start("cage run", agentArgv, opts.agentLogPath === null ? {} : { logTo: opts.agentLogPath });
    cleanup.push("agent (cage run)", () => agent.stop(8000));
    const endpoints = defaultEndpoints(runtimeDir);

    // Aggregates and actuator states, kept with their times.
    const samples = new Map<string, { vm: WindowSample[]; ids: WindowSample[] }>();
    const vmCapStates: { timeMs: number; value: number }[] = [];
    let ready = { vmPids: [] as number[], idsPids: 0, cpulimitIdsPids: 0 };
    /** The main cage's VM PIDs per aggregate, with the aggregate's time and when it arrived (the restart check). */
    const vmPidLog: VmPidsSeen[] = [];
    let aggregates = 0;
    let lost = 0;
    let actuatorStates = 0;
    /** Process name → the IDS PIDs the agent listed that had it. */
    const idsNames = new Map<string, Set<number>>();
    const sub = new MessageSubscriber();
    sub.connect(endpoints.aggregates);
    sub.subscribe(Topic.cageAggregates);
    const actSub = new MessageSubscriber();
    if (endpoints.actuators?.cpu) actSub.connect(endpoints.actuators.cpu);
    actSub.subscribe(Topic.actuatorState);
    cleanup.push("subscribers", () => {
      sub.close();
      actSub.close();
    });
    const consuming = (async (): Promise<void> => {
      for await (const m of sub.messages(() => undefined)) {
        lost += m.lostBefore;
        if (m.topic !== Topic.cageAggregates) continue;
        try {
          for (const a of decodeCageAggregates(m.payload).aggregates) {
            aggregates++;
            let s = samples.get(a.cage);
            if (!s) samples.set(a.cage, (s = { vm: [], ids: [] }));
            s.vm.push({ timeMs: a.timeMs, windowSeconds: a.windowSeconds, value: a.vm.cpuPct });
            s.ids.push({ timeMs: a.timeMs, windowSeconds: a.windowSeconds, value: a.ids.cpuPct });
            if (a.cage === names.cageName) {
              ready = { ...ready, vmPids: a.vm.pids, idsPids: a.ids.pids.length };
              for (const pid of a.ids.pids) {
                const name = processName(pid);
                if (name === null) continue;
                let pids = idsNames.get(name);
                if (!pids) idsNames.set(name, (pids = new Set()));
                pids.add(pid);
              }
              if (opts.restartAtS !== null) vmPidLog.push({ timeMs: a.timeMs, seenAtMs: Date.now(), pids: a.vm.pids });
            }
            if (a.cage === cpulimitCageName) ready = { ...ready, cpulimitIdsPids: a.ids.pids.length };
          }
        } catch {
          // a malformed message is skipped (and a malformed aggregate in it); the count of good ones is in the summary
        }
      }
    })();
    const consumingStates = (async (): Promise<void> => {
      for await (const m of actSub.messages(() => undefined)) {
        if (m.topic !== Topic.actuatorState) continue;
        try {
          const s = decodeActuatorState(m.payload);
          actuatorStates++;
          const cap = s.values.vmCpuCapPct;
          if (s.cage === names.cageName && cap !== undefined) vmCapStates.push({ timeMs: s.timeMs, value: cap });
        } catch {
          // skipped like a malformed aggregate
        }
      }
    })();

    // Ready when the agent sees the VM's nginx and the IDS (bpftrace takes a few seconds to start).
    const readyBy = Date.now() + 45_000;
    while (!(ready.vmPids.includes(vmPid() ?? -1) && ready.idsPids > 0 && (cmp === null || ready.cpulimitIdsPids > 0))) {
      aborted();
      if (!agent.running) throw new Error(`lab cpu: the agent exited before it was ready:\n${agent.stderr.slice(-3000)}`);
      if (Date.now() > readyBy) {
        throw new Error(
          `lab cpu: the agent did not report the cage within 45 s (aggregates: ${aggregates}, VM pids seen: ${ready.vmPids.join(",") || "none"}, IDS pids: ${ready.idsPids}; IDS: ${ids.lastStderr.trim().slice(-300)}):\n${agent.stderr.slice(-3000)}`,
        );
      }
      await sleep(200);
    }
    progress(`agent ready (${aggregates} aggregates so far); load: ${cgroupVm ? `wrk -t${WRK_THREADS} -c${WRK_CONNECTIONS}` : "the guest's busy loop"} for ${opts.durationS} s`);

    // Load from the host side, through the veth the IDS watches.
    const load = !cgroupVm ? null : LabProcess.start("wrk", enterCgroupsArgv([join(loadCpu, "cgroup.procs")], [wrk, `-t${WRK_THREADS}`, `-c${WRK_CONNECTIONS}`, `-d${opts.durationS + 1}s`, "--timeout", "5s", "-H", "Accept-Encoding: gzip", `http://${names.vmAddress}:${NGINX_PORT}/`]), { keepStdout: true });
    if (load !== null) cleanup.push("wrk", () => load.stop(1000));
    const loadAvg1Start = loadavg()[0] ?? 0;
    const t0 = Date.now();
    const kernelVm: (CounterSample | null)[] = [];
    const kernelIds: (CounterSample | null)[] = [];
    const kernelCpulimitIds: (CounterSample | null)[] = [];
    const host: (CounterSample | null)[] = [];
    const agentCpu: (CounterSample | null)[] = [];
    const readCounter = (dirPath: string): CounterSample | null => {
      const ns = readCpuacctUsageNs(dirPath);
      return ns === null ? null : { atMs: Date.now(), ns };
    };
    let restarting: Promise<RestartTimes> | null = null;
    let idsStopping: Promise<void> | null = null;
    for (let k = 0; k <= opts.durationS; k++) {
      await sleep(t0 + k * 1000 - Date.now());
      aborted();
      if (libvirtVm === null) kernelVm.push(readCounter(vmAcct));
      else {
        const ns = libvirtVm.kernelCpuNs();
        kernelVm.push(ns === null ? null : { atMs: Date.now(), ns });
      }
      kernelIds.push(readCounter(idsAcct));
      if (cmp !== null) kernelCpulimitIds.push(readCounter(cmp.idsAcct));
      host.push(hostBusy());
      agentCpu.push(readCounter(agentAcct));
      if (opts.idleAfterS !== null && k === opts.idleAfterS) {
        // Not awaited: AIDE ignores SIGTERM and dies at the SIGKILL 1.5 s later, and the readings
        // must stay one a second meanwhile (the per-second records compare the same seconds).
        idsStopping = ids.stop().then(() => progress(`t=${k} s: IDS stopped (idle phase: work-conserving check)`));
      }
      if (libvirtVm !== null && k === opts.restartAtS) {
        const vm = libvirtVm;
        progress(`t=${k} s: virsh destroy + virsh start ${vm.domain} (the restart check)`);
        restarting = restartCheck(vm, () => vmCapStates.at(-1)?.value ?? null);
      }
      if (k > 0 && k % 10 === 0) progress(`t=${k} s`);
    }
    const loadAvg1End = loadavg()[0] ?? 0;
    await idsStopping;
    // Aggregates for the last second arrive one window late.
    await sleep(500);
    const wrkDone = load === null ? false : await Promise.race([load.exited.then(() => true), sleep(4000).then(() => false)]);
    const requestsPerSecond = wrkDone && load !== null ? parseWrkRequestsPerSecond(load.stdout) : null;
    const restart = restarting === null ? null : restartSummary(await restarting, vmPidLog);
    sub.close();
    actSub.close();
    await Promise.all([consuming.catch(() => undefined), consumingStates.catch(() => undefined)]);

    const n = opts.durationS;
    const main = samples.get(names.cageName) ?? { vm: [], ids: [] };
    const vmPct = averagePerSecond(main.vm, t0, n);
    const idsPct = averagePerSecond(main.ids, t0, n);
    const kVm = percentPerSecond(kernelVm, n);
    const kIds = percentPerSecond(kernelIds, n);
    const cl = cmp === null ? null : samples.get(cpulimitCageName) ?? { vm: [], ids: [] };
    const clIds = cl === null ? undefined : averagePerSecond(cl.ids, t0, n);
    const kClIds = cmp === null ? undefined : percentPerSecond(kernelCpulimitIds, n);
    const records = buildRecords({
      seconds: n,
      capPct: scenario.capPct,
      idsCapPct: scenario.idsCapPct,
      vmPct,
      idsPct,
      kernelVmPct: kVm,
      kernelIdsPct: kIds,
      cpulimitIdsPct: clIds,
      kernelCpulimitIdsPct: kClIds,
      idleAfterS: opts.idleAfterS,
    });
    const overall = phaseStats(records, WARMUP_S, n);
    const busyEnd = opts.idleAfterS ?? n;
    const hostBusyPct = percentPerSecond(host, n).filter((x): x is number => x !== null);
    const agentPct = percentPerSecond(agentCpu, n).filter((x): x is number => x !== null);
    const meanOf = (xs: number[]): number | null => (xs.length === 0 ? null : Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 100) / 100);
    const summary: LabCpuSummary = {
      ids: opts.ids,
      idsTool: scenario.idsDescription,
      actuators: opts.actuators,
      limiterMode: opts.limiterMode,
      durationS: n,
      warmupS: WARMUP_S,
      toleratedPoints: CAP_TOLERANCE_POINTS,
      capPct: scenario.capPct,
      idsCapPct: scenario.idsCapPct,
      windows: overall.windows,
      fractionTotalWithinCap: overall.fractionTotalWithinCap,
      fractionTotalOverCap: overall.fractionTotalOverCap,
      fractionIdsWithinIdsCap: overall.fractionIdsWithinIdsCap,
      meanVmPct: overall.meanVmPct,
      meanIdsPct: overall.meanIdsPct,
      meanTotalPct: overall.meanTotalPct,
      maxTotalPct: overall.maxTotalPct,
      busyPhase: opts.idleAfterS === null ? null : phaseStats(records, WARMUP_S, busyEnd),
      workConserving: opts.idleAfterS === null ? null : workConserving(records, opts.idleAfterS),
      kernelCrossCheck: {
        method: `after the ${WARMUP_S} s warm-up, over the same wall-clock spans (between the kernel's readings, one a second): agent = agg.window vm/ids cpuPct × windowSeconds of the part of each window inside them; kernel = rise of cpuacct.usage of the ${libvirtVm === null ? "VM's" : "IDS's"} own cpuacct cgroup${libvirtVm === null ? "s (VM and IDS)" : ", and of the domain's QEMU threads' own schedstat (libvirt puts QEMU in no cpuacct group here)"}`,
        // After the warm-up only, like every other figure: in the first seconds the agent's first,
        // partial windows and the cpuacct deltas cover different spans (VM +13% over a 12 s run
        // when the warm-up was included).
        vm: crossCheck(vmPct.slice(WARMUP_S), kVm.slice(WARMUP_S), cpuSecondsOverSpans(main.vm, kernelVm, WARMUP_S, n)),
        ids: crossCheck(idsPct.slice(WARMUP_S), kIds.slice(WARMUP_S), cpuSecondsOverSpans(main.ids, kernelIds, WARMUP_S, n)),
        ...(cl !== null && clIds !== undefined && kClIds !== undefined
          ? { cpulimitIds: crossCheck(clIds.slice(WARMUP_S), kClIds.slice(WARMUP_S), cpuSecondsOverSpans(cl.ids, kernelCpulimitIds, WARMUP_S, n)) }
          : {}),
      },
      limiterComparison:
        clIds === undefined || scenario.idsCapPct === null
          ? null
          : {
              idsCapPct: scenario.idsCapPct,
              fromS: WARMUP_S,
              toS: busyEnd,
              cageLimiter: limiterPrecision(idsPct, scenario.idsCapPct, WARMUP_S, busyEnd),
              cpulimit: limiterPrecision(clIds, scenario.idsCapPct, WARMUP_S, busyEnd),
            },
      vm: { kind: opts.vm, description: libvirtVm?.description ?? "nginx (2 workers) in its own network namespace and v1 cpu cgroup" },
      restart,
      load: cgroupVm ? { tool: "wrk", threads: WRK_THREADS, connections: WRK_CONNECTIONS, requestsPerSecond } : { tool: "the guest's `while :; do :; done` (one vCPU under TCG)", threads: 1, connections: 0, requestsPerSecond: null },
      agent: {
        aggregates,
        lostAggregates: lost,
        idsStarts: ids.starts,
        idsExits: Object.fromEntries([...ids.exits].sort(([a], [b]) => a.localeCompare(b))),
        idsCommands: Object.fromEntries([...idsNames].map(([name, pids]) => [name, pids.size] as const).sort(([a], [b]) => a.localeCompare(b))),
        actuatorStates,
      },
      tripwire: tripwire?.setUp ?? null,
      host: {
        loadAvg1Start: Math.round(loadAvg1Start * 100) / 100,
        loadAvg1End: Math.round(loadAvg1End * 100) / 100,
        meanBusyPct: meanOf(hostBusyPct),
        agentMeanPct: meanOf(agentPct),
        cpus: availableParallelism(),
      },
    };
    if (!agent.running) throw new Error(`lab cpu: the agent died during the run:\n${agent.stderr.slice(-3000)}`);
    return { records, summary, actuatorVmCapPct: lastPerSecond(vmCapStates, t0, n) };
  } finally {
    const failures = await cleanup.runAll();
    for (const f of failures) progress(`cleanup failed: ${f}`);
  }
}
