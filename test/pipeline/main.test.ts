// The pipeline process refuses a bad agent.host before it starts anything: exit 2 (restarting
// will not help) and the file, line and field named.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const PIPELINE_JS = fileURLToPath(new URL("../../pipeline/main.js", import.meta.url));

void test("pipeline: a bad agent.host is exit 2 with the file, line and field named; no socket or state is made", () => {
  const dir = mkdtempSync(join(tmpdir(), "oc-pipeline-host-"));
  try {
    const config = join(dir, "cages.yaml");
    const runtimeDir = join(dir, "run");
    const stateDir = join(dir, "state");
    writeFileSync(config, `agent:\n  host: bad_host!\n  runtimeDir: ${runtimeDir}\n  stateDir: ${stateDir}\n  prometheus: false\ncages:\n  - name: a\n    vm: { kind: process, match: [{ comm: x }] }\n    cpu: { cap: 10 }\n`);
    const run = spawnSync(process.execPath, [PIPELINE_JS, "--config", config], { encoding: "utf8", timeout: 30_000 });
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, new RegExp(`${config.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}:2: agent\\.host: must be a host name`));
    assert.equal(existsSync(runtimeDir), false);
    assert.equal(existsSync(stateDir), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
