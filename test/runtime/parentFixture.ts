/**
 * Stands in for `cage run` in processRuntime.test.ts: starts processFixture.js with an IPC
 * channel (as the supervisor does), prints the child's PID, then waits to be killed.
 *   parentFixture.js ARGS-FOR-THE-CHILD...
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const child = spawn(process.execPath, [fileURLToPath(new URL("./processFixture.js", import.meta.url)), ...process.argv.slice(2)], {
  stdio: ["ignore", "inherit", "inherit", "ipc"],
});
process.stdout.write(`${String(child.pid)}\n`);
setInterval(() => undefined, 60_000);
