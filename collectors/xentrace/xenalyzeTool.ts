// Locating and running Debian's xenalyze for cross-checks (tests and bench). Does I/O.

import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parseXenalyzeSummary, type XenalyzeSummary } from "./xenalyzeSummary.js";

const run = promisify(execFile);

/** Runs scripts/fetch-xenalyze.sh under repoRoot (downloads into .cache/ on first use); returns the binary's path. */
export async function fetchXenalyze(repoRoot: URL): Promise<string> {
  const script = fileURLToPath(new URL("scripts/fetch-xenalyze.sh", repoRoot));
  const { stdout } = await run("bash", [script], { timeout: 120_000 });
  const path = stdout.trim().split("\n").pop();
  if (path === undefined || path === "") throw new Error(`${script} printed no path`);
  return path;
}

/** `xenalyze --cpu-hz=HZ --summary FILE`, parsed. cpuHz is passed through as text (e.g. "2596M"). */
export async function runXenalyzeSummary(xenalyze: string, file: string, cpuHz: string): Promise<XenalyzeSummary> {
  const { stdout } = await run(xenalyze, [`--cpu-hz=${cpuHz}`, "--summary", file], {
    maxBuffer: 64 * 1024 * 1024,
    timeout: 120_000,
  });
  return parseXenalyzeSummary(stdout);
}
