/**
 * Writes the pipeline's history to InfluxDB 1.x with the `influx` package: aggregates and
 * actuator state into the `raw` retention policy, actuator decisions into `longterm`.
 *
 * It never holds the pipeline up: points go through a bounded on-disk spool (HistorySpool, in
 * agent.stateDir), one batch is written at a time, a failed write is retried with exponential
 * backoff (RetryBackoff) and the batch stays at the front of the queue. What the spool holds
 * when the pipeline stops or is killed is written first by the next start. When the spool is
 * full the oldest points are dropped, logged and counted. The database, retention policies and continuous query are
 * (re)created whenever the server is (back) up, so a server that lost its data directory or was
 * started after the agent is set up too.
 */
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { hostname } from "node:os";
import type influx from "influx";
import type { Logger } from "pino";
import type { InfluxSpec } from "../config/cageConfig.js";
import type { ActuatorDecision, ActuatorState } from "../protocol/actuatorMessages.js";
import type { CageAggregate } from "../protocol/cageAggregate.js";
import { RetryBackoff } from "./historyBuffer.js";
import { HistorySpool, type SpoolCounters } from "./historySpool.js";
import { actuatorDecisionPoint, actuatorStatePoint, aggregatePoints, type HistoryPoint } from "./influxPoints.js";
import { influxAuthFailure, readInfluxCredentials } from "./influxAuth.js";
import { LONGTERM_POLICY, RAW_POLICY, schemaPlan } from "./influxSchema.js";

export interface HistoryStats extends SpoolCounters {
  /** Points waiting in the spool (queued and in flight). */
  buffered: number;
  /** Bytes of the spool's segment files on disk. */
  spoolBytes: number;
  /** The last write (or setup) succeeded. */
  connected: boolean;
  /** Milliseconds from the first failure of the last outage to the write that ended it; null before any. */
  lastOutageMs: number | null;
}

/** How often a continuing outage or continuing drops are logged again. */
const REPEAT_LOG_MS = 10_000;

/** The pool's own backoff would disable the host behind our back; ours is the only one. */
const NO_POOL_BACKOFF = {
  getDelay: () => 0,
  next() {
    return this;
  },
  reset() {
    return this;
  },
};

export class InfluxHistoryWriter {
  private readonly clientConfig: influx.ISingleHostConfig;
  private client: influx.InfluxDB | null = null;
  private readonly spool: HistorySpool;
  private readonly backoff: RetryBackoff;
  private timer: NodeJS.Timeout | null = null;
  private timerIsRetry = false;
  private flushing: Promise<void> | null = null;
  private schemaReady = false;
  private connected = false;
  private outageStartMs: number | null = null;
  private lastOutageMs: number | null = null;
  private lastFailureLogMs = 0;
  private dropsSinceLog = 0;
  private lastDropLogMs = 0;
  private stopped = false;

