/**
 * The one process runtime of every agent process (collectors, pipeline, actuators, the restore
 * guardian): parse the command line (bad → message + usage, exit 2), watch for a dying parent
 * and for SIGTERM/SIGINT BEFORE any start-up work, start, run until asked to stop, stop within
 * a deadline, and turn all of that into the exit code.
 *
 * A stop request that arrives during start-up aborts it (ctx.signal), waits for start() to
 * settle, stops what it returned and exits, so a child whose parent died while bpftrace was
 * still attaching does not live on beside the next `cage run`'s copy.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { createLogger } from "./logger.js";
import { onParentDeath } from "./parentWatch.js";
import { isHelpRequested, isUsageError } from "./usageError.js";

/**
 * Every process gets this long to stop; the supervisor waits this plus
 * SUPERVISOR_KILL_MARGIN_MS before it SIGKILLs. Overridden only where a stop restores state
 * on the machine (STOP_TIMEOUT_MS).
 */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;

/** Time the supervisor adds to a child's stop deadline for the child's own exit after it. */
export const SUPERVISOR_KILL_MARGIN_MS = 2_000;

/** The longest actuator stop: the balloon's. */
const ACTUATOR_BALLOON_STOP_TIMEOUT_MS = 30_000;

/** What a restore guardian may spend on its restore steps after its actuator is gone. */
const GUARDIAN_RESTORE_MS = 10_000;

/** The agent's processes, by the name they log and are supervised under. */
export type AgentProcessName =
  | "collector-cpu"
  | "collector-memory"
  | "collector-pagecache"
  | "collector-xentrace"
  | "pipeline"
  | "actuator-cpu"
  | "actuator-limiter"
  | "actuator-balloon"
  | "guardian";

/**
 * Each process's stop deadline: the one table both the process (runProcess) and `cage run`'s
 * supervisor read, so the supervisor never SIGKILLs a child that is still inside its own.
 */
export const STOP_TIMEOUT_MS: Readonly<Record<AgentProcessName, number>> = {
  "collector-cpu": DEFAULT_STOP_TIMEOUT_MS,
  "collector-memory": DEFAULT_STOP_TIMEOUT_MS,
  "collector-pagecache": DEFAULT_STOP_TIMEOUT_MS,
  "collector-xentrace": DEFAULT_STOP_TIMEOUT_MS,
  pipeline: DEFAULT_STOP_TIMEOUT_MS,
  // Restoring cgroup settings may run hypervisor commands (xl sched-credit, virsh) one cage at a time.
  "actuator-cpu": 15_000,
  "actuator-limiter": 15_000,
  // Deflating each VM's balloon back to its base waits for the guest to give the memory back.
  "actuator-balloon": ACTUATOR_BALLOON_STOP_TIMEOUT_MS,
  // A guardian asked to stop waits for its actuator to go (the longest actuator stop and the
  // supervisor's margin), then may run its restore steps.
  guardian: ACTUATOR_BALLOON_STOP_TIMEOUT_MS + SUPERVISOR_KILL_MARGIN_MS + GUARDIAN_RESTORE_MS,
};

/** Why a process stops. */
export type StopReason = "SIGTERM" | "SIGINT" | "parent died" | "finished";

export interface ProcessContext {
  readonly name: string;
  /** Created before start(); a process with a config applies agent.logLevel (setLogLevel). */
  readonly log: Logger;
  /** Aborted when a stop is requested while start() is still running. */
  readonly signal: AbortSignal;
}

export interface ProcessSpec<Args, Service> {
  name: string;
  /** Printed after a usage error, and to stdout for help. */
  usage: string;
  /**
   * The process's own pure parser. Whatever it throws means this command line cannot run:
   * its message and the usage go to stderr, exit 2.
   */
  parseArgs(argv: string[]): Args;
  /** True when the arguments ask for help: usage to stdout, exit 0, nothing started. */
  wantsHelp?(args: Args): boolean;
  /**
   * Starts the service. Should give up early when ctx.signal is aborted; whatever it returns
   * is stopped. On failure it releases what it acquired and throws (ExitCode to choose the code).
   */
  start(args: Args, ctx: ProcessContext): Promise<Service>;
  stop(service: Service, ctx: ProcessContext, reason: StopReason): Promise<void>;
  /** Resolves when the service ends on its own (the guardian after restoring); the resolved value is the exit code. */
  finished?(service: Service): Promise<number>;
  /** Default DEFAULT_STOP_TIMEOUT_MS; past it the process exits 1 whatever stop() is doing. */
  stopTimeoutMs?: number;
}

/** Thrown by start() to exit with this code after it has reported why itself (e.g. 2 for a bad config). */
export class ExitCode extends Error {
  override readonly name = "ExitCode";
  constructor(
    readonly code: number,
    message = `exit ${code}`,
  ) {
    super(message);
  }
}

/** Once a stop has been asked for, how long a lingering handle (a socket) may keep us alive. */
const LINGER_MS = 1_000;

