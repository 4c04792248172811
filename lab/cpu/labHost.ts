/**
 * The host side of `cage lab cpu`: network namespace and veth pair, v1 cgroups, child processes,
 * kernel counters, and a cleanup stack that undoes all of it on exit, failure or signal.
 * Every command runs without a shell (the one `sh -c` is the fixed cgroup-entry script of
 * host/cgroup/cgroupMounts.ts, with every value passed as an argument).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { rmdirWithRetry } from "../../host/cgroup/trackingCgroup.js";
import { readCgroupProcs } from "../../host/cgroup/cgroupProcs.js";
import { LAB_CGROUP_ROOT, pidOfLabNetns, type LabNames } from "./labSetup.js";
import { processExists } from "../../host/proc/processTable.js";

const CGROUP_V1 = "/sys/fs/cgroup";

/** Runs a command (argv, no shell); resolves stdout, rejects with the command and its stderr. */
export function run(file: string, args: readonly string[], timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(" ")}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/** Undo steps, run last-in first-out; one failing step never skips the others. */
export class CleanupStack {
  private readonly steps: { what: string; undo: () => Promise<void> | void }[] = [];

  push(what: string, undo: () => Promise<void> | void): void {
    this.steps.push({ what, undo });
  }

  /** Runs every step once; returns the failures as "what: message". */
  async runAll(): Promise<string[]> {
    const failures: string[] = [];
    while (this.steps.length > 0) {
      const s = this.steps.pop()!;
      try {
        await s.undo();
      } catch (err) {
        failures.push(`${s.what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return failures;
  }
}

/** The VM's network: namespace, veth pair (host end stays on the host for the IDS to watch), /30. */
export async function createNetwork(n: LabNames, cleanup: CleanupStack): Promise<void> {
  await run("ip", ["netns", "add", n.netns]);
  cleanup.push(`netns ${n.netns}`, () => removeNetwork(n.netns, n.vethHost));
  await run("ip", ["link", "add", n.vethHost, "type", "veth", "peer", "name", n.vethVm]);
  await run("ip", ["link", "set", n.vethVm, "netns", n.netns]);
  await run("ip", ["addr", "add", `${n.hostAddress}/30`, "dev", n.vethHost]);
  await run("ip", ["link", "set", n.vethHost, "up"]);
  await run("ip", ["-n", n.netns, "addr", "add", `${n.vmAddress}/30`, "dev", n.vethVm]);
  await run("ip", ["-n", n.netns, "link", "set", n.vethVm, "up"]);
  await run("ip", ["-n", n.netns, "link", "set", "lo", "up"]);
}

async function removeNetwork(netns: string, vethHost: string | null): Promise<void> {
  // Deleting the namespace destroys its veth end and with it the host end; delete both to be sure.
  if (vethHost !== null && existsSync(`/sys/class/net/${vethHost}`)) await run("ip", ["link", "del", vethHost]).catch(() => undefined);
  await run("ip", ["netns", "del", netns]);
}

/** A v1 cgroup directory `/sys/fs/cgroup/<controller>/<rel>`, created now and removed by cleanup. */
export function createV1Cgroup(controller: "cpu" | "cpuacct", rel: string, cleanup: CleanupStack): string {
  const mount = join(CGROUP_V1, controller);
  if (!existsSync(join(mount, "cgroup.procs"))) throw new Error(`lab cpu: no cgroup v1 ${controller} hierarchy at ${mount}`);
  const dir = join(mount, rel);
  mkdirSync(dir, { recursive: true });
  cleanup.push(`cgroup ${dir}`, () => removeV1Cgroup(dir, mount));
  return dir;
}

/** Moves any process still inside to the hierarchy's root, removes the group, then empty parents up to the lab root. */
function removeV1Cgroup(dir: string, mount: string): void {
  if (!existsSync(dir)) return;
  for (const pid of cgroupPids(dir)) {
    try {
      writeFileSync(join(mount, "cgroup.procs"), String(pid));
    } catch {
      // exited meanwhile
    }
  }
  rmdirWithRetry(dir);
  const root = join(mount, LAB_CGROUP_ROOT);
  for (let p = join(dir, ".."); p.startsWith(root); p = join(p, "..")) {
    try {
      rmdirWithRetry(p, 0);
    } catch {
      break; // another lab's group still lives there
    }
  }
}

export function cgroupPids(dir: string): number[] {
  try {
    return readCgroupProcs(dir);
  } catch {
    return [];
  }
}

/** cpuacct.usage (ns, every task of the group and below, ever), or null when unreadable. */
export function readCpuacctUsageNs(dir: string): number | null {
  try {
    const v = Number(readFileSync(join(dir, "cpuacct.usage"), "utf8").trim());
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/**
 * Leftovers of labs that were SIGKILLed (no chance to clean up): namespaces and cgroups named
 * after a lab PID that no longer runs. Never touches a live lab's.
 */
export async function sweepDeadLabs(): Promise<string[]> {
  const removed: string[] = [];
  let list: string;
  try {
    list = await run("ip", ["netns", "list"]);
  } catch {
    return removed;
  }
  for (const line of list.split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const pid = pidOfLabNetns(name);
    if (pid === null || processExists(pid)) continue;
    await removeNetwork(name, `ocl${pid}h`).catch(() => undefined);
    removed.push(`netns ${name}`);
  }
  for (const controller of ["cpu", "cpuacct"]) {
    const mount = join(CGROUP_V1, controller);
    const root = join(mount, LAB_CGROUP_ROOT);
    if (!existsSync(root)) continue;
    for (const d of readdirSync(root)) {
      if (!/^\d+$/.test(d) || processExists(Number(d))) continue;
      const labDir = join(root, d);
      for (const sub of readdirSync(labDir, { withFileTypes: true })) {
        if (!sub.isDirectory()) continue;
        for (const pid of cgroupPids(join(labDir, sub.name))) {
          try {
            process.kill(pid, "SIGCONT");
            process.kill(pid, "SIGKILL");
          } catch {
            /* gone */
          }
        }
        try {
          removeV1Cgroup(join(labDir, sub.name), mount);
        } catch {
          /* busy: left for the next sweep */
        }
      }
      removed.push(`cgroup ${labDir}`);
    }
  }
  return removed;
}

/** A child process the lab started; stop() ends it (and never leaves it stopped). */
export class LabProcess {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stderrTail = "";
  private stdoutText = "";

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    keepStdout: boolean,
  ) {
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => resolve({ code, signal }));
      child.once("error", (err) => {
        this.stderrTail += `\n${err.message}`;
        resolve({ code: null, signal: null });
      });
    });
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      this.stderrTail = (this.stderrTail + d).slice(-4000);
    });
    if (keepStdout) child.stdout?.setEncoding("utf8").on("data", (d: string) => (this.stdoutText += d));
  }

  /** `logTo`: also append the child's stderr to this file (the agent's log, for --agent-log). */
  static start(name: string, argv: readonly string[], opts: { keepStdout?: boolean; env?: NodeJS.ProcessEnv; cwd?: string; logTo?: string } = {}): LabProcess {
    const [cmd, ...args] = argv;
    if (cmd === undefined) throw new Error(`lab cpu: ${name}: empty command`);
    const child = spawn(cmd, args, { stdio: ["ignore", opts.keepStdout ? "pipe" : "ignore", "pipe"], env: opts.env ?? process.env, cwd: opts.cwd });
    if (opts.logTo !== undefined) {
      const log = createWriteStream(opts.logTo, { flags: "a" });
      child.stderr?.pipe(log);
    }
    return new LabProcess(name, child, opts.keepStdout === true);
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`lab cpu: ${this.name} did not start: ${this.stderrTail.trim()}`);
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined;
  }

  get stderr(): string {
    return this.stderrTail;
  }

  get stdout(): string {
    return this.stdoutText;
  }

  /**
   * SIGCONT first (a limiter may have stopped it, and a stopped process acts on no signal but
   * SIGKILL), then SIGTERM, then SIGKILL after `graceMs`.
   */
  async stop(graceMs = 3000): Promise<void> {
    if (!this.running) return;
    const pid = this.pid;
    for (const sig of ["SIGCONT", "SIGTERM"] as const) {
      try {
        process.kill(pid, sig);
      } catch {
        return;
      }
    }
    const timer = setTimeout(() => {
      try {
        process.kill(pid, "SIGCONT");
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Kills (SIGCONT + SIGKILL) every process left in a cgroup: nothing the lab started outlives it. */
export function killCgroupMembers(dir: string): number {
  let n = 0;
  for (const pid of cgroupPids(dir)) {
    try {
      process.kill(pid, "SIGCONT");
      process.kill(pid, "SIGKILL");
      n++;
    } catch {
      /* gone */
    }
  }
  return n;
}

/** Resolves once `http://address:port/` answers 200 (the VM's web server is up). */
export async function waitForHttp(address: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const status = await new Promise<number | string>((resolve) => {
      const req = request({ host: address, port, path: "/", timeout: 1000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (err) => resolve(err.message));
      req.end();
    });
    if (status === 200) return;
    last = String(status);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`lab cpu: the VM's nginx at http://${address}:${port}/ did not answer within ${timeoutMs} ms (last: ${last})`);
}

/** Writes one control file of a cgroup, naming it in the error. */
export function writeCgroupFile(dir: string, file: string, value: string): void {
  try {
    writeFileSync(join(dir, file), value);
  } catch (err) {
    throw new Error(`lab cpu: cannot write ${JSON.stringify(value)} to ${join(dir, file)}: ${(err as Error).message}`, { cause: err });
  }
}
