/**
 * Runs inside the Xen lab's dom0 (started by test/xen/dom0/init.sh):
 *   node scenarioMain.js SPEC.json RESULTS_DIR
 * Creates the busy domU, starts the IDS in dom0, runs the agent (`cage run`) with the cage file
 * the scenario calls for, records the agent's 1 s cage windows and the hypervisor's view
 * (`xl list`, `xl sched-credit*`), stops everything it started and writes RESULTS_DIR/results.json.
 * Every step is bounded in time: the host harness also kills the whole machine if this overruns.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync, createWriteStream } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { MessageSubscriber } from "../../../protocol/messageBus.js";
import { Topic } from "../../../protocol/wireFormat.js";
import { decodeCageAggregate, decodeCollectorStatus, type CageAggregate, type CollectorStatus } from "../../../protocol/cageAggregate.js";
import { decodeXenDomainCpu, type XenDomainCpu } from "../../../protocol/xenDomainCpu.js";
import { defaultEndpoints } from "../../../protocol/endpoints.js";
import { capCompliance, parseXlListTable, validateScenarioSpec, type CageWindow, type LabScenarioSpec } from "../labScenario.js";
import { cageDocument, domuConfig, aideConfig, idsScript, LAB_CAGE, LAB_DOMU, LAB_RUNTIME_DIR } from "./labFiles.js";

const execFileP = promisify(execFile);
const cageCli = fileURLToPath(new URL("../../../cli/cage.js", import.meta.url));
const LAB_DIR = "/run/lab";
const started = Date.now();
const elapsed = (): number => Math.round((Date.now() - started) / 100) / 10;

function say(msg: string): void {
  process.stdout.write(`[${elapsed()}s] ${msg}\n`);
}

async function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await execFileP(cmd, args, { timeout: timeoutMs, maxBuffer: 8 * 1024 * 1024 });
  return stdout;
}

/** Output or the error text: for records where a failure is itself the finding. */
async function capture(cmd: string, args: string[]): Promise<string> {
  try {
    return await run(cmd, args, 30_000);
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return `ERROR: ${e.message}\n${e.stdout ?? ""}${e.stderr ?? ""}`;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(500);
  }
}

async function domuMemMiB(): Promise<{ domu: number; dom0: number; table: string }> {
  const table = await run("xl", ["list"]);
  const rows = parseXlListTable(table);
  const domu = rows.find((r) => r.name === LAB_DOMU);
  const dom0 = rows.find((r) => r.id === 0);
  if (!domu || !dom0) throw new Error(`xl list has no ${LAB_DOMU} or no dom0:\n${table}`);
  return { domu: domu.memMiB, dom0: dom0.memMiB, table };
}

