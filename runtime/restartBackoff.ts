/**
 * Restart policy for supervised children and the bpftrace runner: exponential backoff that
 * resets once a child has stayed up for a while, so a flapping child is not restarted in a
 * tight loop and a child that crashes once a day restarts at once.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A run at least this long counts as healthy and resets the delay. */
  healthyAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, healthyAfterMs: 60_000 };

export class RestartBackoff {
  private nextMs: number;
  constructor(private readonly opts: BackoffOptions = DEFAULT_BACKOFF) {
    if (!(opts.initialMs > 0) || !(opts.maxMs >= opts.initialMs) || !(opts.healthyAfterMs > 0)) {
      throw new Error(`restart backoff: need 0 < initialMs <= maxMs and healthyAfterMs > 0, got ${JSON.stringify(opts)}`);
    }
    this.nextMs = opts.initialMs;
  }

  /** The delay before restarting a child that ran for `ranForMs` and then died. */
  delayAfterExit(ranForMs: number): number {
    if (ranForMs >= this.opts.healthyAfterMs) this.nextMs = this.opts.initialMs;
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