  /** `spoolDir`: the spool's directory (the pipeline passes agent.stateDir/influx-spool). */
  constructor(
    private readonly spec: InfluxSpec,
    spoolDir: string,
    private readonly log: Logger,
    /** The host tag of every point (agent.host). */
    private readonly host: string = hostname(),
  ) {
    let url: URL;
    try {
      url = new URL(spec.url);
    } catch {
      throw new Error(`influx url ${JSON.stringify(spec.url)}: not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`influx url ${JSON.stringify(spec.url)}: must be http:// or https://`);
    if (!(spec.batchPoints >= 1) || !(spec.flushMs >= 1)) throw new Error(`influx: batchPoints and flushMs must be >= 1, got ${spec.batchPoints}, ${spec.flushMs}`);
    this.spool = new HistorySpool({ dir: spoolDir, bounds: { points: spec.bufferPoints, bytes: spec.bufferBytes }, fsyncMs: spec.fsyncMs, log });
    this.backoff = new RetryBackoff(spec.retryMinMs, spec.retryMaxMs);
    this.clientConfig = {
      host: url.hostname.replace(/^\[(.*)\]$/, "$1"), // an IPv6 literal without its brackets
      port: url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port),
      protocol: url.protocol === "https:" ? "https" : "http",
      database: spec.database,
      ...(readInfluxCredentials(spec) ?? {}),
      pool: { maxRetries: 0, requestTimeout: spec.timeoutMs, backoff: NO_POOL_BACKOFF },
      // A fresh connection per request (about one a second): a kept-alive socket to a server
      // that crashed is never reused.
      options: { agent: url.protocol === "https:" ? new HttpsAgent({ keepAlive: false }) : new HttpAgent({ keepAlive: false }) },
    };
  }

  /**
   * The `influx` package costs a pipeline about 16 MiB of resident memory: it is loaded with the
   * first request, so a pipeline without agent.influx never loads it.
   */
  private async influxClient(): Promise<influx.InfluxDB> {
    if (this.client === null) {
      const { default: loaded } = await import("influx");
      this.client ??= new loaded.InfluxDB(this.clientConfig);
    }
    return this.client;
  }

  get stats(): HistoryStats {
    return { ...this.spool.counters, buffered: this.spool.size, spoolBytes: this.spool.diskBytes, connected: this.connected, lastOutageMs: this.lastOutageMs };
  }

  /**
   * Opens the spool (what a previous run left is written first), then sets the database up in the
   * background and starts flushing. Throws when the spool cannot be opened; never for an absent server.
   */
  start(): void {
    this.spool.open();
    this.schedule(0, false);
  }

  writeAggregate(a: CageAggregate): void {
    this.enqueue(RAW_POLICY, aggregatePoints(a, this.host));
  }

  writeActuatorState(s: ActuatorState): void {
    this.enqueue(RAW_POLICY, [actuatorStatePoint(s, this.host)]);
  }

  writeDecision(d: ActuatorDecision): void {
    this.enqueue(LONGTERM_POLICY, [actuatorDecisionPoint(d, this.host)]);
  }

  /**
   * Stops the timers, writes what it can within `graceMs`, and closes the spool: what is left
   * stays there for the next start.
   */
  async stop(graceMs = 2_000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.clearTimer();
    const deadline = Date.now() + graceMs;
    await this.flushing;
    // A last attempt only if the server is up: a down server would just eat the grace period.
    while (this.connected && this.spool.queuedPoints > 0 && Date.now() < deadline) {
      await this.flushOnce();
    }
    this.spool.close();
    const left = this.spool.size;
    if (left > 0) this.log.info({ points: left, spool: this.spool.dir }, "influx: points left in the spool for the next start");
    this.log.info({ history: this.stats }, "influx history writer stopped");
  }

  private enqueue(policy: string, points: HistoryPoint[]): void {
    if (this.stopped) return;
    const dropped = this.spool.append(policy, points);
    if (dropped > 0) this.noteDrops(dropped);
    if (this.timer === null && this.flushing === null) {
      this.schedule(this.spool.queuedPoints >= this.spec.batchPoints ? 0 : this.spec.flushMs, false);
    } else if (this.timer !== null && !this.timerIsRetry && this.spool.queuedPoints >= this.spec.batchPoints) {
      this.schedule(0, false); // a full batch goes now, not at the end of the flush interval
    }
  }

  private schedule(ms: number, isRetry: boolean): void {
    if (this.stopped) return;
    this.clearTimer();
    this.timerIsRetry = isRetry;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flushing = this.flushOnce().finally(() => {
        this.flushing = null;
        this.afterFlush();
      });
    }, ms);
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private afterFlush(): void {
    if (this.stopped || this.timer !== null) return;
    if (!this.connected) {
      this.schedule(this.backoff.nextDelayMs(), true);
    } else if (this.spool.queuedPoints >= this.spec.batchPoints) {
      this.schedule(0, false);
    } else if (this.spool.queuedPoints > 0) {
      this.schedule(this.spec.flushMs, false);
    }
  }

