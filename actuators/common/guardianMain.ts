/**
 * The restore guardian: a tiny process an actuator starts (in its own session, so signals for
 * the actuator's process group do not reach it) before it stops a process or changes a setting.
 * It remembers what to undo (actuators/common/guardianProtocol.ts) and does it the moment its
 * stdin closes, which the kernel does when the actuator dies for any reason, SIGKILL included:
 * SIGCONT to every registered PID first (the 1 s promise), then the cgroup writes and commands
 * that restore the original settings. Without heartbeats for --watchdog-ms it SIGCONTs the PIDs
 * too (the actuator is hung or stopped) but keeps running.
 *
 * usage: guardianMain --name NAME [--watchdog-ms N]
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { parseProcStat } from "../../host/proc/processTable.js";
import { GuardianState, parseGuardianLine } from "./guardianProtocol.js";

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const name = flag("--name") ?? "actuator";
const watchdogMs = Number(flag("--watchdog-ms") ?? "500");
if (!Number.isInteger(watchdogMs) || watchdogMs < 50) {
  process.stderr.write(`guardian: --watchdog-ms must be an integer >= 50, got ${JSON.stringify(flag("--watchdog-ms"))}\n`);
  process.exit(2);
}

const state = new GuardianState();
let lastMessageAt = Date.now();
let triggered = false;

function log(level: "info" | "warn" | "error", msg: string, extra: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ level: level === "info" ? 30 : level === "warn" ? 40 : 50, time: Date.now(), name: `guardian-${name}`, pid: process.pid, msg, ...extra })}\n`);
}

/** SIGCONT each registered PID that is still the same process (pid + start time). */
function resumeAll(): number {
  let resumed = 0;
  for (const [pid, start] of state.pids) {
    try {
      if (parseProcStat(readFileSync(`/proc/${pid}/stat`, "utf8")).startTime !== start) continue; // reused PID
      process.kill(pid, "SIGCONT");
      resumed++;
    } catch {
      // exited: nothing to resume
    }
  }
  return resumed;
}

function trigger(why: string): void {
  if (triggered) return;
  triggered = true;
  if (state.disarmed) process.exit(0);
  const resumed = resumeAll();
  const failures: string[] = [];
  for (const [path, value] of state.writes) {
    try {
      writeFileSync(path, value);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT") failures.push(`${path}: ${(err as Error).message}`);
    }
  }
  for (const [key, cmd] of state.execs) {
    try {
      execFileSync(cmd[0] as string, cmd.slice(1), { timeout: 5000, stdio: ["ignore", "ignore", "pipe"] });
    } catch (err) {
      failures.push(`${key} (${cmd.join(" ")}): ${(err as Error).message.split("\n")[0] ?? ""}`);
    }
  }
  log(failures.length ? "error" : "warn", `${why}: restored what the actuator left`, { resumedPids: resumed, writes: state.writes.size, commands: state.execs.size, failures });
  process.exit(failures.length ? 1 : 0);
}

for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(sig, () => trigger(`guardian got ${sig}`));
process.stdout.on("error", () => undefined); // the actuator died: its end of our stdout is gone

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  lastMessageAt = Date.now();
  let id: number | null = null;
  try {
    const parsed = parseGuardianLine(line);
    id = parsed.id;
    state.apply(parsed.message);
    if (id !== null) process.stdout.write(`${JSON.stringify({ id, ok: true })}\n`);
  } catch (err) {
    log("warn", "bad message from the actuator, ignored", { err: (err as Error).message });
    if (id !== null) process.stdout.write(`${JSON.stringify({ id, ok: false, error: (err as Error).message })}\n`);
  }
});
lines.on("close", () => trigger("actuator gone (stdin closed)"));

setInterval(() => {
  if (triggered || state.pids.size === 0) return;
  if (Date.now() - lastMessageAt > watchdogMs) {
    const n = resumeAll();
    if (n > 0) log("warn", `no heartbeat for ${Date.now() - lastMessageAt} ms: resumed the registered processes`, { resumedPids: n });
    lastMessageAt = Date.now(); // once per silence period, not every tick
  }
}, Math.max(25, Math.floor(watchdogMs / 4)));

process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid })}\n`);
