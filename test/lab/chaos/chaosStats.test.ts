// The chaos run's pure parts: runs from samples, their attribution to kills, the criteria, the
// table, the options, and how agent processes are named and found orphaned.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { componentOf, orphansOf, type AgentProcess } from "../../../lab/chaos/chaosHost.js";
import { ALL_COMPONENTS, LAB_CHAOS_USAGE, parseLabChaosArgs } from "../../../lab/chaos/chaosOptions.js";
import { criteriaFailures, formatComponentTable, RunRecorder, runsStartingIn, summarizeComponent, type KillRecord } from "../../../lab/chaos/chaosStats.js";

function kill(component: string, index: number, atMs: number, untilMs: number, orphans = 0): KillRecord {
  return { component, index, pid: 100 + index, atMs, untilMs, orphans, orphanNames: [], failures: [] };
}

void test("RunRecorder: a run lasts from its first bad sample to the first good one; close() ends an open run at the last sample", () => {
  const r = new RunRecorder();
  for (const [t, bad] of [[0, false], [10, true], [20, true], [30, false], [40, true], [50, true]] as const) r.sample(t, bad);
  assert.deepEqual(r.runs, [{ startMs: 10, endMs: 30 }]);
  assert.equal(r.openSince, 40);
  r.close();
  assert.deepEqual(r.runs, [{ startMs: 10, endMs: 30 }, { startMs: 40, endMs: 50 }]);
  assert.equal(r.openSince, null);
});

void test("summarizeComponent: runs count against the kill whose window they fall in; an uncapped run already open at the kill counts too", () => {
  const kills = [kill("actuator-cpu", 0, 1000, 8000, 1), kill("actuator-cpu", 1, 8000, 15000)];
  const uncapped = [
    { startMs: 500, endMs: 700 }, // before any kill: start-up, not this component's
    { startMs: 990, endMs: 4100 }, // began one sample before kill 1
    { startMs: 9000, endMs: 9400 },
    { startMs: 20000, endMs: 26000 }, // after the last window
  ];
  const ids = [{ startMs: 1200, endMs: 1250 }, { startMs: 9000, endMs: 10200 }, { startMs: 16000, endMs: 30000 }];
  const s = summarizeComponent("actuator-cpu", kills, uncapped, ids, ["cgroup x still exists"], true);
  assert.equal(s.kills, 2);
  assert.equal(s.maxUncappedMs, 3110);
  assert.equal(s.everNoLimit, true);
  assert.equal(s.maxIdsStoppedMs, 1200);
  assert.equal(s.orphans, 1);
  assert.deepEqual(criteriaFailures(s), [
    "an IDS stayed stopped 1200 ms (> 1000)",
    "the VM was without a cap for 3110 ms (> 1500)",
    "the VM had no limit while the agent should have been capping",
    "1 orphans 5 s after the kills",
    "1 leftovers at the end",
  ]);
  assert.deepEqual(runsStartingIn(ids, 8000, 15000), [{ startMs: 9000, endMs: 10200 }]);
});

void test("summarizeComponent: cage run kills have no cap criterion; a clean component meets every criterion", () => {
  const s = summarizeComponent("cage run", [kill("cage run", 0, 0, 6000)], [{ startMs: 100, endMs: 5000 }], [], [], false);
  assert.equal(s.maxUncappedMs, null);
  assert.equal(s.everNoLimit, null);
  assert.deepEqual(criteriaFailures(s), []);
  const clean = summarizeComponent("pipeline", [kill("pipeline", 0, 0, 6000)], [], [{ startMs: 10, endMs: 80 }], [], true);
  const skipped = { ...kill("pipeline", 1, 6000, 6000), pid: 0, failures: ["pipeline not back"] };
  const withSkip = summarizeComponent("pipeline", [kill("pipeline", 0, 0, 6000), skipped], [], [], [], true);
  assert.equal(withSkip.kills, 1, "a skipped kill is not counted as a kill");
  assert.deepEqual(withSkip.failures, ["kill 2: pipeline not back"]);
  assert.deepEqual(criteriaFailures(clean), []);
  assert.equal(clean.everNoLimit, false);
});