  /** Sets up the schema if needed, then writes one batch. Failures are recorded, never thrown. */
  private async flushOnce(): Promise<void> {
    try {
      if (!this.schemaReady) {
        await this.ensureSchema();
        this.schemaReady = true;
      }
    } catch (err) {
      this.spool.counters.failedWrites++; // a failed request all the same: the points wait
      this.noteFailure(err, "setting up the database");
      return;
    }
    const batch = this.spool.takeBatch(this.spec.batchPoints);
    if (batch === null) {
      this.noteSuccess();
      return;
    }
    try {
      const client = await this.influxClient();
      await this.withDeadline(client.writePoints(batch.points, { database: this.spec.database, retentionPolicy: batch.policy, precision: "u" }));
      this.spool.succeeded();
      this.noteSuccess();
    } catch (err) {
      const status = (err as { res?: { statusCode?: number } }).res?.statusCode;
      if (status === 400) {
        const n = this.spool.rejected();
        this.log.error({ err, points: n }, "influx refused a batch as malformed; dropped it");
        return;
      }
      // 404 = database not found: the server lost it (new data dir); set it up again.
      if (status === 404) this.schemaReady = false;
      const dropped = this.spool.failed();
      if (dropped > 0) this.noteDrops(dropped);
      this.noteFailure(err, "writing points");
    }
  }

  /**
   * The package settles a request only when the response ends; a response that never ends
   * (server killed mid-answer) would hold the writer forever. Past the request timeout (and a
   * margin) the attempt counts as failed; retrying is safe: a point written twice (same series
   * and time) is stored once.
   */
  private async withDeadline<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadlineMs = this.spec.timeoutMs + 1000;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no complete answer within ${deadlineMs} ms`)), deadlineMs);
    });
    try {
      return await Promise.race([p, expired]);
    } finally {
      clearTimeout(timer);
      p.catch(() => undefined); // a late rejection of an abandoned request is not unhandled
    }
  }

  private async ensureSchema(): Promise<void> {
    const { database } = this.spec;
    const client = await this.influxClient();
    await this.withDeadline(client.createDatabase(database)); // no-op when it exists
    const policies = await this.withDeadline(client.showRetentionPolicies(database));
    const queries = await this.withDeadline(client.showContinousQueries(database));
    const { actions, differences } = schemaPlan(this.spec, policies, queries.map((q) => q.name));
    for (const difference of differences) this.log.warn({ database }, `influx: ${difference}`);
    for (const a of actions) {
      switch (a.kind) {
        case "createPolicy":
          await this.withDeadline(client.createRetentionPolicy(a.name, { database, duration: a.duration, replication: 1, isDefault: a.isDefault }));
          break;
        case "createQuery":
          await this.withDeadline(client.createContinuousQuery(a.name, a.query, database));
          break;
      }
      this.log.info({ database, ...a }, "influx: schema created");
    }
  }

  private noteSuccess(): void {
    if (!this.connected) {
      const now = Date.now();
      if (this.outageStartMs !== null) {
        this.lastOutageMs = now - this.outageStartMs;
        this.log.info({ outageMs: this.lastOutageMs, buffered: this.spool.size, url: this.spec.url }, "influx reachable again; writing the spooled points");
      } else {
        this.log.info({ url: this.spec.url, database: this.spec.database }, "influx history writer connected");
      }
    }
    this.connected = true;
    this.outageStartMs = null;
    this.backoff.reset();
  }

  private noteFailure(err: unknown, doing: string): void {
    const now = Date.now();
    const first = this.outageStartMs === null;
    if (first) this.outageStartMs = now;
    this.connected = false;
    if (first || now - this.lastFailureLogMs >= REPEAT_LOG_MS) {
      this.lastFailureLogMs = now;
      const auth = influxAuthFailure(err, this.spec);
      if (auth !== null) {
        this.log.error({ url: this.spec.url, buffered: this.spool.size, failures: this.backoff.failureCount + 1 }, `influx: ${doing} failed: ${auth}; points stay buffered, retrying with backoff`);
        return;
      }
      this.log.warn(
        { err: err instanceof Error ? err.message : String(err), url: this.spec.url, buffered: this.spool.size, failures: this.backoff.failureCount + 1 },
        `influx: ${doing} failed; retrying with backoff`,
      );
    }
  }

  private noteDrops(n: number): void {
    this.dropsSinceLog += n;
    const now = Date.now();
    if (now - this.lastDropLogMs >= REPEAT_LOG_MS) {
      this.log.warn(
        { dropped: this.dropsSinceLog, droppedTotal: this.spool.counters.droppedFull, bufferPoints: this.spec.bufferPoints, bufferBytes: this.spec.bufferBytes },
        "influx: history spool full; dropped the oldest points",
      );
      this.lastDropLogMs = now;
      this.dropsSinceLog = 0;
    }
  }
}
