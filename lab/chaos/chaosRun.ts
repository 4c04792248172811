/**
 * The chaos run: the real agent (`cage run`) on one cage of the demo workloads (a CPU-burning
 * "VM" and a file-hashing IDS, both real processes; real cgroups; loopback only), and:
 *  - kill -9 of each component, N times, with a sampler every 10 ms reading the VM's real CFS
 *    quota and the IDS's process state; orphans counted 5 s after each kill; leftovers after a
 *    clean stop at the end of each component's part;
 *  - `cage run` itself killed at random moments, during start-up included;
 *  - two impostors (a uid-65534 process named `aide`, and one whose command line matches the
 *    IDS's `cmdline` pattern), each measured against a baseline;
 *  - the CPU actuator, the limiter and the balloon actuator run alone and fed only malformed
 *    aggregates.
 * Everything it starts and every cgroup it makes is removed on the way out, SIGINT included.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, type WriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { decodeActuatorState, type ActuatorState } from "../../protocol/actuatorMessages.js";
import { decodeCageAggregates, encodeCageAggregates, encodeJson, type CageAggregate } from "../../protocol/cageAggregate.js";
import { defaultEndpoints } from "../../protocol/endpoints.js";
import { MessagePublisher, MessageSubscriber } from "../../protocol/messageBus.js";
import { Encoding, Topic } from "../../protocol/wireFormat.js";
import type { ChaosComponent, ChaosOptions } from "./chaosOptions.js";
import {
  agentProcesses, CHAOS_MARKER_ENV, cgroupProcs, cpuCgroupPath, effectiveCpuCap, killQuietly, moveToCpuRoot, orphansOf, processState, readOptional, removeCgroupTree, type AgentProcess,
} from "./chaosHost.js";
import { Sampler, type SamplerSnapshot } from "./chaosSampler.js";
import { criteriaFailures, formatComponentTable, summarizeComponent, type ComponentSummary, type KillRecord } from "./chaosStats.js";
import { readStartTime } from "../../host/proc/processIdentity.js";
import { processCpuSeconds } from "../../host/proc/processTable.js";
import { prng } from "../common/prng.js";

const CAGE_JS = fileURLToPath(new URL("../../cli/cage.js", import.meta.url));
const DEMO_WORKLOAD_JS = fileURLToPath(new URL("../../cli/demo/demoWorkload.js", import.meta.url));

/** The cage's CPU figures: the fail-safe cap is what the VM must get when the agent cannot decide. */
const CAP_PCT = 60;
const IDS_CAP_PCT = 25;
const FAILSAFE_CAP_PCT = 30;
const STALE_AFTER_MS = 1000;
const SAMPLE_MS = 10;
/** A process that burns CPU until killed, and leaves when its parent (the lab) is gone. */
const BUSY_LOOP = "const p=process.ppid;setInterval(()=>{if(process.ppid!==p)process.exit(0)},500).unref();function b(){const e=Date.now()+50;while(Date.now()<e);setImmediate(b)}b()";
const ORPHAN_CHECK_MS = 5000;
const STEADY_TIMEOUT_MS = 30_000;
/** cage run's own stop waits for the balloon actuator's 30 s deadline at most. */
const CLEAN_STOP_TIMEOUT_MS = 45_000;

export interface ImpostorResult {
  kind: "aide uid 65534" | "cmdline";
  pid: number;
  uid: number;
  seconds: number;
  aggregates: number;
  /** Aggregates of the cage whose ids.pids (or vm.pids) held the impostor. */
  aggregatesCountingIt: number;
  /** Share of samples the impostor spent in state T, and its longest stop. */
  stoppedFraction: number;
  maxStoppedMs: number;
  /** Its cpu cgroup when the phase ended (an actuator may have adopted it). */
  cgroupAtEnd: string | null;
  meanVmCapPct: number | null;
  baselineMeanVmCapPct: number | null;
  /** The real IDS's CPU over the phase, % of one CPU, and over the baseline. */
  realIdsCpuPct: number;
  baselineRealIdsCpuPct: number;
}

export interface MalformedResult {
  seconds: number;
  /** Distinct malformed messages sent in rotation, out of the candidates made (the rest the decoder accepts). */
  kinds: number;
  candidates: number;
  published: number;
  /** Ms from the switch to malformed input until the VM's real quota was the fail-safe cap; null: never. */
  failsafeAfterMs: number | null;
  /** Per actuator: alive at the end, its last act.state mode and invalidAggregates. */
  actuators: { name: string; alive: boolean; exit: string | null; lastMode: string | null; invalidAggregates: number | null }[];
  idsStoppedFraction: number;
  idsStoppedSamples: number;
  samples: number;
  /** Samples in the malformed phase (after the fail-safe was first reached) with the VM not at its fail-safe cap. */
  samplesOffFailsafe: number;
  leftovers: string[];
}

