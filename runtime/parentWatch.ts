/**
 * Supervised children must not outlive `cage run`, even when it is SIGKILLed (no chance to
 * stop them). Two signals, either one enough:
 * - the IPC channel the supervisor gives each child: the kernel closes it when the parent dies;
 * - the supervisor's PID, passed in SUPERVISOR_PID_ENV: once our parent is no longer that
 *   process we were re-parented. This one also covers a parent that died while node was still
 *   starting, before the channel was set up (node then starts us with no channel at all).
 */
import { readFileSync } from "node:fs";
import { parseProcStat } from "../host/proc/processTable.js";

/** Set by the supervisor for each child: its own PID, the parent the child must not outlive. */
export const SUPERVISOR_PID_ENV = "OFFLOADCAGE_SUPERVISOR_PID";

/** How often the parent PID is read back; bounds how long a child outlives a parent that left no channel. */
export const PARENT_POLL_MS = 200;

/** Our parent's PID now (process.ppid is read once at start-up and never updated). */
export function currentParentPid(): number {
  return parseProcStat(readFileSync("/proc/self/stat", "utf8")).ppid;
}

/**
 * The supervisor PID handed to this process, removed from the environment so that processes we
 * start (bpftrace, the restore guardian) do not take our parent for theirs. Null when absent;
 * throws on a value that is not a PID.
 */
export function takeSupervisorPid(env: NodeJS.ProcessEnv = process.env): number | null {
  const raw = env[SUPERVISOR_PID_ENV];
  if (raw === undefined) return null;
  delete env[SUPERVISOR_PID_ENV];
  if (!/^[1-9][0-9]{0,9}$/.test(raw)) throw new Error(`${SUPERVISOR_PID_ENV} must be a PID, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

interface ParentWatch {
  /** Null until the process runtime takes over: a death before that exits at once. */
  handler: (() => void) | null;
  fired: boolean;
}

let watch: ParentWatch | null | undefined;

/**
 * Starts watching the parent that started us, once per process; false when we were started
 * neither with an IPC channel nor with SUPERVISOR_PID_ENV. Until onParentDeath() hands the death
 * to a stop path, a dead parent makes us exit at once: nothing has been started yet, and module
 * loading alone takes seconds on a loaded host, long enough to outlive `cage run` as an orphan.
 */
export function armParentWatch(): boolean {
  if (watch !== undefined) return watch !== null;
  const supervisorPid = takeSupervisorPid();
  const channel = process.channel;
  if (!channel && supervisorPid === null) {
    watch = null;
    return false;
  }
  const w: ParentWatch = { handler: null, fired: false };
  watch = w;
  let poll: NodeJS.Timeout | null = null;
  const fire = (): void => {
    if (w.fired) return;
    w.fired = true;
    if (poll !== null) clearInterval(poll);
    process.off("disconnect", fire);
    if (w.handler !== null) {
      w.handler();
      return;
    }
    process.stderr.write("parent died before start-up: exiting\n");
    process.exit(0);
  };
  if (channel) {
    process.once("disconnect", fire);
    // The channel alone must not keep the process alive (after the listener: adding one refs it).
    channel.unref();
    // Already gone before we looked: "disconnect" will not fire again.
    if (!process.connected) queueMicrotask(fire);
  }
  if (supervisorPid !== null) {
    if (currentParentPid() !== supervisorPid) {
      queueMicrotask(fire);
    } else {
      poll = setInterval(() => {
        if (currentParentPid() !== supervisorPid) fire();
      }, PARENT_POLL_MS);
      poll.unref();
    }
  }
  return true;
}

/**
 * Calls `onDeath` once when the parent that started us goes away (at once when it already has).
 * Returns false (and never calls it) when there is no parent to watch (see armParentWatch).
 */
export function onParentDeath(onDeath: () => void): boolean {
  if (!armParentWatch()) return false;
  const w = watch as ParentWatch;
  w.handler = onDeath; // the latest stop path (one per process outside tests)
  if (w.fired) queueMicrotask(onDeath);
  return true;
}

let watching = false;

/**
 * For processes outside the process runtime (the demo workloads): a dead parent becomes a
 * SIGTERM to ourselves, so the normal stop path runs. Idempotent.
 */
export function stopWhenParentDies(): void {
  if (watching) return;
  watching = onParentDeath(() => process.kill(process.pid, "SIGTERM"));
}
