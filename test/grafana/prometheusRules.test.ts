/**
 * The shipped Prometheus rules with Debian's promtool: `check rules` (syntax, types) and
 * `test rules` (grafana/prometheus/offloadcage-rules.test.yml: a cage over its cap for longer
 * than `for` fires; under its cap, or over it for a shorter time, does not; each other alert
 * fires and does not fire). A rule file with a broken rule must fail the check.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { prometheusRulesFile, prometheusRulesTestFile } from "./grafanaFiles.js";

const run = promisify(execFile);

async function promtool(args: string[], cwd?: string): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run("promtool", args, { cwd, timeout: 60_000 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, out: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

void test("promtool check rules: the shipped rules are valid", async () => {
  const { code, out } = await promtool(["check", "rules", prometheusRulesFile]);
  assert.equal(code, 0, out);
  assert.match(out, /SUCCESS: 10 rules found/);
});

void test("promtool test rules: over cap longer than the threshold fires, shorter or under does not; every alert tested", async () => {
  const { code, out } = await promtool(["test", "rules", prometheusRulesTestFile], dirname(prometheusRulesTestFile));
  assert.equal(code, 0, out);
  assert.match(out, /SUCCESS/);
  const tests = readFileSync(prometheusRulesTestFile, "utf8");
  for (const alert of ["CageOverCap", "IdsOverCap", "BalloonStuck", "CollectorDown", "CageDataStale"]) {
    assert.match(tests, new RegExp(`alertname: ${alert}\\n\\s+exp_alerts: \\[\\]`), `${alert}: a case where it does not fire`);
    assert.match(tests, new RegExp(`alertname: ${alert}\\n\\s+exp_alerts:\\n`), `${alert}: a case where it fires`);
  }
});

void test("the checks can fail: a typo in a rule, a unit test expecting the wrong alert, a rule merging hosts", async () => {
  const dir = mkdtempSync(join(tmpdir(), "offloadcage-promtool-"));
  try {
    const rules = readFileSync(prometheusRulesFile, "utf8");
    writeFileSync(join(dir, "offloadcage-rules.yml"), rules.replace("cage:cpu_over_cap:cores > 0", "cage:cpu_over_cap:cores >> 0"));
    const check = await promtool(["check", "rules", join(dir, "offloadcage-rules.yml")]);
    assert.notEqual(check.code, 0);
    assert.match(check.out, /parse error|unexpected/);

    // The real rules, but a test that wants CageOverCap for the cage that stays under its cap.
    writeFileSync(join(dir, "offloadcage-rules.yml"), rules);
    writeFileSync(join(dir, "t.yml"), readFileSync(prometheusRulesTestFile, "utf8").replace(/cage: hot\n(\s+)exp_annotations:\n(\s+)summary: "Cage hot/, "cage: cool\n$1exp_annotations:\n$2summary: \"Cage hot"));
    const unit = await promtool(["test", "rules", "t.yml"], dir);
    assert.notEqual(unit.code, 0);
    assert.match(unit.out, /FAILED/);

    // A rule that aggregates by cage alone merges the hosts: the two-host test must catch it.
    const merging = rules.replace(
      "sum without (role) (rate(cage_cpu_seconds_total[1m])) - cage_cpu_cap_cores",
      "sum by (cage) (rate(cage_cpu_seconds_total[1m])) - on (cage) cage_cpu_cap_cores",
    );
    assert.notEqual(merging, rules);
    writeFileSync(join(dir, "offloadcage-rules.yml"), merging);
    writeFileSync(join(dir, "t.yml"), readFileSync(prometheusRulesTestFile, "utf8"));
    const merged = await promtool(["test", "rules", "t.yml"], dir);
    assert.notEqual(merged.code, 0);
    assert.match(merged.out, /found duplicate series for the match group \{cage="web"\}/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