export interface ChaosResult {
  mode: string;
  startedAt: string;
  seconds: number;
  seed: number;
  cage: string;
  cpu: { capPct: number; idsCapPct: number; failsafeCapPct: number; staleAfterMs: number };
  components: ComponentSummary[];
  kills: KillRecord[];
  impostors: ImpostorResult[];
  malformed: MalformedResult | null;
  sampler: { samples: number; maxGapMs: number };
  /** Components that failed a criterion of the issue, with why. */
  criteria: Record<string, string[]>;
}

/** What is known while the run goes on: written out after each step. */
export interface ChaosProgress {
  impostors: ImpostorResult[];
  malformed: MalformedResult | null;
  components: ComponentSummary[];
  kills: KillRecord[];
}

/** Waits until `check` holds (polled every 20 ms); false on timeout or abort. */
async function until(check: () => boolean, timeoutMs: number, signal: AbortSignal, everyMs = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (signal.aborted) return false;
    if (check()) return true;
    await sleep(everyMs);
  }
  return check();
}

function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** utime + stime of a process, seconds; 0 once it is gone. */
function cpuSeconds(pid: number): number {
  return processCpuSeconds(pid) ?? 0;
}

class ChaosRun {
  /** The run's clock: ms since this instant, in both threads. */
  private readonly origin = performance.timeOrigin + performance.now();
  private readonly rand: () => number;
  private readonly tag = `chaos${process.pid}`;
  private readonly token = `${process.pid}-${Date.now()}`;
  private readonly dir = mkdtempSync(join(tmpdir(), "oc-chaos-"));
  private readonly binDir = join(tmpdir(), `oc-chaos-bin-${process.pid}`);
  private readonly runtimeDir = join(this.dir, "run");
  private readonly configPath = join(this.dir, "cages.yaml");
  private readonly memcg = `/sys/fs/cgroup/memory/oc-chaos-${process.pid}`;
  private memcgOriginalLimit = "";
  private readonly agentLog: WriteStream;
  private vm: ChildProcess | null = null;
  private ids: ChildProcess | null = null;
  private busyIds: ChildProcess | null = null;
  private agent: ChildProcess | null = null;
  private readonly others = new Set<ChildProcess>();
  private sampler: Sampler | null = null;
  private readonly kills: KillRecord[] = [];

  constructor(
    private readonly opts: ChaosOptions,
    private readonly signal: AbortSignal,
    private readonly log: (line: string) => void,
  ) {
    this.rand = prng(opts.seed);
    this.agentLog = createWriteStream(join(this.dir, "agent.log"), { flags: "a" });
  }

  now(): number {
    return performance.timeOrigin + performance.now() - this.origin;
  }

  /** While false the sampler does not count a missing cap: the agent is starting, stopping or gone on purpose. */
  private set shouldCap(value: boolean) {
    this.sampler?.setShouldCap(value);
  }

  private snapshot(): Promise<SamplerSnapshot> {
    if (this.sampler === null) throw new Error("cage lab chaos: the sampler is not running");
    return this.sampler.snapshot();
  }

  private get vmPid(): number {
    return this.vm?.pid ?? 0;
  }

  private get idsPid(): number {
    return this.ids?.pid ?? 0;
  }

  private idsCpuSeconds(): number {
    return this.idsPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  }

  /** The real IDS's processes: the demo IDS and the busy one. */
  private get idsPids(): number[] {
    return [this.idsPid, this.busyIds?.pid ?? 0];
  }

  // ---- set-up and tear-down ----

  private writeConfig(): void {
    const lines = [
      "agent:",
      `  runtimeDir: ${this.runtimeDir}`,
      "  logLevel: warn",
      "  prometheus: false",
      "  actuators:",
      `    cpu: { periodMs: 100, staleAfterMs: ${STALE_AFTER_MS} }`,
      `    limiter: { mode: sigstop, periodMs: 100, staleAfterMs: ${STALE_AFTER_MS}, failsafe: hold }`,
      `    balloon: { staleAfterMs: ${STALE_AFTER_MS} }`,
      "cages:",
      `  - name: ${this.tag}`,
      `    vm: { kind: process, match: [{ cmdline: 'demoWorkload\\.js --kind vm --chaos ${this.tag}' }] }`,
      "    ids:",
      `      - { cmdline: 'demoWorkload\\.js --kind ids --chaos ${this.tag}', user: root }`,
      "      - { comm: aide, user: root }",
      `    cpu: { cap: ${CAP_PCT}, idsCap: ${IDS_CAP_PCT}, failsafeCap: ${FAILSAFE_CAP_PCT} }`,
      `    memory: { base: 512MiB, floor: 128MiB, cgroup: ${this.memcg} }`,
      "",
    ];
    writeFileSync(this.configPath, lines.join("\n"));
  }

