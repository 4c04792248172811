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
