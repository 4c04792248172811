/**
 * The v2 lab's service and cage phases, in the guest (systemd PID 1, cgroup v2 alone): the agent
 * installed with `cage install` and run as offloadcage.service, the VM and IDS as their own units.
 * What each step saw is returned for results.json; the checks are lab/v2/labScenario.ts's.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Topic } from "../../../protocol/wireFormat.js";
import { defaultEndpoints } from "../../../protocol/endpoints.js";
import { actuatorProgress } from "../../xen/labScenario.js";
import { CageRecorder } from "../../common/cageRecorder.js";
import { dropInAssignments, type BalloonSample, type Leftovers, type PageCacheSample, type RestartFacts, type V2ScenarioSpec } from "../labScenario.js";
import { ATTACH_TIMEOUT_ENV } from "../../../runtime/bpftraceAttachTimeout.js";
import { Metric, prometheusName } from "../../../pipeline/metricNames.js";
import { CAGE_FILE, cageDocument, IDS_UNIT, LAB_CAGE, METRICS_URL, SERVICE_RUNTIME_DIR, unitCgroup, VM_UNIT, WORKLOAD_GO_FILE } from "./labFiles.js";
import { answer, capture, elapsed, run, say, sleep, waitFor as pollFor } from "../../common/guestCommands.js";

const cageCli = fileURLToPath(new URL("../../../cli/cage.js", import.meta.url));
const UNIT = "offloadcage.service";
const PREFIX = "/opt/offloadcage";
/**
 * The lab's drop-in for the installed unit: bpftrace takes minutes to attach its probes under TCG
 * on a loaded host, past the CPU collector's 30 s default (the Xen lab gives the same 900 s).
 */
const LAB_DROP_IN_DIR = `/etc/systemd/system/${UNIT}.d`;

/** `systemctl show UNIT -p A,B`: the properties as a record. */
export async function unitProperties(unit: string, props: string[]): Promise<Record<string, string>> {
  const out = await run("systemctl", ["show", unit, "-p", props.join(",")]);
  const r: Record<string, string> = {};
  for (const line of out.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) r[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return r;
}

const readOr = (path: string, fallback: string): string => {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return fallback;
  }
};

interface ProcInfo {
  pid: number;
  comm: string;
  state: string;
  cmdline: string;
  cgroup: string;
}

/** Every process: pid, comm, state (from /proc/PID/stat), command line and its v2 cgroup. */
export function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readOr(`/proc/${name}/stat`, "");
    const close = stat.lastIndexOf(")");
    if (close < 0) continue;
    out.push({
      pid: Number(name),
      comm: stat.slice(stat.indexOf("(") + 1, close),
      state: stat.slice(close + 2, close + 3),
      cmdline: readOr(`/proc/${name}/cmdline`, "").replaceAll("\0", " ").trim(),
      cgroup: readOr(`/proc/${name}/cgroup`, "").replace(/^0::/, ""),
    });
  }
  return out;
}

/** The cgroup (directory under /sys/fs/cgroup) each AIDE process sits in now. */
function aideCgroups(): string[] {
  return [...new Set(processes().filter((p) => p.comm === "aide").map((p) => `/sys/fs/cgroup${p.cgroup}`))];
}

interface MetricsAnswer {
  status: number;
  hasCageMetric: boolean;
  error?: string;
}
/** collectors/pagecache/main.ts logs this once bpftrace is attached, or its memory.stat fallback runs. */
const PAGE_CACHE_STARTED = "page cache collector started";
/** The cage's CPU counter as Prometheus names it: present once the pipeline has aggregated the cage. */
const CAGE_CPU_SERIES = prometheusName(Metric.cpuSeconds);
let lastMetrics: MetricsAnswer = { status: 0, hasCageMetric: false, error: "not asked yet" };

