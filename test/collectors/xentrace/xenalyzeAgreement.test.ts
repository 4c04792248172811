// Per-domain run time from `cage xentrace summarize` agrees with Debian's xenalyze on every fixture.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { runXentraceSummarize, type TraceSummary } from "../../../collectors/xentrace/summarizeCommand.js";
import { fetchXenalyze, runXenalyzeSummary } from "../../../collectors/xentrace/xenalyzeTool.js";
import { FIXTURE_CPU_HZ, FIXTURE_CPU_HZ_ARG, fixtureNames, fixturePath, repoRoot } from "./fixtures.js";

const TOLERANCE = 0.005;

async function summarizeJson(file: string, cpuHz: string): Promise<TraceSummary> {
  let text = "";
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  const code = await runXentraceSummarize(["summarize", file, "--cpu-hz", cpuHz, "--json"], out);
  assert.equal(code, 0);
  return JSON.parse(text) as TraceSummary;
}

function close(ours: number, theirs: number): boolean {
  if (theirs === 0) return ours === 0;
  return Math.abs(ours - theirs) / theirs <= TOLERANCE;
}

void test("xenalyze agreement: per-domain and per-vCPU run time within 0.5% on every fixture", async (t) => {
  const xenalyze = await fetchXenalyze(repoRoot);
  const names = fixtureNames();
  assert.ok(names.length >= 8, `expected the 8 fixtures, found ${names.join(", ")}`);
  for (const name of names) {
    await t.test(name, async () => {
      const file = fixturePath(name);
      const [theirs, ours] = await Promise.all([
        runXenalyzeSummary(xenalyze, file, FIXTURE_CPU_HZ_ARG),
        summarizeJson(file, FIXTURE_CPU_HZ_ARG),
      ]);
      assert.equal(ours.cpuHz, FIXTURE_CPU_HZ);
      assert.deepEqual(
        ours.domains.map((d) => d.domain),
        theirs.domains.map((d) => d.domain),
        "same domains as xenalyze",
      );
      for (const d of theirs.domains) {
        const mine = ours.domains.find((x) => x.domain === d.domain);
        assert.ok(mine !== undefined);
        const theirSeconds = d.runCycles / FIXTURE_CPU_HZ;
        assert.ok(close(mine.runSeconds, theirSeconds), `d${d.domain}: ours ${mine.runSeconds} s, xenalyze ${theirSeconds} s`);
        for (const v of d.vcpus) {
          const mv = mine.vcpus.find((x) => x.vcpu === v.vcpu);
          const theirV = v.runCycles / FIXTURE_CPU_HZ;
          assert.ok(mv !== undefined && close(mv.runSeconds, theirV), `d${d.domain}v${v.vcpu}: ours ${mv?.runSeconds} s, xenalyze ${theirV} s`);
        }
      }
      if (theirs.totalSeconds !== undefined) assert.ok(Math.abs(ours.traceSeconds - theirs.totalSeconds) < 0.01);
      assert.equal(ours.corrupt, 0);
      assert.equal(ours.truncatedBytes, 0);
    });
  }
});

void test("xenalyze agreement: the exact rate 2596149000 gives the same agreement", async () => {
  const xenalyze = await fetchXenalyze(repoRoot);
  const file = fixturePath("trace-sched-2dom-cap20.bin");
  const theirs = await runXenalyzeSummary(xenalyze, file, "2596149000");
  const ours = await summarizeJson(file, "2596149000");
  for (const d of theirs.domains) {
    const mine = ours.domains.find((x) => x.domain === d.domain);
    // xenalyze parses --cpu-hz with strtof, but cycles do not depend on the rate: compare cycles.
    assert.ok(mine !== undefined && close(mine.runSeconds * 2596149000, d.runCycles), `d${d.domain}`);
  }
});
