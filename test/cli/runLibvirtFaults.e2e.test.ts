// The whole agent (`cage run`: collectors, pipeline, CPU actuator) with libvirt cages on a real
// libvirtd (scripts/libvirt-lab.sh, a private daemon) when virsh breaks: an unknown domain from the
// start, and a virsh that fails and then hangs mid-run. The breaking virsh is a FAKE wrapper in
// front of the real one (a real libvirtd cannot be made to fail or hang on demand); in mode "ok"
// it runs the real virsh. Run under both locks:
//   flock /tmp/oc-e2e.lock flock /tmp/oc-qemu.lock node --test dist/test/cli/runLibvirtFaults.e2e.test.js
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseVirshSchedinfo } from "../../actuators/common/virshSchedinfo.js";
import { defaultEndpoints } from "../../protocol/endpoints.js";
import type { ActuatorMode } from "../../protocol/actuatorMessages.js";
import { LibvirtLab } from "../../lab/common/libvirtLab.js";
import { ActuatorListener, testCpuCgroup, waitFor, waitForAsync, writeCageFile } from "../actuators/actuatorHarness.js";
import { startSleeper } from "../pipeline/pipelineHarness.js";
import { pidsMatching, startCage } from "./cliHarness.js";

const DOM = "oc-faults";

function quotaOf(cgroup: string): number {
  return Number(readFileSync(join(cgroup, "cpu.cfs_quota_us"), "utf8").trim());
}

/** A busy loop, stopped at once: an idle IDS until the test sends SIGCONT. */
function stoppedBurner(): ChildProcess & { pid: number } {
  const child = spawn(process.execPath, ["-e", "for(;;){}"], { stdio: "ignore" }) as ChildProcess & { pid: number };
  process.kill(child.pid, "SIGSTOP");
  return child;
}

