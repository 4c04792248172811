/**
 * Decides when a cage's aggregates have stopped arriving (so an actuator must fall back to the
 * cage's fail-safe setting) and when they are back. Pure: the caller passes the clock.
 */
export interface StalenessChange {
  /** Cages whose last aggregate is older than staleAfterMs, reported once per outage. */
  becameStale: readonly string[];
}

const NOTHING_STALE: StalenessChange = Object.freeze({ becameStale: Object.freeze([]) });

export class StalenessTracker {
  private readonly lastSeen = new Map<string, number>();
  private readonly stale = new Set<string>();

  constructor(readonly staleAfterMs: number) {
    if (!Number.isFinite(staleAfterMs) || staleAfterMs <= 0) throw new RangeError(`staleAfterMs: must be a positive number, got ${staleAfterMs}`);
  }

  /**
   * Records fresh data for `cage`; true when the cage was stale until now (data resumed). Call it
   * only for an aggregate that decoded and validated (ActuatorLink hands over nothing else), so
   * a stream of malformed input lets the cage go stale and to its fail-safe.
   */
  seen(cage: string, nowMs: number): boolean {
    this.lastSeen.set(cage, nowMs);
    return this.stale.delete(cage);
  }

  /** Cages that went stale since the last check. A cage never seen goes stale `staleAfterMs` after `watch`. */
  check(nowMs: number): StalenessChange {
    let becameStale: string[] | null = null;
    // Called every period for every cage: no entry arrays, and no list while nothing goes stale.
    this.lastSeen.forEach((at, cage) => {
      if (!this.stale.has(cage) && nowMs - at > this.staleAfterMs) {
        this.stale.add(cage);
        (becameStale ??= []).push(cage);
      }
    });
    return becameStale === null ? NOTHING_STALE : { becameStale };
  }

  /** Starts the clock for a cage before its first aggregate, so silence from the start counts. */
  watch(cage: string, nowMs: number): void {
    if (!this.lastSeen.has(cage)) this.lastSeen.set(cage, nowMs);
  }

  isStale(cage: string): boolean {
    return this.stale.has(cage);
  }

  /** Milliseconds since the cage's last aggregate (or since watch), or null if unknown. */
  ageMs(cage: string, nowMs: number): number | null {
    const at = this.lastSeen.get(cage);
    return at === undefined ? null : nowMs - at;
  }
}