async function metricsStatus(): Promise<MetricsAnswer> {
  try {
    const res = await fetch(METRICS_URL, { signal: AbortSignal.timeout(10_000) });
    const body = await res.text();
    lastMetrics = { status: res.status, hasCageMetric: body.includes(`${CAGE_CPU_SERIES}{`) && body.includes(`cage="${LAB_CAGE}"`) };
  } catch (err) {
    lastMetrics = { status: 0, hasCageMetric: false, error: String((err as { cause?: unknown }).cause ?? err) };
  }
  return lastMetrics;
}

/** The last metrics answer and the agent's newest journal lines: what a wait reports. */
async function agentReport(): Promise<string> {
  const journal = await capture("journalctl", ["-u", UNIT, "-n", "4", "--no-pager", "-o", "cat"]);
  return `metrics ${JSON.stringify(lastMetrics)}; load ${readOr("/proc/loadavg", "?")}; journal: ${journal.trim().split("\n").join(" | ").slice(-600)}`;
}

/** Every wait here polls once a second: under TCG each /metrics fetch costs the agent CPU time. */
const waitFor = <T>(what: string, timeoutMs: number, probe: () => Promise<T | null>, report?: () => string | Promise<string>): Promise<T> => pollFor(what, timeoutMs, probe, report, 1000);

/** Subscribes to the agent's aggregates and actuator messages. */
export class AgentRecorder extends CageRecorder {
  constructor() {
    const ep = defaultEndpoints(SERVICE_RUNTIME_DIR);
    super(LAB_CAGE, [ep.aggregates, ...Object.values(ep.actuators ?? {})], [Topic.actuatorDecision, Topic.actuatorState]);
  }

  progress(): Record<string, ReturnType<typeof actuatorProgress>> {
    return Object.fromEntries(["cpu", "limiter", "balloon"].map((a) => [a, actuatorProgress(this.other, a)]));
  }
}

/** Writes the cage file, `cage install`, starts the VM and IDS units, `systemctl start`, waits for metrics; fills `facts` as it goes (a failure keeps what came before). */
export async function installAndStart(spec: V2ScenarioSpec, facts: Record<string, unknown>): Promise<void> {
  mkdirSync("/etc/offloadcage", { recursive: true });
  writeFileSync(CAGE_FILE, `${JSON.stringify(cageDocument(spec), null, 2)}\n`);
  say(`cage validate ${CAGE_FILE}`);
  facts.validate = await capture(process.execPath, [cageCli, "validate", CAGE_FILE], 180_000);
  say("cage install");
  const t = Date.now();
  facts.install = await run(process.execPath, [cageCli, "install"], 900_000);
  facts.installSeconds = (Date.now() - t) / 1000;
  say(`cage install done in ${facts.installSeconds as number} s`);
  facts.unitFile = readOr(`/etc/systemd/system/${UNIT}`, "(missing)");
  facts.verify = await answer("systemd-analyze", ["verify", `/etc/systemd/system/${UNIT}`], 120_000);
  mkdirSync(LAB_DROP_IN_DIR, { recursive: true });
  writeFileSync(join(LAB_DROP_IN_DIR, "v2-lab.conf"), `[Service]\nEnvironment=${ATTACH_TIMEOUT_ENV}=900000\n`);
  await run("systemctl", ["daemon-reload"], 120_000);
  // The workload after the install: under TCG the install's copying alone takes minutes beside it.
  await run("systemctl", ["set-environment", `VM_MEM_MIB=${spec.vmMemMiB}`]);
  await run("systemctl", ["start", VM_UNIT, IDS_UNIT]);
  facts.workloadUnits = await unitProperties(VM_UNIT, ["ActiveState", "MainPID", "ControlGroup"]);
  say(`systemd-analyze verify: exit ${(facts.verify as { code: number }).code}; ${VM_UNIT} and ${IDS_UNIT} started, idle until ${WORKLOAD_GO_FILE}; systemctl start ${UNIT}`);
  const s = Date.now();
  try {
    await run("systemctl", ["start", UNIT], 120_000);
    facts.metrics = await waitFor("the agent's /metrics", 600_000, async () => {
      const r = await metricsStatus();
      return r.status === 200 ? r : null;
    }, agentReport);
    facts.startToMetricsSeconds = (Date.now() - s) / 1000;
    say(`metrics served ${facts.startToMetricsSeconds as number} s after systemctl start`);
    // The cage's own series need every collector and the pipeline: a failure here is recorded,
    // and the restart test still runs.
    try {
      facts.cageMetrics = await waitFor("the lab cage's series in /metrics", 600_000, async () => {
        const r = await metricsStatus();
        return r.status === 200 && r.hasCageMetric ? r : null;
      }, agentReport);
      facts.startToCageMetricsSeconds = (Date.now() - s) / 1000;
      say(`the cage's series served ${facts.startToCageMetricsSeconds as number} s after systemctl start`);
      // Page cache the IDS reads before bpftrace attaches is charged to its group but never seen
      // by eBPF: AIDE starts only once the collector says it is attached (or on its fallback).
      facts.pageCacheCollector = await waitFor("the page cache collector started", 600_000, async () => {
        const journal = await capture("journalctl", ["-u", UNIT, "--no-pager", "-o", "cat"]);
        return journal.includes(PAGE_CACHE_STARTED) ? (Date.now() - s) / 1000 : null;
      }, agentReport);
      say(`page cache collector started ${facts.pageCacheCollector as number} s after systemctl start`);
    } catch (err) {
      facts.cageMetricsError = (err as Error).message;
      say((err as Error).message);
    }
  } finally {
    // The workloads start now, whatever happened: the later phases measure them.
    mkdirSync(dirname(WORKLOAD_GO_FILE), { recursive: true });
    writeFileSync(WORKLOAD_GO_FILE, "");
  }
}

