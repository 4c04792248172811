/**
 * Restart policy for supervised children and the bpftrace runner: a few immediate restarts, then
 * exponential backoff, both reset once a child has stayed up for a while. A crashed actuator is
 * back at once (its cap is never absent for long), a flapping child is not restarted in a tight
 * loop, and a child that crashes once a day restarts at once.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A run at least this long counts as healthy and resets the delay (and the immediate restarts). */
  healthyAfterMs: number;
  /** Quick exits restarted with no delay before the backoff starts; default 0. */
  immediateRestarts?: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, healthyAfterMs: 60_000 };

/**
 * `cage run`'s children: an actuator killed three times in a minute is back at once each time,
 * and a child that keeps dying is retried every 5 s at most: while it is down its cages sit at
 * their fail-safe, and nothing cleans up after it.
 */
export const SUPERVISOR_BACKOFF: BackoffOptions = { ...DEFAULT_BACKOFF, maxMs: 5_000, immediateRestarts: 3 };

export class RestartBackoff {
  private nextMs: number;
  private readonly immediate: number;
  private immediateLeft: number;
  constructor(private readonly opts: BackoffOptions = DEFAULT_BACKOFF) {
    const immediate = opts.immediateRestarts ?? 0;
    if (!(opts.initialMs > 0) || !(opts.maxMs >= opts.initialMs) || !(opts.healthyAfterMs > 0) || !Number.isInteger(immediate) || immediate < 0) {
      throw new Error(`restart backoff: need 0 < initialMs <= maxMs, healthyAfterMs > 0 and an integer immediateRestarts >= 0, got ${JSON.stringify(opts)}`);
    }
    this.nextMs = opts.initialMs;
    this.immediate = immediate;
    this.immediateLeft = immediate;
  }

  /** The delay before restarting a child that ran for `ranForMs` and then died. */
  delayAfterExit(ranForMs: number): number {
    if (ranForMs >= this.opts.healthyAfterMs) {
      this.nextMs = this.opts.initialMs;
      this.immediateLeft = this.immediate;
    }
    if (this.immediateLeft > 0) {
      this.immediateLeft--;
      return 0;
    }
    const delay = this.nextMs;
    this.nextMs = Math.min(this.nextMs * 2, this.opts.maxMs);
    return delay;
  }
}

/**
 * The one restart loop of everything the agent keeps running (supervised children, bpftrace,
 * xentrace): at most one restart pending, delayed by RestartBackoff, none after cancel().
 */
export class RestartSchedule {
  private readonly backoff: RestartBackoff;
  private timer: NodeJS.Timeout | null = null;
  private cancelled = false;
  /** Restarts begun so far. */
  restarts = 0;

  constructor(opts: BackoffOptions = DEFAULT_BACKOFF) {
    this.backoff = new RestartBackoff(opts);
  }

  get pending(): boolean {
    return this.timer !== null;
  }

  get isCancelled(): boolean {
    return this.cancelled;
  }

  /**
   * Calls `restart` after the backoff delay for a run that lasted `ranForMs` (0 for a restart
   * that failed to start) and returns that delay; null when cancelled or one is already pending.
   */
  schedule(ranForMs: number, restart: () => void): number | null {
    if (this.cancelled || this.timer !== null) return null;
    const delay = this.backoff.delayAfterExit(ranForMs);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.cancelled) return;
      this.restarts++;
      restart();
    }, delay);
    return delay;
  }

  /** No restart from now on; a pending one is dropped. */
  cancel(): void {
    this.cancelled = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
