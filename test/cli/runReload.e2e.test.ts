// `cage run` and SIGHUP (systemctl reload): the real agent (bpftrace CPU collector included; run
// under the shared e2e lock). An invalid file is refused with every problem logged and nothing
// restarted; a valid change restarts only the children that read the cage file; a comment-only
// edit restarts nothing; the children always read the accepted copy.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { activeConfigPath } from "../../cli/runCommand.js";
import { startCage } from "./cliHarness.js";

/** The agent's children by the main.js they run: name → pid. */
function childrenOf(agentPid: number): Map<string, number> {
  const found = new Map<string, number>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== agentPid) continue;
      const m = /(collectors\/\w+|pipeline|actuators\/\w+)\/main\.js/.exec(readFileSync(`/proc/${d}/cmdline`, "utf8"));
      if (m) found.set(m[1] as string, Number(d));
    } catch {
      // gone
    }
  }
  return found;
}

async function until<T>(what: string, ms: number, output: () => string, probe: () => T | null): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = probe();
    if (v !== null) return v;
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms; agent output:\n${output().slice(-3000)}`);
    await sleep(100);
  }
}

const count = (text: string, needle: string): number => text.split(needle).length - 1;

test("cage run: SIGHUP refuses an invalid cage file, and restarts only the children whose inputs changed", { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "oc-reload-"));
  const runtimeDir = join(dir, "run");
  const config = join(dir, "cages.yaml");
  const cage = (sampleMs: number, comment = ""): string =>
    `${comment}agent:\n  runtimeDir: ${runtimeDir}\n  prometheus: false\n  pageCache: false\n  memorySampleMs: ${sampleMs}\n` +
    `cages:\n  - name: r1\n    vm: { kind: process, match: [{ cmdline: oc-reload-vm-marker }] }\n    ids: [{ cmdline: oc-reload-ids-marker, uid: 0 }]\n    cpu: { cap: 100 }\n`;
  writeFileSync(config, cage(1000));
  const agent = startCage(["run", "--config", config]);
  const pid = agent.child.pid as number;
  t.after(() => {
    agent.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  const all = ["collectors/cpu", "collectors/memory", "pipeline"];
  const first = await until("the three children", 60_000, agent.output, () => {
    const c = childrenOf(pid);
    return all.every((n) => c.has(n)) ? c : null;
  });
  const active = activeConfigPath(runtimeDir);
  assert.equal(readFileSync(active, "utf8"), cage(1000), "the children read the accepted copy");
  for (const n of ["collectors/memory", "pipeline"]) {
    assert.ok(readFileSync(`/proc/${first.get(n)}/cmdline`, "utf8").includes(active), `${n} is given the accepted copy`);
  }

  // Two problems in one file: both are logged, the old config stays, nothing restarts.
  writeFileSync(config, cage(1000).replace("cap: 100", "cap: -5").replace("prometheus: false", "prometheus: false\n  bogusKey: 1"));
  process.kill(pid, "SIGHUP");
  await until("the refusal", 30_000, agent.output, () => (agent.output().includes("config reload refused; the running config is kept") ? true : null));
  const refusals = agent.output().split("\n").filter((l) => l.includes("config reload refused: "));
  assert.ok(refusals.some((l) => l.includes("bogusKey")), `the unknown key is named:\n${refusals.join("\n")}`);
  assert.ok(refusals.some((l) => l.includes("cpu.cap")), `the bad cap is named:\n${refusals.join("\n")}`);
  await sleep(1000);
  assert.deepEqual(childrenOf(pid), first, "no child restarted");
  assert.equal(readFileSync(active, "utf8"), cage(1000), "the accepted copy is unchanged");

  // A comment-only edit: the loaded config is the same; nothing restarts.
  writeFileSync(config, cage(1000, "# only a comment\n"));
  process.kill(pid, "SIGHUP");
  await until("the first reload", 30_000, agent.output, () => (count(agent.output(), "config reloaded") === 1 ? true : null));
  await sleep(1000);
  assert.deepEqual(childrenOf(pid), first, "a comment restarts nothing");

  // A real change: the children reading the cage file restart, the CPU collector does not.
  writeFileSync(config, cage(500));
  process.kill(pid, "SIGHUP");
  await until("the second reload", 30_000, agent.output, () => (count(agent.output(), "config reloaded") === 2 ? true : null));
  const second = await until("the restarted children", 30_000, agent.output, () => {
    const c = childrenOf(pid);
    return all.every((n) => c.has(n)) && c.get("collectors/memory") !== first.get("collectors/memory") && c.get("pipeline") !== first.get("pipeline") ? c : null;
  });
  assert.equal(second.get("collectors/cpu"), first.get("collectors/cpu"), "the CPU collector (no --config) kept running");
  assert.equal(readFileSync(active, "utf8"), cage(500));

  agent.child.kill("SIGTERM");
  const code = await new Promise<number | null>((resolve) => agent.child.once("exit", resolve));
  assert.equal(code, 0, agent.output().slice(-3000));
  for (const [n, p] of second) assert.equal(existsSync(`/proc/${p}`), false, `${n} left running`);
  assert.equal(existsSync(active), false, "the accepted copy is removed at exit");
});

test("cage run --top: SIGHUP is the terminal hanging up, and stops the agent with its children", { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "oc-hangup-"));
  const runtimeDir = join(dir, "run");
  const config = join(dir, "cages.yaml");
  writeFileSync(config, `agent:\n  runtimeDir: ${runtimeDir}\n  prometheus: false\n  pageCache: false\ncages:\n  - name: h1\n    vm: { kind: process, match: [{ cmdline: oc-hangup-vm-marker }] }\n    ids: [{ cmdline: oc-hangup-ids-marker, uid: 0 }]\n    cpu: { cap: 100 }\n`);
  const agent = startCage(["run", "--config", config, "--top"]);
  const pid = agent.child.pid as number;
  t.after(() => {
    agent.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  const running = await until("the children", 60_000, agent.output, () => {
    const c = childrenOf(pid);
    return c.has("collectors/memory") && c.has("pipeline") ? c : null;
  });
  process.kill(pid, "SIGHUP");
  const code = await new Promise<number | null>((resolve) => agent.child.once("exit", resolve));
  assert.equal(code, 0, agent.output().slice(-3000));
  for (const [n, p] of running) assert.equal(existsSync(`/proc/${p}`), false, `${n} left running`);
  assert.equal(existsSync(activeConfigPath(runtimeDir)), false);
});