void test("cage run with libvirt cages: an unknown domain and a failing, then hanging virsh are errors naming them; the agent runs on and recovers", { timeout: 300_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "oc-libvirt-faults-"));
  const runtimeDir = join(dir, "run");
  const binDir = join(dir, "bin");
  mkdirSync(binDir);
  const modeFile = join(dir, "virsh-mode");
  const callLog = join(dir, "virsh-calls");
  const realVirsh = execFileSync("sh", ["-c", "command -v virsh"], { encoding: "utf8" }).trim();
  const fakeVirsh = join(binDir, "virsh");
  // A loop for "hang", not `exec sleep`: its command line keeps naming the wrapper, so the test can
  // count it. It ends once the test's folder is gone, so a leak fails the test but outlives no run.
  // Each call is logged with the mode it saw, so the test knows the last cap that reached libvirt.
  writeFileSync(
    fakeVirsh,
    [
      "#!/bin/sh",
      `mode="$(cat ${modeFile} 2>/dev/null)"`,
      `echo "$(date +%s.%N) $mode $*" >> ${callLog}`,
      'case "$mode" in',
      '  fail) echo "error: failed to connect to the hypervisor (test: virsh broken)" >&2; exit 1 ;;',
      `  hang) while [ -e ${modeFile} ]; do sleep 0.1; done; exit 1 ;;`,
      "esac",
      `exec ${realVirsh} "$@"`,
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  const setMode = (m: "ok" | "fail" | "hang"): void => writeFileSync(modeFile, m);
  setMode("ok");

  const lab = await LibvirtLab.start();
  const cg = testCpuCgroup("libvirt-faults");
  mkdirSync(cg.path);
  const vmSleeper = startSleeper();
  cg.add(vmSleeper.pid);
  const idsFaulty = stoppedBurner();
  const idsHealthy = stoppedBurner();
  const idsGhost = startSleeper();
  const listener = new ListenerOfModes();
  let run: ReturnType<typeof startCage> | null = null;
  try {
    await lab.define(DOM, { memoryMiB: 256 });
    await lab.virsh("start", DOM);
    const schedinfo = async (): Promise<Map<string, number>> => parseVirshSchedinfo(await lab.virsh("schedinfo", DOM, "--live"), "virsh schedinfo").params;
    const original = await schedinfo();
    const periodUs = original.get("global_period") as number;
    const quota = async (): Promise<number> => (await schedinfo()).get("global_quota") as number;

    const config = writeCageFile(
      dir,
      ["  prometheus: false", "  actuators:", "    cpu: { periodMs: 100, staleAfterMs: 3000 }"],
      [
        "  - name: faulty",
        `    vm: { kind: libvirt, domain: ${DOM}, uri: "${lab.uri}" }`,
        `    ids: [{ pid: ${String(idsFaulty.pid)}, uid: 0 }]`,
        "    cpu: { cap: 60, failsafeCap: 30 }",
        "  - name: ghost",
        `    vm: { kind: libvirt, domain: no-such-domain, uri: "${lab.uri}" }`,
        `    ids: [{ pid: ${String(idsGhost.pid)}, uid: 0 }]`,
        "    cpu: { cap: 50 }",
        "  - name: healthy",
        `    vm: { kind: cgroup, path: ${cg.path} }`,
        `    ids: [{ pid: ${String(idsHealthy.pid)}, uid: 0 }]`,
        "    cpu: { cap: 100 }",
      ],
      runtimeDir,
    );
    run = startCage(["run", "--config", config], { ...process.env, PATH: `${binDir}${delimiter}${process.env.PATH ?? ""}` });
    const output = run.output;
    listener.start((defaultEndpoints(runtimeDir).actuators as Record<string, string>).cpu as string);

    // Working virsh: both reachable cages capped from data (idle IDS: the VM has the whole cage,
    // less any correction for the cage's measured overrun while the guest boots).
    const capQuota = Math.round((periodUs * 60) / 100);
    await waitForAsync("the libvirt domain capped from data, at most 60%", async () => {
      const q = await quota();
      return q > 0 && q <= capQuota;
    }, 90_000);
    await waitFor("the cgroup VM capped at 100% from data", () => quotaOf(cg.path) === 100_000, 30_000);
    await waitFor("the unknown domain's cage in mode error", () => listener.modeOf("ghost") === "error", 30_000);
    await waitFor("the pipeline's warning naming the unknown domain", () => /cage ghost: libvirt domain no-such-domain is not defined: cage idle/.test(output()), 30_000);
    assert.match(output(), /"cage":"ghost".*failed to get domain 'no-such-domain'/, "the CPU actuator's error names the unknown domain");
    assert.equal(listener.modeOf("faulty"), "active");

    // virsh fails: the IDS wakes, the wanted cap cannot be written. The cage is in error with the
    // wrapper's message; the domain keeps the cap last set (never lifted); the other cage follows its IDS.
    setMode("fail");
    process.kill(idsFaulty.pid, "SIGCONT");
    process.kill(idsHealthy.pid, "SIGCONT");
    await waitFor("the failing virsh's cage in mode error", () => listener.modeOf("faulty") === "error", 15_000);
    await waitFor("the cgroup VM's cap lowered for its busy IDS", () => quotaOf(cg.path) < 100_000, 15_000);
    assert.match(output(), /faulty[\s\S]*virsh[\s\S]*test: virsh broken|test: virsh broken[\s\S]*faulty/, "the error names the cage and carries virsh's message");
    // The cap from data may have moved from 60% before virsh broke (the controller also corrects
    // the cage's measured overrun): the wrapper's log says what was last written.
    const lastWritten = lastQuotaWritten(callLog);
    assert.equal(await quota(), lastWritten, "the domain kept the cap last written: never uncapped by a failing virsh");

    // virsh hangs: each command is killed at the timeout, one at a time per cage; the other cage
    // still follows its IDS.
    setMode("hang");
    await waitFor("a hanging virsh started", () => hangingWrappers(fakeVirsh).length > 0, 15_000);
    process.kill(idsHealthy.pid, "SIGSTOP");
    await waitFor("the cgroup VM back at 100% while the other cage's virsh hangs", () => quotaOf(cg.path) === 100_000, 15_000);
    let mostHanging = 0;
    const hangUntil = Date.now() + 12_000;
    while (Date.now() < hangUntil) {
      mostHanging = Math.max(mostHanging, hangingWrappers(fakeVirsh).length);
      await sleep(200);
    }
    t.diagnostic(`hanging virsh processes at once, at most: ${mostHanging}`);
    // At most one each for the CPU actuator's two libvirt cages and the pipeline's watcher of the unknown domain.
    assert.ok(mostHanging <= 3, `hanging commands do not pile up (${mostHanging} at once)`);
    assert.match(output(), /killed after 10000 ms/, "a hanging virsh is killed at the command timeout, and said so");
    assert.equal(listener.modeOf("faulty"), "error");

    // Aggregates stop (pipeline SIGSTOPped) while virsh still fails: the fail-safe cannot be written,
    // so the domain keeps the last cap and the cage stays in error; once virsh works the fail-safe
    // goes on; once aggregates resume the cage is controlled from data again.
    setMode("fail");
    const pipeline = agentChild("pipeline/main.js", runtimeDir);
    process.kill(pipeline, "SIGSTOP");
    let pipelineStopped = true;
    try {
      await sleep(3000 + 1500);
      assert.equal(listener.modeOf("faulty"), "error", "a failing back end is reported over the fail-safe");
      assert.equal(await quota(), lastWritten, "the domain still has the cap last written");
      setMode("ok");
      const failsafeQuota = Math.round((periodUs * 30) / 100);
      await waitForAsync("the domain at its fail-safe cap (30%) once virsh works", async () => (await quota()) === failsafeQuota, 15_000);
      await waitFor("the cage in mode failsafe", () => listener.modeOf("faulty") === "failsafe", 10_000);
      process.kill(pipeline, "SIGCONT");
      pipelineStopped = false;
      await waitFor("the cage active again", () => listener.modeOf("faulty") === "active", 30_000);
      await waitForAsync("the domain capped from data again (its IDS busy: below the fail-safe)", async () => (await quota()) < failsafeQuota, 15_000);
    } finally {
      if (pipelineStopped) process.kill(pipeline, "SIGCONT");
    }
    assert.equal(listener.modeOf("ghost"), "error", "the unknown domain stays an error");

    const logLines = output().split("\n");
    const ghostLines = logLines.filter((l) => l.includes("no-such-domain")).length;
    const faultyErrors = logLines.filter((l) => l.includes("test: virsh broken")).length;
    t.diagnostic(`log lines naming the unknown domain: ${ghostLines}; carrying the failing virsh's message: ${faultyErrors} (of ${logLines.length})`);
    for (const l of logLines.filter((x) => x.includes("no-such-domain") || x.includes("test: virsh broken") || x.includes("killed after"))) t.diagnostic(l.slice(0, 400));
    assert.ok(ghostLines <= 10, `no error storm for the unknown domain (${ghostLines} lines)`);
    assert.ok(faultyErrors <= 10, `no error storm for the failing virsh (${faultyErrors} lines)`);

    const exited = new Promise<number | null>((resolve) => run?.child.once("exit", (code) => resolve(code)));
    run.child.kill("SIGTERM");
    assert.equal(await exited, 0, "the agent stops cleanly");
    run = null;
    assert.equal(await quota(), original.get("global_quota"), "the domain's original quota is back after stop");
    assert.equal(quotaOf(cg.path), -1, "the cgroup VM's original (no quota) is back after stop");
    assert.deepEqual([...(await pidsMatching(fakeVirsh)), ...(await pidsMatching(`-c ${lab.uri} `))], [], "no virsh of the agent's is left running");
  } finally {
    setMode("ok");
    await listener.close();
    run?.child.kill("SIGKILL");
    for (const p of [idsFaulty, idsHealthy]) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    idsGhost.kill("SIGKILL");
    vmSleeper.kill("SIGKILL");
    cg.remove();
    await lab.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The latest act.state mode of each cage from the CPU actuator. */
class ListenerOfModes extends ActuatorListener {
  modeOf(cage: string): ActuatorMode | null {
    for (let i = this.states.length - 1; i >= 0; i--) if (this.states[i]?.cage === cage) return this.states[i]?.mode ?? null;
    return null;
  }
}

/** The global_quota the last call that reached the real virsh set on the test domain. */
function lastQuotaWritten(callLog: string): number {
  const written = new RegExp(`^\\S+ ok .* schedinfo ${DOM} --live --set global_quota=(-?\\d+)$`);
  let last: number | null = null;
  for (const line of readFileSync(callLog, "utf8").split("\n")) {
    const m = written.exec(line);
    if (m) last = Number(m[1]);
  }
  if (last === null) throw new Error(`no global_quota of ${DOM} set through the wrapper (${callLog})`);
  return last;
}

/** The PID of the agent's child running `script` for this runtime directory. */
function agentChild(script: string, runtimeDir: string): number {
  for (const line of execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" }).split("\n")) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (m && (m[2] as string).includes(script) && (m[2] as string).includes(runtimeDir)) return Number(m[1]);
  }
  throw new Error(`no process runs ${script} for ${runtimeDir}`);
}

function hangingWrappers(path: string): number[] {
  const out: number[] = [];
  for (const line of execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" }).split("\n")) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (m && (m[2] as string).startsWith(`/bin/sh ${path}`)) out.push(Number(m[1]));
  }
  return out;
}