void test("formatComponentTable: one row per component, columns as the issue asks, n/a where a figure does not apply", () => {
  const rows = [
    summarizeComponent("actuator-cpu", [kill("actuator-cpu", 0, 0, 5000)], [{ startMs: 100, endMs: 2100 }], [], [], true),
    summarizeComponent("cage run", [kill("cage run", 0, 0, 5000, 3)], [], [], ["process x still running"], false),
  ];
  const lines = formatComponentTable(rows).split("\n");
  assert.equal(lines.length, 4);
  assert.match(lines[0] ?? "", /^component\s+kills\s+max IDS stopped ms\s+max uncapped ms\s+ever no-limit\s+orphans\s+leftovers\s+failures$/);
  assert.match(lines[2] ?? "", /^actuator-cpu\s+1\s+0\s+2000\s+YES\s+0\s+0\s+0$/);
  assert.match(lines[3] ?? "", /^cage run\s+1\s+0\s+n\/a\s+n\/a\s+3\s+1\s+0$/);
});

void test("parseLabChaosArgs: mode defaults, --only checked against the components, bad values exit 2", () => {
  const short = parseLabChaosArgs(["--mode", "short"]);
  assert.deepEqual(short.components, ["actuator-cpu", "actuator-limiter", "cage run"]);
  assert.equal(short.killsPerComponent, 1);
  assert.equal(short.impostorSeconds, 0);
  const long = parseLabChaosArgs(["--mode", "long", "--json", "/tmp/x.json"]);
  assert.deepEqual(long.components, [...ALL_COMPONENTS]);
  assert.equal(long.killsPerComponent, 20);
  assert.equal(long.impostorSeconds, 30);
  assert.equal(long.malformedSeconds, 60);
  assert.equal(long.jsonPath, "/tmp/x.json");
  assert.deepEqual(parseLabChaosArgs(["--mode", "long", "--only", "pipeline, guardian-cpu", "--kills", "3"]).components, ["pipeline", "guardian-cpu"]);
  assert.throws(() => parseLabChaosArgs(["--mode", "long", "--only", "pipline"]), /--only: unknown component "pipline"/);
  assert.throws(() => parseLabChaosArgs(["--mode", "medium"]), /--mode/);
  assert.throws(() => parseLabChaosArgs([]), /--mode/);
});

void test("componentOf names each agent process from its command line; orphansOf finds those whose parent is gone", () => {
  const d = "/opt/oc/dist";
  assert.equal(componentOf(`/usr/bin/node ${d}/collectors/cpu/main.js --interval-ms 100`), "collector-cpu");
  assert.equal(componentOf(`/usr/bin/node ${d}/collectors/pagecache/main.js --config x`), "collector-pagecache");
  assert.equal(componentOf(`/usr/bin/node ${d}/pipeline/main.js --config x`), "pipeline");
  assert.equal(componentOf(`/usr/bin/node ${d}/actuators/balloon/main.js --config x`), "actuator-balloon");
  assert.equal(componentOf(`/usr/bin/node ${d}/actuators/common/guardianMain.js --name limiter --watchdog-ms 500`), "guardian-limiter");
  assert.equal(componentOf(`/usr/bin/node ${d}/cli/cage.js run --config x`), "cage run");
  assert.equal(componentOf("bpftrace -f json /opt/oc/bpf/cpuTime.bt 100 50 99"), "bpftrace");
  assert.equal(componentOf("/opt/oc/dist/bpf/cpuTime 100 5 40 16384"), "cpuTime");
  assert.equal(componentOf("/bin/sh -c true"), "other");
  const p = (pid: number, ppid: number, name: string): AgentProcess => ({ pid, ppid, state: "S", name, cmdline: "" });
  const procs = [p(10, 5, "cage run"), p(11, 10, "actuator-cpu"), p(12, 11, "guardian-cpu"), p(13, 1, "guardian-limiter"), p(14, 999, "bpftrace")];
  assert.deepEqual(orphansOf(procs, 5).map((o) => o.pid), [13, 14]);
});

void test("docs/chaos.md shows the generated usage line", () => {
  const synopsis = (LAB_CHAOS_USAGE.split("\n")[0] as string).replace(/^usage: /, "");
  const text = readFileSync(fileURLToPath(new URL("../../../../docs/chaos.md", import.meta.url)), "utf8").replace(/\s+/g, " ");
  assert.ok(text.includes(synopsis), `docs/chaos.md does not show \`${synopsis}\``);
});
