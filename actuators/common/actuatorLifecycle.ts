/**
 * How every actuator process starts its service and stops it: start (exit 1 if it cannot),
 * wait for SIGINT/SIGTERM or the supervisor going away, then stop, which restores what the
 * actuator changed. A hung back end must not keep the process alive forever: the supervisor
 * waits for our exit, so a bounded timer ends it.
 */
import type { Logger } from "pino";
import { stopWhenParentDies } from "../../runtime/parentWatch.js";
import { waitForStopSignal } from "../../runtime/processEntry.js";

export interface ActuatorProcessService {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface ActuatorLifecycleOptions {
  service: ActuatorProcessService;
  log: Logger;
  /** Logged (fatal) when start() throws. */
  cannotStart: string;
  /** Logged with the signal when stopping, e.g. "stopping: restoring the original settings". */
  stopping: string;
  /** After this long in stop() the process exits 1 anyway. */
  stopTimeoutMs: number;
  /** Fields for the final "stopped" log line. */
  stoppedInfo: () => object;
  /** An already armed stop-signal wait (armed early so an early SIGTERM takes the clean path). */
  signal?: Promise<NodeJS.Signals>;
}

/** Runs the service until a stop signal; returns the process exit code. */
export async function runActuatorLifecycle(o: ActuatorLifecycleOptions): Promise<number> {
  const signalled = o.signal ?? waitForStopSignal();
  try {
    await o.service.start();
  } catch (err) {
    o.log.fatal({ err }, o.cannotStart);
    await o.service.stop().catch(() => undefined);
    o.log.flush();
    return 1;
  }
  stopWhenParentDies();
  const signal = await signalled;
  o.log.info({ signal }, o.stopping);
  setTimeout(() => process.exit(1), o.stopTimeoutMs).unref();
  await o.service.stop();
  o.log.info(o.stoppedInfo(), "stopped");
  o.log.flush();
  return 0;
}