  setUp(): void {
    this.writeConfig();
    mkdirSync(this.memcg);
    this.memcgOriginalLimit = (readOptional(join(this.memcg, "memory.limit_in_bytes")) ?? "").trim();
    // The workloads carry no marker: they are the cage's, not the agent's.
    this.vm = spawn(process.execPath, [DEMO_WORKLOAD_JS, "--kind", "vm", "--chaos", this.tag], { stdio: "ignore" });
    if (this.vm.pid === undefined) throw new Error("cage lab chaos: could not start the demo VM workload");
    writeFileSync(join(this.memcg, "cgroup.procs"), String(this.vm.pid));
    this.ids = spawn(process.execPath, [DEMO_WORKLOAD_JS, "--kind", "ids", "--chaos", this.tag], { stdio: "ignore" });
    if (this.ids.pid === undefined) throw new Error("cage lab chaos: could not start the demo IDS workload");
    // The demo IDS scans in bursts (3 s of 7); a second IDS process of root that is always busy keeps the limiter at work all along.
    this.busyIds = spawn(process.execPath, ["-e", BUSY_LOOP, "--", "demoWorkload.js", "--kind", "ids", "--chaos", this.tag, "--busy"], { stdio: "ignore" });
    if (this.busyIds.pid === undefined) throw new Error("cage lab chaos: could not start the busy IDS process");
    this.sampler = new Sampler(this.vm.pid, this.idsPids, this.origin);
  }

