import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Writable } from "node:stream";
import { cpuHzFromXlInfo, parseCpuHz, runXentraceSummarize } from "../../../collectors/xentrace/summarizeCommand.js";
import { fixturePath } from "./fixtures.js";

function sink(): { stream: Writable; text: () => string } {
  let text = "";
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, text: () => text };
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = sink();
  const err = sink();
  const code = await runXentraceSummarize(args, out.stream, err.stream);
  return { code, out: out.text(), err: err.text() };
}

void test("parseCpuHz accepts plain Hz and K/M/G suffixes", () => {
  assert.equal(parseCpuHz("2596149000"), 2596149000);
  assert.equal(parseCpuHz("2596M"), 2596000000);
  assert.equal(parseCpuHz("2.596G"), 2596000000);
  assert.equal(parseCpuHz("2596.149MHz"), 2596149000);
  assert.equal(parseCpuHz("2400000k"), 2400000000);
  assert.throws(() => parseCpuHz("fast"), /--cpu-hz: "fast" is not a rate/);
  assert.throws(() => parseCpuHz("2596"), /outside 1 MHz\.\.100 GHz \(did you mean 2596M\?\)/);
  assert.throws(() => parseCpuHz("-5M"), /not a rate/);
});

void test("cpuHzFromXlInfo reads cpu_mhz from real xl info output", () => {
  const log = readFileSync(new URL("../../../../../shared/fixtures/xen-commands/dom0-session-1.log", import.meta.url), "utf8");
  assert.equal(cpuHzFromXlInfo(log), 2596149000);
  assert.throws(() => cpuHzFromXlInfo("host : x\n"), /xl info output has no 'cpu_mhz : N' line/);
});

void test("bad arguments: exit code 2 and a message naming the argument", async () => {
  const cases: [string[], RegExp][] = [
    [["summarize"], /^cage xentrace summarize: FILE is missing\n/],
    [["summarize", "x.bin"], /--cpu-hz HZ is required/],
    [["summarize", "x.bin", "--cpu-hz"], /--cpu-hz needs a value/],
    [["summarize", "x.bin", "--cpu-hz", "abc"], /--cpu-hz: "abc" is not a rate/],
    [["summarize", "x.bin", "--cpu-hz=2G", "--frobnicate"], /unknown option "--frobnicate"/],
    [["summarize", "a.bin", "b.bin", "--cpu-hz=2G"], /unexpected argument "b\.bin"/],
  ];
  for (const [args, message] of cases) {
    const r = await run(args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.err, message);
    assert.match(r.err, /usage: cage xentrace summarize/);
    assert.equal(r.out, "");
  }
  const help = await run(["summarize", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /^usage: cage xentrace summarize FILE /);
  assert.equal(help.err, "");
});

void test("a missing file: exit code 1 with the reason", async () => {
  const r = await run(["summarize", "/nonexistent/trace.bin", "--cpu-hz", "2596M"]);
  assert.equal(r.code, 1);
  assert.match(r.err, /ENOENT|no such file/);
});

void test("--json prints one object with domains, vCPUs and counters", async () => {
  const r = await run([fixturePath("trace-sched-2dom.bin"), "--cpu-hz=2596M", "--json"]);
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trim().split("\n");
  assert.equal(lines.length, 1);
  const s = JSON.parse(lines[0] as string) as {
    domains: { domain: number; runSeconds: number; vcpus: { vcpu: number; runSeconds: number }[] }[];
    records: number;
    lost: number;
    unknown: number;
    corrupt: number;
    traceSeconds: number;
  };
  assert.deepEqual(s.domains.map((d) => d.domain), [0, 1]);
  assert.deepEqual(s.domains[0]?.vcpus.map((v) => v.vcpu), [0, 1]);
  assert.ok(Math.abs((s.domains[0]?.runSeconds ?? 0) - 3.92) < 0.01);
  assert.equal(s.records, 1559);
  assert.equal(s.lost, 0);
  assert.equal(s.corrupt, 0);
  assert.ok(Math.abs(s.traceSeconds - 2.99) < 0.01);
});

void test("the human table lists domains and vCPUs; --xl-info supplies the rate", async () => {
  const xlInfo = fixturePath("../xen-commands/dom0-session-1.log");
  const r = await run(["summarize", fixturePath("trace-sched.bin"), "--xl-info", xlInfo]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /at 2596\.149 MHz/);
  assert.match(r.out, /^0 +all +5\.98/m);
  assert.match(r.out, /^idle +all /m);
  assert.match(r.out, /lost records: 0/);
});