/** `kill -9` of the agent's main process: systemd must restart it, and the IDS must not be left stopped meanwhile. */
export async function killAndRestart(): Promise<{ facts: RestartFacts; timeline: unknown[]; limiterCapBefore: string[] }> {
  // The limiter holds AIDE at idsCap first, so the window after the kill shows what a crash leaves.
  // When it never does (recorded), the kill still shows the restart and what is left stopped.
  const idsCaps = (): string[] => aideCgroups().map((g) => `${g}: ${readOr(join(g, "cpu.max"), "?")}`);
  const limiterCapBefore = await waitFor("the limiter's cpu.max on AIDE's cgroup", 120_000, () => {
    const caps = idsCaps();
    return Promise.resolve(caps.length > 0 && caps.every((c) => !c.endsWith(": max 100000") && !c.endsWith(": ?")) ? caps : null);
  }, () => idsCaps().join("; ")).catch((err: unknown) => [`never capped: ${(err as Error).message}`, ...idsCaps()]);
  const before = await unitProperties(UNIT, ["MainPID", "NRestarts", "ActiveState"]);
  const mainPidBefore = Number(before.MainPID);
  say(`kill -9 ${mainPidBefore} (NRestarts ${before.NRestarts})`);
  process.kill(mainPidBefore, "SIGKILL");
  const timeline: unknown[] = [];
  const stopped = new Set<string>();
  const idsCpuMax = new Set<string>();
  const deadline = Date.now() + 300_000;
  let after: Record<string, string>;
  for (;;) {
    after = await unitProperties(UNIT, ["MainPID", "NRestarts", "ActiveState", "SubState"]);
    const procs = processes();
    for (const p of procs) if (p.comm === "aide" && p.state === "T") stopped.add(`${p.pid}:${p.comm}`);
    const caps = aideCgroups().map((g) => `${g}: ${readOr(join(g, "cpu.max"), "?")}`);
    for (const c of caps) idsCpuMax.add(c);
    timeline.push({ atS: elapsed(), ...after, idsCpuMax: caps, vmCpuMax: readOr(join(unitCgroup(VM_UNIT), "cpu.max"), "?"), agentProcesses: procs.filter((p) => p.cgroup.includes(UNIT)).length });
    const restarted = Number(after.MainPID) > 0 && Number(after.MainPID) !== mainPidBefore && after.ActiveState === "active";
    if (restarted || Date.now() > deadline) break;
    await sleep(500);
  }
  say(`after the kill: MainPID ${after.MainPID} NRestarts ${after.NRestarts} ${after.ActiveState}`);
  const m = await waitFor("the restarted agent's /metrics", 600_000, async () => {
    const r = await metricsStatus();
    return r.status === 200 ? r : null;
  }, agentReport).catch((): MetricsAnswer => lastMetrics);
  return {
    facts: {
      mainPidBefore,
      mainPidAfter: Number(after.MainPID),
      nRestartsBefore: Number(before.NRestarts),
      nRestartsAfter: Number(after.NRestarts),
      idsStoppedWhileDown: [...stopped],
      idsCpuMaxWhileDown: [...idsCpuMax],
      metricsStatusAfter: m.status,
    },
    timeline,
    limiterCapBefore,
  };
}