/** Starts a process in its own group so the whole tree can be killed; output to a log file. */
function startGroup(cmd: string, args: string[], logPath: string): ChildProcess {
  const out = createWriteStream(logPath);
  const child = spawn(cmd, args, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
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

interface Recording {
  windows: CageWindow[];
  aggregates: CageAggregate[];
  xen: XenDomainCpu[];
  statuses: CollectorStatus[];
  other: { topic: string; payload: string }[];
}

async function main(): Promise<number> {
  const [specPath, resultsDir] = process.argv.slice(2);
  if (!specPath || !resultsDir) {
    process.stderr.write("usage: scenarioMain.js SPEC.json RESULTS_DIR\n");
    return 2;
  }
  const spec = JSON.parse(readFileSync(specPath, "utf8")) as LabScenarioSpec;
  validateScenarioSpec(spec);
  mkdirSync(LAB_DIR, { recursive: true });
  mkdirSync(resultsDir, { recursive: true });
  const results: Record<string, unknown> = { spec, ok: false };
  const timings: Record<string, number> = {};
  results.timings = timings;
  const cleanups: (() => Promise<void>)[] = [];
  const save = (): void => writeFileSync(join(resultsDir, "results.json"), JSON.stringify(results, null, 2));
  try {
    results.xlInfo = await run("xl", ["info"]);
    results.node = process.version;
    say(`xl info: ${/xen_scheduler\s*:\s*(\S+)/.exec(results.xlInfo as string)?.[1] ?? "?"}`);

    writeFileSync(join(LAB_DIR, "domu1.cfg"), domuConfig(spec));
    await run("xl", ["create", join(LAB_DIR, "domu1.cfg")], 120_000);
    cleanups.push(async () => {
      await capture("xl", ["destroy", LAB_DOMU]);
    });
    await waitFor(`${LAB_DOMU} in xl list`, 60_000, async () => (await domuMemMiB()).domu > 0 || null);
    timings.domuCreatedS = elapsed();
    say(`domU created`);
    results.xlListStart = (await domuMemMiB()).table;

    // The IDS in dom0.
    if (spec.ids === "aide") {
      mkdirSync("/mnt/domu-disk", { recursive: true });
      await run("mount", ["-t", "ext4", "-o", "ro,noload", "/dev/vdd", "/mnt/domu-disk"]);
      cleanups.push(async () => {
        await capture("umount", ["/mnt/domu-disk"]);
      });
      writeFileSync(join(LAB_DIR, "aide.conf"), aideConfig("/mnt/domu-disk", join(LAB_DIR, "aide.db")));
      results.domuDiskFiles = Number((await run("find", ["/mnt/domu-disk", "-type", "f"])).split("\n").filter(Boolean).length);
    }
    writeFileSync(join(LAB_DIR, "lab-ids.sh"), idsScript(spec.ids, join(LAB_DIR, "aide.conf")));
    const ids = startGroup("sh", [join(LAB_DIR, "lab-ids.sh")], join(resultsDir, "ids.log"));
    cleanups.push(() => stopGroup(ids, 3_000));
    say(`IDS started (${spec.ids}), pid ${ids.pid}`);

    // The agent.
    const cagePath = join(LAB_DIR, "cage.json");
    writeFileSync(cagePath, JSON.stringify(cageDocument(spec), null, 2));
    const warmupS = 90;
    const agent = startGroup(process.execPath, [cageCli, "run", "--config", cagePath, "--duration", String(spec.durationS + warmupS + 30)], join(resultsDir, "agent.log"));
    cleanups.push(() => stopGroup(agent, 15_000));
    const agentStart = elapsed();
    say(`agent started, pid ${agent.pid}`);

    const ep = defaultEndpoints(LAB_RUNTIME_DIR);
    const sub = new MessageSubscriber();
    sub.connect(ep.aggregates);
    sub.connect(ep.collectors.xentrace as string);
    for (const a of Object.values(ep.actuators ?? {})) sub.connect(a);
    sub.subscribe(Topic.cageAggregate, Topic.rawXen, Topic.status, Topic.actuatorDecision, Topic.actuatorState);
    cleanups.push(() => Promise.resolve(sub.close()));
    const rec: Recording = { windows: [], aggregates: [], xen: [], statuses: [], other: [] };
    let live = false;
    let liveAt = 0;
    const consumer = (async () => {
      for await (const m of sub.messages((err) => say(`bad frame: ${err.message}`))) {
        try {
          if (m.topic === Topic.cageAggregate) {
            const a = decodeCageAggregate(m.payload);
            if (a.cage !== LAB_CAGE) continue;
            rec.aggregates.push(a);
            // Live = both halves of the cage are measured: xentrace windows and bpftrace windows.
            if (!live && a.vm.cpuPct > 0 && a.ids.cpuPct > 0) {
              live = true;
              liveAt = elapsed();
              say(`cage live: vm ${a.vm.cpuPct.toFixed(1)}% ids ${a.ids.cpuPct.toFixed(1)}%`);
            }
            if (live) rec.windows.push({ timeMs: a.timeMs, windowSeconds: a.windowSeconds, vmPct: a.vm.cpuPct, idsPct: a.ids.cpuPct, totalPct: a.totalPct, capPct: a.capPct });
          } else if (m.topic === Topic.rawXen) {
            rec.xen.push(decodeXenDomainCpu(m.payload));
          } else if (m.topic === Topic.status) {
            rec.statuses.push(decodeCollectorStatus(m.payload));
          } else {
            rec.other.push({ topic: m.topic, payload: m.payload.toString("utf8") });
          }
        } catch (err) {
          say(`bad message on ${m.topic}: ${(err as Error).message}`);
        }
      }
    })();

    const schedCmd = spec.scheduler === "credit" ? "sched-credit" : "sched-credit2";
    const schedSamples: { atS: number; text: string }[] = [];
    await waitFor("the cage's first window with both domU and IDS CPU", warmupS * 1000, () => Promise.resolve(live || null));
    timings.agentStartS = agentStart;
    timings.liveS = liveAt;
    const windowsAtLive = rec.windows.length;
    const deadline = Date.now() + (spec.durationS + 20) * 1000;
    while (rec.windows.length - windowsAtLive < spec.durationS && Date.now() < deadline) {
      await sleep(2_000);
      schedSamples.push({ atS: elapsed(), text: await capture("xl", [schedCmd, "-d", LAB_DOMU]) });
      say(`windows ${rec.windows.length}, last total ${rec.windows[rec.windows.length - 1]?.totalPct.toFixed(1) ?? "-"}%`);
    }
    timings.recordedS = elapsed();
    results.schedSamples = schedSamples;
    results.xlListEnd = (await domuMemMiB()).table;
    const measured = rec.windows.slice(0, spec.durationS);
    results.windows = measured;
    results.compliance = capCompliance(measured, 3);
    results.xenWindows = rec.xen.map((w) => ({ timeMs: w.timeMs, windowSeconds: w.windowSeconds, session: w.session, domains: w.domains.map((d) => ({ domain: d.domain, name: d.name, runNs: d.runNs })), lostRecords: w.lostRecords }));
    results.statuses = rec.statuses.slice(-20);
    results.actuatorMessages = rec.other.slice(-200);
    results.ok = true;
    say(`recorded ${measured.length} windows`);
    await stopGroup(agent, 15_000);
    sub.close();
    await consumer;
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

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`scenarioMain: ${String(err)}\n`);
    process.exit(1);
  },
);
