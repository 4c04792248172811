/**
 * Fixed-seed fuzzing of every decoder that reads outside input. `npm test` runs FUZZ_CASES cases
 * per target (default 1,000); bench/fuzz.ts runs the same with 10,000 and prints the reports.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fuzzBpftraceCpuLines, fuzzBpftracePageCacheLines } from "./bpftraceFuzz.js";
import { FUZZ_TARGETS, type FuzzReport } from "./fuzzTargets.js";
import { fuzzQmpReplies } from "./qmpFuzz.js";

const CASES = Number(process.env.FUZZ_CASES ?? 1000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261204);
if (!Number.isInteger(CASES) || CASES < 1) throw new Error(`FUZZ_CASES: must be a positive integer, got ${process.env.FUZZ_CASES}`);
if (!Number.isInteger(SEED)) throw new Error(`FUZZ_SEED: must be an integer, got ${process.env.FUZZ_SEED}`);

interface Target {
  name: string;
  run: (cases: number, seed: number) => FuzzReport | Promise<FuzzReport>;
}

const ALL_TARGETS: readonly Target[] = [
  ...FUZZ_TARGETS,
  { name: "bpftraceCpuLines", run: fuzzBpftraceCpuLines },
  { name: "bpftracePageCacheLines", run: fuzzBpftracePageCacheLines },
  { name: "qmpReplies", run: fuzzQmpReplies },
];

for (const target of ALL_TARGETS) {
  void test(`fuzz ${target.name}: ${CASES} mutated inputs (seed ${SEED}), no crash, every rejection counted`, async (t) => {
    const report = await target.run(CASES, SEED);
    t.diagnostic(`${report.target}: ${report.cases} cases, ${report.crashes} crashes, ${report.accepted} accepted, ${report.rejected} rejected by ${Object.keys(report.rejections).length} counters`);
    // For bench/fuzz.ts: base64 survives the TAP reporter's escaping of '#' and '\\'.
    t.diagnostic(`FUZZ ${Buffer.from(JSON.stringify(report)).toString("base64")}`);
    assert.deepEqual(report.crashExamples, [], "crashes");
    assert.equal(report.crashes, 0);
    assert.equal(report.cases, CASES);
    assert.equal(report.accepted + report.rejected, report.cases, "every case accepted or rejected-and-counted");
    assert.ok(report.rejected > report.cases / 10, `the mutations must reach the checks: ${report.rejected} rejected`);
    assert.ok(report.accepted > 0, "some inputs stay valid, so acceptance is exercised too");
  });
}
