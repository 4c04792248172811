/** The one reader of a cgroup's member list (cgroup.procs, v1 and v2 alike). */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The PIDs of a cgroup.procs text, one per line, in the kernel's order. Throws naming a bad line. */
export function parseCgroupProcs(text: string, file = "cgroup.procs"): number[] {
  const pids: number[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const pid = Number(line);
    if (!/^[0-9]+$/.test(line) || pid <= 0) throw new Error(`${file}: not a PID: ${JSON.stringify(line)}`);
    pids.push(pid);
  }
  return pids;
}

/** The processes in the cgroup at `dir` now; throws (with the file named) when it cannot be read. */
export function readCgroupProcs(dir: string): number[] {
  const file = join(dir, "cgroup.procs");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`cannot read ${file}: ${e.code === "ENOENT" ? "no such file" : e.message}`, { cause: err });
  }
  return parseCgroupProcs(text, file);
}

/**
 * Moves `pid` into the group whose cgroup.procs is `procsFile`. EPERM as root means the kernel's
 * own check refused it: with the cpuset controller on, the mover needs every capability the
 * process holds or CAP_SYS_NICE (docs/service.md). The error keeps its code.
 */
export function moveIntoCgroup(procsFile: string, pid: number): void {
  try {
    writeFileSync(procsFile, String(pid));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code !== "EPERM") throw err;
    const refused: NodeJS.ErrnoException = new Error(`${e.message} (${procsFile}: the kernel refused to move PID ${pid}; a process holding capabilities the agent lacks can be moved between cpuset groups only with CAP_SYS_NICE; or name its unit in units.*)`, { cause: err });
    refused.code = e.code;
    throw refused;
  }
}