/** Samples for the cage phase's page-cache and balloon checks, from the agent's latest aggregate and the cgroups. */
export function sampleMemory(rec: AgentRecorder): { pageCache: PageCacheSample | null; balloon: BalloonSample | null; idsCgroups: string[] } {
  const a = rec.latest;
  const groups = aideCgroups();
  if (a === null) return { pageCache: null, balloon: null, idsCgroups: groups };
  const fileBytes = groups.reduce((sum, g) => sum + Number(/^file (\d+)$/m.exec(readOr(join(g, "memory.stat"), ""))?.[1] ?? 0), 0);
  const high = readOr(join(unitCgroup(VM_UNIT), "memory.high"), "max");
  return {
    pageCache: { atS: elapsed(), agentBytes: a.ids.pageCacheBytes, cgroupFileBytes: fileBytes },
    balloon: { atS: elapsed(), idsBytes: a.ids.rssBytes + a.ids.pageCacheBytes, vmHighBytes: high === "max" ? null : Number(high) },
    idsCgroups: groups,
  };
}

/** The runtime drop-ins under `control`, split into those that still set a value and those that only reset one. */
function runtimeDropIns(control: string): { runtimeProperties: string[]; resetDropIns: string[] } {
  const out = { runtimeProperties: [] as string[], resetDropIns: [] as string[] };
  if (!existsSync(control)) return out;
  for (const rel of readdirSync(control, { recursive: true }).map(String)) {
    const path = join(control, rel);
    if (!statSync(path).isFile()) continue;
    const set = dropInAssignments(readOr(path, "")).filter((a) => a.value !== "");
    if (set.length === 0) out.resetDropIns.push(rel);
    else out.runtimeProperties.push(`${rel}: ${set.map((a) => `${a.key}=${a.value}`).join("; ")}`);
  }
  return out;
}

/** The cage phase: everything at once; records durationS windows and memory samples. */
export async function measureCage(spec: V2ScenarioSpec, rec: AgentRecorder): Promise<Record<string, unknown>> {
  await waitFor("the limiter, CPU and balloon actuators running and applying", 600_000, () => {
    const p = rec.progress();
    return Promise.resolve(p.cpu!.applied > 0 && p.limiter!.states > 0 && p.balloon!.states > 0 ? p : null);
  }, async () => `${JSON.stringify(rec.progress())}; ${rec.windows.length} windows; ${await agentReport()}`);
  say("actuators running; settling 10 s");
  await sleep(10_000);
  const from = rec.windows.length;
  const pageCache: PageCacheSample[] = [];
  const balloon: BalloonSample[] = [];
  const groups = new Set<string>();
  const deadline = Date.now() + (spec.durationS * 3 + 60) * 1000;
  while (rec.windows.length - from < spec.durationS && Date.now() < deadline) {
    await sleep(2000);
    const s = sampleMemory(rec);
    if (s.pageCache) pageCache.push(s.pageCache);
    if (s.balloon) balloon.push(s.balloon);
    for (const g of s.idsCgroups) groups.add(g);
    const w = rec.windows[rec.windows.length - 1];
    say(`cage: ${rec.windows.length - from}/${spec.durationS} windows, last vm ${w?.vmPct.toFixed(1)} ids ${w?.idsPct.toFixed(1)} total ${w?.totalPct.toFixed(1)}; ids page cache ${s.pageCache?.agentBytes} vs cgroup file ${s.pageCache?.cgroupFileBytes}; vm memory.high ${s.balloon?.vmHighBytes}`);
  }
  // The balloon settles after the last move: sample until memory.high holds still for 3 samples (≤ 60 s).
  const settle: BalloonSample[] = [];
  const settleUntil = Date.now() + 60_000;
  while (Date.now() < settleUntil) {
    const s = sampleMemory(rec);
    if (s.balloon) settle.push(s.balloon);
    if (s.pageCache) pageCache.push(s.pageCache);
    const last3 = settle.slice(-3);
    if (last3.length === 3 && last3.every((b) => b.vmHighBytes === last3[0]!.vmHighBytes)) break;
    await sleep(2000);
  }
  return {
    windows: rec.windows.slice(from, from + spec.durationS),
    pageCache,
    balloon: [...balloon, ...settle],
    idsCgroups: [...groups],
    actuators: rec.progress(),
    cpuMax: { vm: readOr(join(unitCgroup(VM_UNIT), "cpu.max"), "?"), ids: aideCgroups().map((g) => `${g}: ${readOr(join(g, "cpu.max"), "?")}`) },
  };
}

