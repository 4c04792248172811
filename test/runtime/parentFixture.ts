/**
 * Stands in for `cage run` in processRuntime.test.ts: starts processFixture.js with an IPC
 * channel and SUPERVISOR_PID_ENV (as the supervisor does), prints the child's PID, then waits to
 * be killed. With PARENT_FIXTURE_CHANNEL=none in its environment: SUPERVISOR_PID_ENV only.
 *   parentFixture.js ARGS-FOR-THE-CHILD...
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { SUPERVISOR_PID_ENV } from "../../runtime/parentWatch.js";

const withChannel = process.env.PARENT_FIXTURE_CHANNEL !== "none";
const child = spawn(process.execPath, [fileURLToPath(new URL("./processFixture.js", import.meta.url)), ...process.argv.slice(2)], {
  stdio: withChannel ? ["ignore", "inherit", "inherit", "ipc"] : ["ignore", "inherit", "inherit"],
  env: { ...process.env, [SUPERVISOR_PID_ENV]: String(process.pid) },
});
process.stdout.write(`${String(child.pid)}\n`);
setInterval(() => undefined, 60_000);