/**
 * Runs one process to its end and returns the exit code (also set as process.exitCode). Past
 * the stop deadline it exits 1 at once: the supervisor is waiting for our exit.
 */
export async function runProcess<Args, Service>(spec: ProcessSpec<Args, Service>, argv: string[] = process.argv.slice(2)): Promise<number> {
  const stopTimeoutMs = spec.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
  if (!Number.isInteger(stopTimeoutMs) || stopTimeoutMs <= 0) {
    throw new Error(`${spec.name}: stopTimeoutMs must be a positive integer, got ${String(stopTimeoutMs)}`);
  }
  let args: Args;
  try {
    args = spec.parseArgs(argv);
  } catch (err) {
    if (isHelpRequested(err)) {
      process.stdout.write(`${err.usage}\n`);
      return finish(0);
    }
    const usage = isUsageError(err) && err.usage !== undefined ? err.usage : spec.usage;
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${usage}\n`);
    return finish(2);
  }
  if (spec.wantsHelp?.(args) === true) {
    process.stdout.write(`${spec.usage}\n`);
    return finish(0);
  }

  // A service may hold no handle of its own between events: only a stop request ends the process.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const stopRequests = new StopRequests();
  const abort = new AbortController();
  const log = createLogger(spec.name);
  const ctx: ProcessContext = { name: spec.name, log, signal: abort.signal };
  let started = false;
  void stopRequests.first.then((reason) => {
    if (!started) log.info({ reason }, "stop requested during start-up: aborting it");
    abort.abort(new Error(`${spec.name}: stop requested (${reason})`));
  });
  let deadline: NodeJS.Timeout | null = null;
  const armDeadline = (): void => {
    deadline ??= setTimeout(() => {
      log.error({ stopTimeoutMs }, "did not stop within its deadline; exiting");
      process.exit(1);
    }, stopTimeoutMs);
    deadline.unref();
  };
  // From here on a stop request during start-up is also held to the deadline.
  void stopRequests.first.then(armDeadline);

  try {
    let service: Service;
    try {
      service = await spec.start(args, ctx);
      started = true;
    } catch (err) {
      if (err instanceof ExitCode) return finish(err.code, stopRequests);
      if (abort.signal.aborted) {
        log.info({ err }, "start-up abandoned: stop requested");
        return finish(0, stopRequests);
      }
      log.fatal({ err }, "could not start");
      return finish(1, stopRequests);
    }
    const reason = abort.signal.aborted
      ? await stopRequests.first
      : await Promise.race([stopRequests.first, ...(spec.finished ? [spec.finished(service).then((code) => stopRequests.finish(code))] : [])]);
    if (reason === "finished") return finish(stopRequests.finishedCode, stopRequests);
    armDeadline();
    log.info({ reason }, "stopping");
    try {
      await spec.stop(service, ctx, reason);
    } catch (err) {
      log.error({ err }, "stop failed");
      return finish(1, stopRequests);
    }
    log.info("stopped");
    return finish(0, stopRequests);
  } finally {
    clearInterval(keepAlive);
    if (deadline) clearTimeout(deadline);
    log.flush();
  }
}

function finish(code: number, stopRequests?: StopRequests): number {
  process.exitCode = code;
  stopRequests?.dispose();
  // A socket or child handle left open must not keep a stopped process alive.
  setTimeout(() => process.exit(code), LINGER_MS).unref();
  return code;
}

/** SIGTERM, SIGINT and the parent's death, handled once: the first one counts, later ones are ignored. */
class StopRequests {
  readonly first: Promise<StopReason>;
  finishedCode = 0;
  private resolve!: (reason: StopReason) => void;
  private readonly onSignal = (signal: NodeJS.Signals): void => this.resolve(signal === "SIGINT" ? "SIGINT" : "SIGTERM");

  constructor() {
    this.first = new Promise((resolve) => (this.resolve = resolve));
    // Kept installed until exit: a second Ctrl-C (or the supervisor's SIGTERM after the
    // terminal's SIGINT) must not kill us in the middle of restoring.
    process.on("SIGTERM", this.onSignal);
    process.on("SIGINT", this.onSignal);
    onParentDeath(() => this.resolve("parent died"));
  }

  finish(code: number): StopReason {
    this.finishedCode = code;
    this.resolve("finished");
    return "finished";
  }

  dispose(): void {
    process.off("SIGTERM", this.onSignal);
    process.off("SIGINT", this.onSignal);
  }
}

/**
 * Whether the module at `moduleUrl` (its import.meta.url) is the script node was started with,
 * i.e. run as a process rather than imported (by the `cage` CLI or a test).
 */
export function isEntryModule(moduleUrl: string): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}

/** The one entry check: runs `spec` as this process when `moduleUrl` is node's script. */
export function runIfEntry<Args, Service>(moduleUrl: string, spec: ProcessSpec<Args, Service>): void {
  if (!isEntryModule(moduleUrl)) return;
  runProcess(spec).catch((err: unknown) => {
    process.stderr.write(`${spec.name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
