import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { runCommand } from "../../host/commandRunner.js";
import { pidsMatching } from "../cli/cliHarness.js";

const RUNNER = fileURLToPath(new URL("../../host/commandRunner.js", import.meta.url));

void test("runCommand: a command that hangs is killed at its timeout, and named", async () => {
  const dir = mkdtempSync(join(tmpdir(), "oc-cmd-"));
  try {
    const hang = join(dir, "hangs");
    writeFileSync(hang, "#!/bin/sh\nwhile :; do sleep 0.1; done\n", { mode: 0o755 });
    await assert.rejects(runCommand(hang, ["x"], 300), (e: Error) => e.message === `\`${hang} x\`: killed after 300 ms (SIGTERM)`);
    await sleep(200);
    assert.deepEqual(await pidsMatching(hang), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test("runCommand: a command still running when the process exits is killed with it, not left behind", async () => {
  const dir = mkdtempSync(join(tmpdir(), "oc-cmd-"));
  try {
    const hang = join(dir, "hangs-on");
    writeFileSync(hang, "#!/bin/sh\nwhile :; do sleep 0.1; done\n", { mode: 0o755 });
    // A process that starts the command (10 s timeout) and exits 300 ms later, as an actuator stopping mid-command does.
    const script = `import(${JSON.stringify(RUNNER)}).then((m) => { m.runCommand(${JSON.stringify(hang)}, ["x"], 10000).catch(() => undefined); setTimeout(() => process.exit(0), 300); });`;
    execFileSync(process.execPath, ["-e", script], { stdio: "ignore", timeout: 20_000 });
    await sleep(200);
    assert.deepEqual(await pidsMatching(hang), [], "the hanging command died with the process that ran it");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