function cgroupDirs(dir: string, out: string[]): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    const p = join(dir, e.name);
    out.push(p);
    cgroupDirs(p, out);
  }
  return out;
}

/** `systemctl stop`, `cage uninstall`, then everything of ours still on the machine. */
export async function stopAndUninstall(): Promise<{ leftovers: Leftovers; facts: Record<string, unknown> }> {
  const facts: Record<string, unknown> = {};
  const manifest = JSON.parse(readOr(join(PREFIX, "install-manifest.json"), '{"entries":[]}')) as { entries: { path: string; kind: string }[] };
  const t = Date.now();
  facts.stop = await capture("systemctl", ["stop", UNIT], 180_000);
  facts.stopSeconds = (Date.now() - t) / 1000;
  // The lab's own drop-in goes first: what is left after uninstall must be the agent's alone.
  rmSync(LAB_DROP_IN_DIR, { recursive: true, force: true });
  facts.uninstall = await capture(process.execPath, [cageCli, "uninstall"], 300_000);
  facts.workloadProperties = {
    vm: await unitProperties(VM_UNIT, ["CPUQuotaPerSecUSec", "CPUWeight", "MemoryHigh", "MemoryMax", "ActiveState"]),
    ids: await unitProperties(IDS_UNIT, ["CPUQuotaPerSecUSec", "CPUWeight", "MemoryHigh", "MemoryMax", "ActiveState"]),
  };
  facts.workloadCgroupFiles = Object.fromEntries(
    [VM_UNIT, IDS_UNIT].flatMap((u) => ["cpu.max", "memory.high", "memory.max"].map((f) => [`${u}/${f}`, readOr(join(unitCgroup(u), f), "?")])),
  );
  facts.aideCgroups = aideCgroups();
  facts.cgls = await capture("systemd-cgls", ["--no-pager", "-a"]);
  const control = "/run/systemd/system.control";
  const procs = processes().filter((p) => p.pid !== process.pid);
  const leftovers: Leftovers = {
    cgroups: cgroupDirs("/sys/fs/cgroup", []).filter((d) => d.includes("offloadcage")),
    processes: procs.filter((p) => /offloadcage|cage\.js/.test(p.cmdline) || p.comm === "bpftrace").map((p) => `${p.pid} ${p.cmdline.slice(0, 120)}`),
    files: manifest.entries.filter((e) => e.kind !== "config" && existsSync(e.path)).map((e) => e.path),
    unitLoadState: (await unitProperties(UNIT, ["LoadState"])).LoadState ?? "?",
    ...runtimeDropIns(control),
    stoppedProcesses: procs.filter((p) => p.state === "T").map((p) => `${p.pid}:${p.comm}`),
  };
  await capture("systemctl", ["stop", VM_UNIT, IDS_UNIT], 120_000);
  rmSync(CAGE_FILE, { force: true });
  return { leftovers, facts };
}
