/**
 * The docs show each command's synopsis as the code generates it (runtime/commandLine.ts), so
 * they cannot drift apart: a doc's text, whitespace collapsed, must contain the usage's first line.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { actuatorUsage } from "../../actuators/common/actuatorArgs.js";
import { CPU_COLLECTOR_USAGE } from "../../collectors/cpu/cliOptions.js";
import { XENTRACE_COLLECTOR_USAGE } from "../../collectors/xentrace/collectorArgs.js";
import { SUMMARIZE_USAGE } from "../../collectors/xentrace/summarizeCommand.js";
import { INSTALL_USAGE, UNINSTALL_USAGE } from "../../cli/installCommand.js";
import { LAB_CPU_USAGE } from "../../lab/cpu/labCpuOptions.js";
import { MEMORY_LAB_USAGE } from "../../lab/memory/memoryLabOptions.js";
import { LAB_FLEET_USAGE } from "../../lab/fleet/fleetOptions.js";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

const SHOWN: [string, string][] = [
  ["docs/lab-cpu.md", LAB_CPU_USAGE],
  ["docs/lab-memory.md", MEMORY_LAB_USAGE],
  ["docs/lab-fleet.md", LAB_FLEET_USAGE],
  ["docs/xentrace.md", SUMMARIZE_USAGE],
  ["docs/xentrace.md", XENTRACE_COLLECTOR_USAGE],
  ["docs/balloon.md", actuatorUsage("balloon")],
  ["docs/cpu-actuators.md", actuatorUsage("cpu")],
  ["docs/cpu-actuators.md", actuatorUsage("limiter")],
  ["docs/cpu-collector.md", CPU_COLLECTOR_USAGE],
  ["docs/service.md", INSTALL_USAGE],
  ["docs/service.md", UNINSTALL_USAGE],
];

void test("each doc's synopsis is the generated usage line", () => {
  for (const [doc, usage] of SHOWN) {
    const synopsis = (usage.split("\n")[0] as string).replace(/^usage: /, "");
    const text = readFileSync(`${repoRoot}${doc}`, "utf8").replace(/\s+/g, " ");
    assert.ok(text.includes(synopsis), `${doc} does not show \`${synopsis}\``);
  }
});