  private startAgent(): ChildProcess {
    const child = spawn(process.execPath, [CAGE_JS, "run", "--config", this.configPath], {
      env: { ...process.env, [CHAOS_MARKER_ENV]: this.token },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.pipe(this.agentLog, { end: false });
    child.stderr?.pipe(this.agentLog, { end: false });
    this.agent = child;
    return child;
  }

  private find(component: string): AgentProcess | undefined {
    if (component === "cage run") return this.agent?.pid !== undefined && this.agent.exitCode === null ? { pid: this.agent.pid, ppid: process.pid, state: "", name: "cage run", cmdline: "" } : undefined;
    return agentProcesses(this.token).find((p) => p.name === component);
  }

  private vmCapped(): boolean {
    return (effectiveCpuCap(this.vmPid)?.pct ?? null) !== null;
  }

  /** The agent running with `component` up and the VM capped. */
  private async steady(component: string, timeoutMs = STEADY_TIMEOUT_MS): Promise<boolean> {
    // A /proc scan costs tens of ms here: poll it slowly, the cheap cap check first.
    return until(() => this.vmCapped() && this.find(component) !== undefined, timeoutMs, this.signal, 250);
  }

  /** SIGTERM to cage run and wait for it (SIGKILL after the deadline). */
  private async stopAgent(): Promise<string[]> {
    const notes: string[] = [];
    const agent = this.agent;
    this.shouldCap = false;
    if (agent === null) return notes;
    if (agent.exitCode === null && agent.signalCode === null) {
      agent.kill("SIGTERM");
      const timer = setTimeout(() => {
        notes.push(`cage run did not stop within ${CLEAN_STOP_TIMEOUT_MS} ms of SIGTERM: SIGKILLed`);
        agent.kill("SIGKILL");
      }, CLEAN_STOP_TIMEOUT_MS);
      await exitOf(agent);
      clearTimeout(timer);
    }
    this.agent = null;
    return notes;
  }

  /** What the agent left on the machine, in words. */
  private leftovers(): string[] {
    const out: string[] = [];
    for (const p of agentProcesses(this.token)) out.push(`process ${p.name} (pid ${p.pid}, parent ${p.ppid}, state ${p.state}) still running`);
    const cpuRoot = "/sys/fs/cgroup/cpu/offloadcage";
    for (const sub of [join(cpuRoot, this.tag)]) if (readOptional(join(sub, "cgroup.procs")) !== null) out.push(`cgroup ${sub} still exists`);
    const cap = effectiveCpuCap(this.vmPid);
    if (cap !== null && cap.pct !== null) out.push(`VM still capped at ${cap.pct.toFixed(1)}% (${cap.cgroup})`);
    for (const [what, pid] of [["VM", this.vmPid], ...this.idsPids.map((p) => ["IDS", p] as const)] as const) if (processState(pid) === "T") out.push(`${what} (pid ${pid}) left stopped`);
    const limit = (readOptional(join(this.memcg, "memory.limit_in_bytes")) ?? "").trim();
    if (limit !== this.memcgOriginalLimit) out.push(`VM memory limit left at ${limit} (was ${this.memcgOriginalLimit})`);
    const tracked = cgroupProcs("/sys/fs/cgroup/unified/offloadcage/ids");
    for (const pid of this.idsPids) if (tracked.includes(pid)) out.push(`IDS (pid ${pid}) still in the page cache tracking group /offloadcage/ids`);
    return out;
  }

  /** Puts the machine back as it was before the agent: nothing of one step may spill into the next. */
  private cleanUp(): void {
    for (const p of agentProcesses(this.token)) killQuietly(p.pid);
    for (const pid of [this.vmPid, ...this.idsPids]) {
      killQuietly(pid, "SIGCONT");
      moveToCpuRoot(pid);
    }
    removeCgroupTree(join("/sys/fs/cgroup/cpu/offloadcage", this.tag));
    if (this.memcgOriginalLimit !== "") {
      try {
        writeFileSync(join(this.memcg, "memory.limit_in_bytes"), this.memcgOriginalLimit);
      } catch {
        // the memcg is removed at the end anyway
      }
    }
    const tracked = cgroupProcs("/sys/fs/cgroup/unified/offloadcage/ids");
    for (const pid of this.idsPids.filter((p) => tracked.includes(p))) {
      try {
        writeFileSync("/sys/fs/cgroup/unified/cgroup.procs", String(pid));
      } catch {
        // gone
      }
    }
  }

  async tearDown(): Promise<void> {
    await this.sampler?.stop();
    this.sampler = null;
    await this.stopAgent();
    this.cleanUp();
    for (const c of this.others) {
      if (c.pid !== undefined) killQuietly(c.pid, "SIGCONT");
      c.kill("SIGKILL");
    }
    await Promise.all([...this.others].map(exitOf));
    for (const w of [this.vm, this.ids, this.busyIds]) {
      if (w === null) continue;
      if (w.pid !== undefined) killQuietly(w.pid, "SIGCONT");
      w.kill("SIGKILL");
      await exitOf(w);
    }
    // A cgroup goes once its last task has been reaped, a moment after the kill.
    for (let i = 0; i < 50 && removeCgroupTree(this.memcg).length > 0; i++) await sleep(20);
    await new Promise<void>((resolve) => this.agentLog.end(resolve));
    rmSync(this.binDir, { recursive: true, force: true });
  }

  // ---- the kill matrix ----

  /**
   * Long mode: one agent per component, so each component's leftovers are its own. Short mode:
   * the components before `cage run` share one agent (one start-up instead of several); their
   * leftovers then go to the last of them.
   */
  async killMatrix(onComponents: (done: ComponentSummary[], kills: KillRecord[]) => void): Promise<ComponentSummary[]> {
    const groups: ChaosComponent[][] = [];
    for (const c of this.opts.components) {
      const last = groups.at(-1);
      if (this.opts.mode === "short" && c !== "cage run" && last !== undefined && last[0] !== "cage run") last.push(c);
      else groups.push([c]);
    }
    const summaries: ComponentSummary[] = [];
    for (const group of groups) {
      if (this.signal.aborted) break;
      const done = group[0] === "cage run" ? [await this.killCageRun()] : await this.killComponents(group);
      summaries.push(...done);
      onComponents(summaries, this.kills);
      for (const line of formatComponentTable(done).split("\n").slice(2)) this.log(line);
    }
    return summaries;
  }

  private async killComponents(components: ChaosComponent[]): Promise<ComponentSummary[]> {
    const notes: string[] = [];
    this.startAgent();
    if (!(await this.steady(components[0] as string))) notes.push(`${components[0]} not running with the VM capped within ${STEADY_TIMEOUT_MS} ms of the start`);
    this.log(`${components.join(", ")}: agent started, ${this.opts.killsPerComponent} kills each`);
    this.shouldCap = true;
    const killsOf = new Map<ChaosComponent, KillRecord[]>();
    for (const component of components) killsOf.set(component, await this.killRepeatedly(component));
    this.log(`${components.join(", ")}: kills done, stopping the agent`);
    notes.push(...(await this.stopAgent()));
    this.log(`${components.join(", ")}: agent stopped`);
    await sleep(500);
    const left = this.leftovers();
    this.cleanUp();
    const snap = await this.snapshot();
    return components.map((component, i) => {
      const kills = killsOf.get(component) ?? [];
      this.kills.push(...kills);
      const summary = summarizeComponent(component, kills, snap.uncapped, snap.idsStopped, i === components.length - 1 ? left : [], true);
      if (i === 0) summary.failures.push(...notes);
      return summary;
    });
  }

  /** N kills of one component of the running agent; each observed until the next (the last: until the VM is capped again). */
  private async killRepeatedly(component: ChaosComponent): Promise<KillRecord[]> {
    const kills: KillRecord[] = [];
    for (let i = 0; i < this.opts.killsPerComponent && !this.signal.aborted; i++) {
      const failures: string[] = [];
      if (!(await this.steady(component))) {
        if (this.signal.aborted) break;
        failures.push(`${component} not back (or the VM not capped) within ${STEADY_TIMEOUT_MS} ms: kill skipped`);
        kills.push({ component, index: i, pid: 0, atMs: this.now(), untilMs: this.now(), orphans: 0, orphanNames: [], failures });
        continue;
      }
      await sleep(200 + this.rand() * 1000);
      const target = this.find(component);
      if (target === undefined) {
        failures.push(`${component} gone before the kill`);
        kills.push({ component, index: i, pid: 0, atMs: this.now(), untilMs: this.now(), orphans: 0, orphanNames: [], failures });
        continue;
      }
      const atMs = this.now();
      killQuietly(target.pid);
      await sleep(ORPHAN_CHECK_MS);
      const orphans = orphansOf(agentProcesses(this.token), process.pid);
      kills.push({ component, index: i, pid: target.pid, atMs, untilMs: Number.POSITIVE_INFINITY, orphans: orphans.length, orphanNames: orphans.map((o) => `${o.name}(${o.pid})`), failures });
      const previous = kills.at(-2);
      if (previous !== undefined && previous.untilMs === Number.POSITIVE_INFINITY) previous.untilMs = atMs;
    }
    // The last kill's window lasts until the VM is capped again (or the timeout): an open uncapped run must close.
    await until(() => this.vmCapped(), STEADY_TIMEOUT_MS, this.signal);
    await sleep(2 * SAMPLE_MS);
    const last = kills.at(-1);
    if (last !== undefined && last.untilMs === Number.POSITIVE_INFINITY) last.untilMs = this.now();
    return kills;
  }

  /** `cage run` killed at a random moment: half of them during start-up (0.3–3 s), half after it settled. */
  private async killCageRun(): Promise<ComponentSummary> {
    const kills: KillRecord[] = [];
    const left: string[] = [];
    for (let i = 0; i < this.opts.killsPerComponent && !this.signal.aborted; i++) {
      const failures: string[] = [];
      const startedMs = this.now();
      const agent = this.startAgent();
      if (i % 2 === 0) {
        await sleep(300 + this.rand() * 2700);
      } else {
        if (!(await this.steady("actuator-cpu"))) failures.push(`agent not settled within ${STEADY_TIMEOUT_MS} ms; killed anyway`);
        await sleep(this.rand() * 2000);
      }
      const atMs = this.now();
      killQuietly(agent.pid ?? 0);
      await exitOf(agent);
      this.agent = null;
      await sleep(ORPHAN_CHECK_MS);
      const orphans = orphansOf(agentProcesses(this.token), process.pid);
      const trialLeft = this.leftovers();
      left.push(...trialLeft.map((l) => `kill ${i + 1} (${Math.round(atMs - startedMs)} ms after start): ${l}`));
      kills.push({ component: "cage run", index: i, pid: agent.pid ?? 0, atMs, untilMs: this.now(), afterStartMs: Math.round(atMs - startedMs), orphans: orphans.length, orphanNames: orphans.map((o) => `${o.name}(${o.pid})`), failures });
      this.cleanUp();
      await sleep(300);
    }
    this.kills.push(...kills);
    const snap = await this.snapshot();
    return summarizeComponent("cage run", kills, snap.uncapped, snap.idsStopped, left, false);
  }

  // ---- impostors ----

  /** The VM's mean cap between two snapshots, % of one CPU (null: never capped). */
  private static capMean(from: SamplerSnapshot, to: SamplerSnapshot): number | null {
    const n = to.capCount - from.capCount;
    return n === 0 ? null : Math.round(((to.capSum - from.capSum) / n) * 10) / 10;
  }

  /** Collects the cage's aggregates while `phase` runs. */
  private async countAggregates<T>(phase: (aggregates: CageAggregate[]) => Promise<T>): Promise<T> {
    const sub = new MessageSubscriber();
    const got: CageAggregate[] = [];
    sub.connect(defaultEndpoints(this.runtimeDir).aggregates);
    sub.subscribe(Topic.cageAggregates);
    const reading = sub.receiveEach(
      (m) => {
        if (m.topic !== Topic.cageAggregates) return;
        try {
          for (const a of decodeCageAggregates(m.payload).aggregates) if (a.cage === this.tag) got.push(a);
        } catch {
          // a bad aggregate is the pipeline's to count; here it is simply not one of ours
        }
      },
      () => undefined,
    );
    try {
      return await phase(got);
    } finally {
      sub.close();
      await reading.catch(() => undefined);
    }
  }

  private startImpostor(kind: ImpostorResult["kind"]): ChildProcess {
    const nobody = ["--reuid", "65534", "--regid", "65534", "--clear-groups"];
    let child: ChildProcess;
    if (kind === "aide uid 65534") {
      // exec through a link named aide: the kernel sets comm from the name executed.
      mkdirSync(this.binDir, { recursive: true });
      chmodSync(this.binDir, 0o755);
      const link = join(this.binDir, "aide");
      rmSync(link, { force: true });
      symlinkSync("/bin/dash", link);
      child = spawn("setpriv", [...nobody, link, "-c", "while :; do :; done"], { stdio: "ignore" });
    } else {
      child = spawn("setpriv", [...nobody, process.execPath, "-e", "for(;;){}", "--", "demoWorkload.js", "--kind", "ids", "--chaos", this.tag], { stdio: "ignore" });
    }
    this.others.add(child);
    return child;
  }

  async impostors(): Promise<ImpostorResult[]> {
    const seconds = this.opts.impostorSeconds;
    if (seconds === 0) return [];
    const results: ImpostorResult[] = [];
    this.startAgent();
    if (!(await this.steady("actuator-limiter"))) this.log("impostors: the agent did not settle; measuring anyway");
    this.shouldCap = true;
    await sleep(2000);
    const baseline = await this.countAggregates(async () => {
      const from = await this.snapshot();
      const cpu0 = this.idsCpuSeconds();
      await sleep(seconds * 1000);
      return { cap: ChaosRun.capMean(from, await this.snapshot()), idsCpuPct: ((this.idsCpuSeconds() - cpu0) / seconds) * 100 };
    });
    for (const kind of ["aide uid 65534", "cmdline"] as const) {
      if (this.signal.aborted) break;
      const child = this.startImpostor(kind);
      const pid = child.pid ?? 0;
      await sleep(100);
      const uid = Number(/Uid:\s+(\d+)/.exec(readOptional(`/proc/${pid}/status`) ?? "")?.[1] ?? -1);
      this.sampler?.watch(pid);
      const phase = await this.countAggregates(async (got) => {
        const from = await this.snapshot();
        const cpu0 = this.idsCpuSeconds();
        await sleep(seconds * 1000);
        const to = await this.snapshot();
        return { got: [...got], cap: ChaosRun.capMean(from, to), idsCpuPct: ((this.idsCpuSeconds() - cpu0) / seconds) * 100, cgroup: cpuCgroupPath(pid), watched: to.watched[pid] };
      });
      this.sampler?.unwatch(pid);
      const w = phase.watched;
      killQuietly(pid, "SIGCONT");
      child.kill("SIGKILL");
      await exitOf(child);
      this.others.delete(child);
      results.push({
        kind,
        pid,
        uid,
        seconds,
        aggregates: phase.got.length,
        aggregatesCountingIt: phase.got.filter((a) => a.ids.pids.includes(pid) || a.vm.pids.includes(pid)).length,
        stoppedFraction: w === undefined || w.samples === 0 ? 0 : Math.round((w.stopped / w.samples) * 1000) / 1000,
        maxStoppedMs: Math.round((w?.runs ?? []).reduce((m, r) => Math.max(m, r.endMs - r.startMs), 0)),
        cgroupAtEnd: phase.cgroup,
        meanVmCapPct: phase.cap,
        baselineMeanVmCapPct: baseline.cap,
        realIdsCpuPct: Math.round(phase.idsCpuPct * 10) / 10,
        baselineRealIdsCpuPct: Math.round(baseline.idsCpuPct * 10) / 10,
      });
      await sleep(2000);
    }
    await this.stopAgent();
    await sleep(500);
    this.cleanUp();
    return results;
  }

  // ---- malformed aggregates ----

  private aggregate(): CageAggregate {
    return {
      v: 1, cage: this.tag, timeMs: Date.now(), windowSeconds: 0.1,
      vm: { cpuPct: 30, pids: [this.vmPid], startTimes: [readStartTime(this.vmPid) ?? 0], rssBytes: 64 << 20 },
      ids: { cpuPct: 50, pids: this.idsPids, startTimes: this.idsPids.map((pid) => readStartTime(pid) ?? 0), rssBytes: 64 << 20, pageCacheBytes: 0 },
      totalPct: 80, capPct: CAP_PCT, idsCapPct: IDS_CAP_PCT, weight: null,
      memory: { baseBytes: 512 << 20, floorBytes: 128 << 20 },
    };
  }

  /**
   * JSON with the values that once crashed receivers, in PID and numeric fields. Only those the
   * protocol's decoder rejects are sent (a value it takes, 1.5 % of CPU say, is valid input);
   * `candidates` says how many were made.
   */
  private malformedAggregates(): { messages: Buffer[]; candidates: number } {
    const out: Buffer[] = [];
    const bad: unknown[] = [null, "1", undefined, 1e308, -1e308, -1, 1.5, [], ["1"], [1e308], [-1], [0], {}, true];
    const fields: [string, string | null][] = [["vm", "pids"], ["ids", "pids"], ["vm", "cpuPct"], ["ids", "cpuPct"], ["totalPct", null], ["capPct", null], ["timeMs", null], ["windowSeconds", null], ["memory", "baseBytes"]];
    for (const value of bad) {
      for (const [outer, inner] of fields) {
        const a = JSON.parse(JSON.stringify(this.aggregate())) as Record<string, unknown>;
        const target = inner === null ? a : (a[outer] as Record<string, unknown>);
        const key = inner ?? outer;
        if (value === undefined) delete target[key];
        else target[key] = value;
        // Each alone in an agg.window message, as the pipeline would send a one-cage window.
        out.push(encodeJson({ v: 1, aggregates: [a] }));
      }
    }
    const messages = out.filter((m) => decodeCageAggregates(m).rejected.length === 1);
    return { messages, candidates: out.length };
  }

  async malformed(): Promise<MalformedResult | null> {
    const seconds = this.opts.malformedSeconds;
    if (seconds === 0) return null;
    const endpoint = `ipc://${join(this.dir, "chaos-aggregates.sock")}`;
    const publisher = new MessagePublisher();
    await publisher.bind(endpoint);
    const names = ["cpu", "limiter", "balloon"] as const;
    const children = new Map<string, ChildProcess>();
    const states = new Map<string, ActuatorState>();
    const subs: MessageSubscriber[] = [];
    const readers: Promise<void>[] = [];
    let published = 0;
    let phase: "valid" | "malformed" = "valid";
    const { messages: bad, candidates } = this.malformedAggregates();
    let next = 0;
    const feeding = setInterval(() => {
      if (phase === "valid") {
        void publisher.publish(Topic.cageAggregates, Encoding.json, encodeCageAggregates([this.aggregate()]));
      } else {
        for (let k = 0; k < 4; k++) {
          void publisher.publish(Topic.cageAggregates, Encoding.json, bad[next++ % bad.length] as Buffer);
          published++;
        }
      }
    }, 100);
    try {
      for (const name of names) {
        const publish = `ipc://${join(this.dir, `chaos-actuator-${name}.sock`)}`;
        const child = spawn(process.execPath, [CAGE_JS, "actuator", name, "--config", this.configPath, "--endpoint", endpoint, "--publish", publish], {
          env: { ...process.env, [CHAOS_MARKER_ENV]: this.token },
          stdio: ["ignore", "pipe", "pipe"],
        });
        child.stdout?.pipe(this.agentLog, { end: false });
        child.stderr?.pipe(this.agentLog, { end: false });
        children.set(name, child);
        const sub = new MessageSubscriber();
        sub.connect(publish);
        sub.subscribe(Topic.actuatorState);
        subs.push(sub);
        readers.push(
          sub.receiveEach(
            (m) => {
              try {
                const s = decodeActuatorState(m.payload);
                if (s.cage === this.tag) states.set(name, s);
              } catch {
                // not a state message of ours
              }
            },
            () => undefined,
          ),
        );
      }
      const active = await until(() => states.get("cpu")?.mode === "active" && states.get("limiter")?.mode === "active" && this.vmCapped(), 20_000, this.signal);
      if (!active) this.log(`malformed: the actuators did not become active on valid input within 20 s (cpu ${states.get("cpu")?.mode}, limiter ${states.get("limiter")?.mode}); measuring anyway`);
      this.shouldCap = true;
      phase = "malformed";
      const switchedAt = Date.now();
      let failsafeAt: number | null = null;
      let samples = 0;
      let idsStoppedSamples = 0;
      let offFailsafe = 0;
      const end = switchedAt + seconds * 1000;
      while (Date.now() < end && !this.signal.aborted) {
        const pct = effectiveCpuCap(this.vmPid)?.pct ?? null;
        const atFailsafe = pct !== null && Math.abs(pct - FAILSAFE_CAP_PCT) < 0.5;
        if (failsafeAt === null && atFailsafe) failsafeAt = Date.now();
        if (failsafeAt !== null) {
          samples++;
          if (!atFailsafe) offFailsafe++;
          if (this.idsPids.some((pid) => processState(pid) === "T")) idsStoppedSamples++;
        }
        await sleep(SAMPLE_MS);
      }
      clearInterval(feeding);
      const actuators = names.map((name) => {
        const child = children.get(name) as ChildProcess;
        const s = states.get(name);
        const exited = child.exitCode !== null || child.signalCode !== null;
        return { name, alive: !exited, exit: exited ? String(child.exitCode ?? child.signalCode) : null, lastMode: s?.mode ?? null, invalidAggregates: s?.values.invalidAggregates ?? null };
      });
      this.shouldCap = false;
      for (const child of children.values()) child.kill("SIGTERM");
      const timer = setTimeout(() => {
        for (const child of children.values()) child.kill("SIGKILL");
      }, CLEAN_STOP_TIMEOUT_MS);
      await Promise.all([...children.values()].map(exitOf));
      clearTimeout(timer);
      await sleep(500);
      const leftovers = this.leftovers();
      return {
        seconds,
        kinds: bad.length,
        candidates,
        published,
        failsafeAfterMs: failsafeAt === null ? null : failsafeAt - switchedAt,
        actuators,
        idsStoppedFraction: samples === 0 ? 0 : Math.round((idsStoppedSamples / samples) * 1000) / 1000,
        idsStoppedSamples,
        samples,
        samplesOffFailsafe: offFailsafe,
        leftovers,
      };
    } finally {
      clearInterval(feeding);
      for (const child of children.values()) child.kill("SIGKILL");
      await Promise.all([...children.values()].map(exitOf));
      for (const s of subs) s.close();
      await Promise.all(readers.map((r) => r.catch(() => undefined)));
      await publisher.close();
      this.cleanUp();
    }
  }

  async result(components: ComponentSummary[], impostors: ImpostorResult[], malformed: MalformedResult | null, startedAt: Date): Promise<ChaosResult> {
    const snap = await this.snapshot();
    const criteria: Record<string, string[]> = {};
    for (const c of components) {
      const f = criteriaFailures(c);
      if (f.length > 0) criteria[c.component] = f;
    }
    return {
      mode: this.opts.mode,
      startedAt: startedAt.toISOString(),
      seconds: Math.round(this.now() / 100) / 10,
      seed: this.opts.seed,
      cage: this.tag,
      cpu: { capPct: CAP_PCT, idsCapPct: IDS_CAP_PCT, failsafeCapPct: FAILSAFE_CAP_PCT, staleAfterMs: STALE_AFTER_MS },
      components,
      kills: this.kills.map((k) => ({ ...k, atMs: Math.round(k.atMs), untilMs: Math.round(k.untilMs) })),
      impostors,
      malformed,
      sampler: { samples: snap.samples, maxGapMs: Math.round(snap.maxGapMs) },
      criteria,
    };
  }

  /** The agent's log (every child's stderr), for a failure message. */
  logTail(): string {
    return (readOptional(join(this.dir, "agent.log")) ?? "").slice(-2000);
  }

  removeWorkDir(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Runs the whole chaos run; `signal` aborts it (the clean-up still runs). */
export async function runChaos(
  opts: ChaosOptions,
  signal: AbortSignal,
  log: (line: string) => void,
  onProgress: (partial: ChaosProgress) => void = () => undefined,
): Promise<ChaosResult> {
  if (process.getuid?.() !== 0) throw new Error("cage lab chaos: needs root (real cgroups, SIGSTOP of other users' processes, bpftrace)");
  readFileSync(DEMO_WORKLOAD_JS); // fail early, with the path, when the build is missing
  const startedAt = new Date();
  const t0 = Date.now();
  const stamped = (line: string): void => log(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${line}`);
  const run = new ChaosRun(opts, signal, stamped);
  try {
    run.setUp();
    // The short phases first: a long run cut short still has their figures.
    stamped(opts.impostorSeconds > 0 ? `impostors: ${opts.impostorSeconds} s baseline, then each impostor ${opts.impostorSeconds} s` : "impostors: skipped");
    const impostors = await run.impostors();
    stamped(opts.malformedSeconds > 0 ? `malformed aggregates: ${opts.malformedSeconds} s` : "malformed aggregates: skipped");
    const malformed = await run.malformed();
    onProgress({ impostors, malformed, components: [], kills: [] });
    stamped(`kill matrix: ${opts.components.join(", ")} × ${opts.killsPerComponent}`);
    const components = await run.killMatrix((done, kills) => onProgress({ impostors, malformed, components: done, kills }));
    return await run.result(components, impostors, malformed, startedAt);
  } catch (err) {
    log(`failed; the agent's log ends with:\n${run.logTail()}`);
    throw err;
  } finally {
    await run.tearDown();
    run.removeWorkDir();
  }
}
