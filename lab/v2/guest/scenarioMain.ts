/**
 * Runs inside the v2 lab's guest (started by v2-lab.service through lab/v2/guest/lab-run.sh),
 * with systemd as PID 1 and cgroup v2 alone:
 *   node scenarioMain.js SPEC.json RESULTS_DIR
 * Runs the spec's phases in order and writes RESULTS_DIR/results.json after each one. Every step
 * is bounded in time; the guest's driver and the host harness kill everything if this overruns.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { balloonV2Check, checkLeftovers, checkRestart, checkSmoke, cpuV2Check, pageCacheCheck, validateV2Spec, type Check, type SmokeFacts, type V2ScenarioSpec } from "../labScenario.js";
import { answer, capture, elapsed, exitWithScenario, say, scenarioArgs } from "../../common/guestCommands.js";
import { AgentRecorder, installAndStart, killAndRestart, measureCage, stopAndUninstall } from "./servicePhases.js";
import { cageMemoryMiB } from "./labFiles.js";

async function smoke(): Promise<{ facts: SmokeFacts; timings: Record<string, number> }> {
  const timings: Record<string, number> = {};
  const timed = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    try {
      return await f();
    } finally {
      timings[name] = (Date.now() - t) / 1000;
      say(`smoke: ${name} ${timings[name]} s`);
    }
  };
  // `is-system-running` exits non-zero for degraded: the text is the answer.
  const systemState = (await timed("isSystemRunning", () => answer("systemctl", ["is-system-running", "--wait"], 300_000))).stdout.trim();
  const nodeVersion = (await timed("nodeStart", () => capture(process.execPath, ["-e", "console.log(process.version)"], 120_000))).trim();
  const bpf = await timed("bpftraceSchedSwitch", () => capture("bpftrace", ["-e", "tracepoint:sched:sched_switch { @n = count(); } interval:s:1 { exit(); }"], 240_000));
  const failed = await capture("systemctl", ["--failed", "--plain", "--no-legend", "--no-pager"]);
  const facts: SmokeFacts = {
    pid1Comm: readFileSync("/proc/1/comm", "utf8").trim(),
    systemState,
    cgroupMounts: readFileSync("/proc/self/mounts", "utf8").split("\n").filter((l) => /^\S+ \S+ cgroup2? /.test(l)),
    controllers: readFileSync("/sys/fs/cgroup/cgroup.controllers", "utf8").trim(),
    nodeVersion,
    bpftraceEvents: Number(/@n: (\d+)/.exec(bpf)?.[1] ?? 0),
    failedUnits: failed.split("\n").filter(Boolean),
  };
  return { facts, timings };
}

async function main(): Promise<number> {
  const args = scenarioArgs<V2ScenarioSpec>(process.argv.slice(2), validateV2Spec);
  if (args === null) return 2;
  const { spec, resultsDir } = args;
  const results: Record<string, unknown> = { spec, ok: false, node: process.version, phases: {} };
  const phases = results.phases as Record<string, unknown>;
  // What the phases' checks found; the host's test asserts on each phase, this is the summary.
  const failures: string[] = [];
  results.failures = failures;
  const save = (): void => writeFileSync(join(resultsDir, "results.json"), JSON.stringify(results, null, 2));
  try {
    const note = (phase: string, check: Check): void => {
      if (!check.ok) failures.push(...check.problems.map((p) => `${phase}: ${p}`));
    };
    if (spec.phases[0] === "smoke") {
      say("phase smoke");
      const s = await smoke();
      const check = checkSmoke(s.facts);
      phases.smoke = { ...s, check };
      note("smoke", check);
    } else {
      // service and cage share one installed agent; teardown (stop, uninstall, leftovers) always runs.
      say("installing and starting the agent");
      let rec: AgentRecorder | null = null;
      try {
        const install: Record<string, unknown> = {};
        phases.install = install;
        await installAndStart(spec, install);
        save();
        rec = new AgentRecorder();
        // The cage first, on the agent as started; the kill -9 last, as its restart under the
        // workloads is the slowest part under TCG.
        if (spec.phases.includes("cage")) {
          say("phase cage");
          const c = await measureCage(spec, rec);
          const mem = cageMemoryMiB(spec);
          const checks = {
            cpu: cpuV2Check(c.windows as Parameters<typeof cpuV2Check>[0], spec.idsCapPct),
            pageCache: pageCacheCheck(c.pageCache as Parameters<typeof pageCacheCheck>[0]),
            balloon: balloonV2Check(c.balloon as Parameters<typeof balloonV2Check>[0], mem.base * 2 ** 20, mem.floor * 2 ** 20),
          };
          phases.cage = { ...c, checks };
          for (const [k, v] of Object.entries(checks)) if (!v.ok) failures.push(`cage: ${k} check failed: ${JSON.stringify(v)}`);
          save();
        }
        if (spec.phases.includes("service")) {
          say("phase service: kill -9 of the main process");
          const r = await killAndRestart();
          const check = checkRestart(r.facts);
          phases.restart = { ...r, check };
          note("restart", check);
          save();
        }
      } finally {
        await rec?.close();
        results.agentJournal = await capture("journalctl", ["-u", "offloadcage.service", "-b", "--no-pager", "-o", "short-monotonic"]);
        say("teardown: systemctl stop, cage uninstall, leftovers");
        const t = await stopAndUninstall();
        const check = checkLeftovers(t.leftovers);
        phases.teardown = { ...t, check };
        note("teardown", check);
      }
    }
    results.ok = failures.length === 0;
    return results.ok ? 0 : 1;
  } catch (err) {
    results.error = (err as Error).stack ?? String(err);
    say(`FAIL ${(err as Error).message}`);
    return 1;
  } finally {
    results.seconds = elapsed();
    save();
  }
}

exitWithScenario(main);
