/**
 * The one interface every balloon back end implements, and the error they throw. A back end sets
 * the VM's memory target and reports the VM's actual memory; it never decides anything.
 */
import type { RestoreAction } from "../common/guardianProtocol.js";

export interface BalloonBackend {
  /** For act.state `backend`: `qmp`, `xl-mem-set`, `virsh`, `cgroup-v1`, `cgroup-v2`. */
  readonly kind: string;
  /** What it drives, for messages: e.g. `QMP /run/vm1.qmp`, `xl domain domu1`. */
  readonly target: string;
  /** Asks for the VM's memory to become `bytes` (a request: the guest may take time or refuse). */
  apply(bytes: number): Promise<void>;
  /** The VM's actual memory now, bytes; null when the back end cannot tell. */
  readActual(): Promise<number | null>;
  close(): Promise<void>;
  /** Changes when the VM behind the back end may have restarted (QMP: a new connection); its balloon is then reset. */
  readonly generation?: number;
  /**
   * Reads the setting as found now (before the actuator's first change) and returns the restore
   * guardian's step for it: the original, and `failsafeBytes` to put in place if the actuator dies.
   */
  restoreAction?(failsafeBytes: number): Promise<RestoreAction>;
}

/** A guardian key from a back end's target (socket path, domain): [A-Za-z0-9:._-], at most 128. */
export function restoreKey(prefix: string, target: string): string {
  return `${prefix}:${target.replace(/[^A-Za-z0-9:._-]/g, "_")}`.slice(0, 128);
}

/** A back end operation failed; the message names the back end, what it drove and why. */
export class BalloonBackendError extends Error {
  override readonly name = "BalloonBackendError";
  constructor(
    message: string,
    /** A short machine-readable reason: `unreachable`, `no-balloon-device`, `command-missing`, `command-failed`, `bad-output`, `io`. */
    readonly reason: string,
  ) {
    super(message);
  }
}

export function isBalloonBackendError(err: unknown): err is BalloonBackendError {
  return err instanceof BalloonBackendError;
}
