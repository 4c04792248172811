/**
 * The restore guardian: a tiny process an actuator starts (in its own session, so signals for
 * the actuator's process group do not reach it) before it stops a process or changes a setting.
 * It remembers what to undo (actuators/common/guardianProtocol.ts) and does it the moment its
 * stdin closes, which the kernel does when the actuator dies for any reason, SIGKILL included:
 * SIGCONT to every registered PID first (the 1 s promise), then the cgroup writes, commands and
 * QMP requests that put the cage's fail-safe in place (or, after an orderly stop began, the
 * original settings). A stop request (SIGTERM, SIGINT, SIGHUP) while the actuator is alive only
 * makes it wait for the actuator to go: restoring behind a live actuator's back would leave the
 * actuator believing its settings are in place.
 * Without heartbeats for --watchdog-ms it SIGCONTs the PIDs too (the actuator is hung or
 * stopped) but keeps running.
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Logger } from "pino";
import { parseProcStat } from "../../host/proc/processTable.js";
import { runIfEntry, STOP_TIMEOUT_MS, type ProcessSpec } from "../../runtime/processRuntime.js";
import { UsageError } from "../../runtime/usageError.js";
import { GuardianState, parseGuardianLine } from "./guardianProtocol.js";
import { carryOutRestore, RESTORE_STEP_TIMEOUT_MS } from "./restoreSteps.js";

export const GUARDIAN_USAGE = "usage: guardianMain --name NAME [--watchdog-ms N]";

export interface GuardianArgs {
  /** The actuator it guards, for its log lines. */
  name: string;
  watchdogMs: number;
}

export function parseGuardianArgs(argv: readonly string[]): GuardianArgs {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    if (flag !== "--name" && flag !== "--watchdog-ms") throw new UsageError(`guardian: unknown argument ${JSON.stringify(flag)}`);
    const value = argv[i + 1];
    if (value === undefined) throw new UsageError(`guardian: ${flag} needs a value`);
    values.set(flag, value);
  }
  const raw = values.get("--watchdog-ms") ?? "500";
  const watchdogMs = Number(raw);
  if (!/^[0-9]+$/.test(raw) || watchdogMs < 50) throw new UsageError(`guardian: --watchdog-ms must be an integer >= 50, got ${JSON.stringify(raw)}`);
  return { name: values.get("--name") ?? "actuator", watchdogMs };
}

class Guardian {
  private readonly state = new GuardianState();
  private lastMessageAt = Date.now();
  private triggered = false;
  private watchdog: NodeJS.Timeout | null = null;
  private resolveDone!: (code: number) => void;
  /** Resolves with the exit code once the guardian has acted (or stood down). */
  readonly done = new Promise<number>((resolve) => (this.resolveDone = resolve));

  constructor(
    private readonly args: GuardianArgs,
    private readonly log: Logger,
  ) {}

  start(): void {
    process.on("SIGHUP", () => void this.stopRequested("SIGHUP"));
    process.stdout.on("error", () => undefined); // the actuator died: its end of our stdout is gone
    const lines = createInterface({ input: process.stdin });
    lines.on("line", (line) => this.onLine(line));
    lines.on("close", () => void this.trigger("actuator gone (stdin closed)"));
    this.watchdog = setInterval(() => this.checkHeartbeat(), Math.max(25, Math.floor(this.args.watchdogMs / 4)));
    process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid })}\n`);
  }

  /** A stop request: acts only once the actuator is gone (its stdin closes); resolves with the exit code. */
  stopRequested(reason: string): Promise<number> {
    if (!this.triggered) this.log.info({ reason }, "stop requested: waiting for the actuator to go before restoring");
    return this.done;
  }

  private onLine(line: string): void {
    this.lastMessageAt = Date.now();
    let id: number | null = null;
    try {
      const parsed = parseGuardianLine(line);
      id = parsed.id;
      this.state.apply(parsed.message);
      if (id !== null) process.stdout.write(`${JSON.stringify({ id, ok: true })}\n`);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "bad message from the actuator, ignored");
      if (id !== null) process.stdout.write(`${JSON.stringify({ id, ok: false, error: (err as Error).message })}\n`);
    }
  }

  private checkHeartbeat(): void {
    if (this.triggered || this.state.pids.size === 0) return;
    if (Date.now() - this.lastMessageAt > this.args.watchdogMs) {
      const n = this.resumeAll();
      if (n > 0) this.log.warn({ resumedPids: n }, `no heartbeat for ${Date.now() - this.lastMessageAt} ms: resumed the registered processes`);
      this.lastMessageAt = Date.now(); // once per silence period, not every tick
    }
  }

  /** SIGCONT each registered PID that is still the same process (pid + start time). */
  private resumeAll(): number {
    let resumed = 0;
    for (const [pid, start] of this.state.pids) {
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

  /** Puts the fail-safe (or after `orderly` the originals) in place, once; resolves with the exit code (1 when a step failed). */
  async trigger(why: string): Promise<number> {
    if (this.triggered) return this.done;
    this.triggered = true;
    if (this.watchdog) clearInterval(this.watchdog);
    process.stdin.destroy();
    if (this.state.disarmed) return this.settle(0);
    const resumed = this.resumeAll();
    const plan = this.state.plan();
    const failures = await carryOutRestore(plan, RESTORE_STEP_TIMEOUT_MS);
    const fields = { restored: this.state.orderly ? "original" : "failsafe", resumedPids: resumed, writes: plan.writes.size, commands: plan.execs.size, qmp: plan.qmps.size, failures };
    const what = this.state.orderly ? "restored the original settings" : "put the fail-safe in place";
    if (failures.length > 0) this.log.error(fields, `${why}: ${what}`);
    else this.log.warn(fields, `${why}: ${what}`);
    return this.settle(failures.length > 0 ? 1 : 0);
  }

  private settle(code: number): number {
    this.resolveDone(code);
    return code;
  }
}

export const guardianProcess: ProcessSpec<GuardianArgs, Guardian> = {
  name: "guardian",
  usage: GUARDIAN_USAGE,
  parseArgs: parseGuardianArgs,
  stopTimeoutMs: STOP_TIMEOUT_MS.guardian,
  start(args, { log }) {
    const guardian = new Guardian(args, log.child({ actuator: args.name }));
    guardian.start();
    return Promise.resolve(guardian);
  },
  finished: (guardian) => guardian.done,
  async stop(guardian, _ctx, reason) {
    const code = await guardian.stopRequested(reason);
    if (code !== 0) throw new Error("restoring failed (see the line above)");
  },
};

runIfEntry(import.meta.url, guardianProcess);
