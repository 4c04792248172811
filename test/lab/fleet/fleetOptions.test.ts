import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parseLabFleetArgs } from "../../../lab/fleet/fleetOptions.js";
import { FLEET_RULES_SOURCE, shortenRuleDurations } from "../../../lab/fleet/fleetRun.js";
import { UsageError } from "../../../runtime/usageError.js";

void test("cage lab fleet options: defaults, and each bound named", () => {
  assert.deepEqual(parseLabFleetArgs(["--hosts", "20", "--cages", "50"]), { hosts: 20, cagesPerHost: 50, durationSeconds: 60, windowMs: 1000, alertForSeconds: 10, influxOutageSeconds: 10, jsonPath: null });
  assert.deepEqual(parseLabFleetArgs(["--hosts", "3", "--cages", "5", "--duration", "30", "--window-ms", "100", "--alert-for", "5", "--influx-outage", "0", "--json", "f.json"]), {
    hosts: 3,
    cagesPerHost: 5,
    durationSeconds: 30,
    windowMs: 100,
    alertForSeconds: 5,
    influxOutageSeconds: 0,
    jsonPath: "f.json",
  });
  assert.throws(() => parseLabFleetArgs(["--cages", "5"]), (e: unknown) => e instanceof UsageError && /--hosts/.test(e.message));
  assert.throws(() => parseLabFleetArgs(["--hosts", "0", "--cages", "5"]), (e: unknown) => e instanceof UsageError && /--hosts/.test(e.message));
  assert.throws(() => parseLabFleetArgs(["--hosts", "2", "--cages", "5", "--duration", "5"]), (e: unknown) => e instanceof UsageError && /--duration/.test(e.message));
});

void test("the lab's copy of the real rules differs only in every `for:`", () => {
  const real = readFileSync(FLEET_RULES_SOURCE, "utf8");
  const short = shortenRuleDurations(real, 7);
  const fors = short.match(/^\s+for:.*$/gm) ?? [];
  assert.ok(fors.length >= 5, `${fors.length} alerts`);
  assert.ok(fors.every((l) => l.trim() === "for: 7s"), fors.join("\n"));
  const withoutFor = (s: string): string => s.replace(/^\s+for:.*$/gm, "");
  assert.equal(withoutFor(short), withoutFor(real));
  assert.throws(() => shortenRuleDurations("groups: []\n", 7), /no `for:` found/);
});
