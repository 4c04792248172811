/**
 * Real InfluxDB 1.x and Prometheus servers for the history and dashboard tests and the benches
 * (Debian's `influxdb` and `prometheus` packages, installed by scripts/ensure-test-tools.sh): each on
 * loopback ports with its own temporary data directory, never the system services.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Polls `url` until it answers with one of `okStatus`, or throws after `timeoutMs` with the server's output. */
async function waitForHttp(url: string, okStatus: number[], timeoutMs: number, output: () => string): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (okStatus.includes(res.status)) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms; output:\n${output().slice(-3000)}`);
}

/** Sends `signal`, waits for the exit (SIGKILL after 5 s). */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

export interface InfluxServerOptions {
  /** The HTTP API needs a user; the first admin user can be created without one. */
  authEnabled?: boolean;
  /** How long each start may take until /ping answers, ms (default 20 s). */
  readyTimeoutMs?: number;
}

export class InfluxServer {
  private child: ChildProcess | null = null;
  private log = "";
  readonly url: string;

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly configPath: string,
    private readonly readyTimeoutMs: number,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  /** Writes a config under `dir` (meta, data, wal there) and starts influxd. */
  static async start(dir: string, options: InfluxServerOptions = {}): Promise<InfluxServer> {
    const port = await freePort();
    const rpcPort = await freePort();
    mkdirSync(dir, { recursive: true });
    const configPath = join(dir, "influxdb.conf");
    writeFileSync(
      configPath,
      [
        "reporting-disabled = true",
        `bind-address = "127.0.0.1:${rpcPort}"`,
        "[meta]",
        `  dir = "${join(dir, "meta")}"`,
        "[data]",
        `  dir = "${join(dir, "data")}"`,
        `  wal-dir = "${join(dir, "wal")}"`,
        "  query-log-enabled = false",
        "[monitor]",
        "  store-enabled = false",
        "[http]",
        `  bind-address = "127.0.0.1:${port}"`,
        "  log-enabled = false",
        `  auth-enabled = ${options.authEnabled === true}`,
        "[continuous_queries]",
        '  run-interval = "1s"',
        "",
      ].join("\n"),
    );
    const server = new InfluxServer(dir, port, configPath, options.readyTimeoutMs ?? 20_000);
    await server.restart();
    return server;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get output(): string {
    return this.log;
  }

  /** Starts influxd (again) on the same port and data; resolves when /ping answers. */
  async restart(): Promise<void> {
    if (this.child !== null) throw new Error("influxd is already running");
    const child = spawn("influxd", ["-config", this.configPath], { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    const append = (b: Buffer): void => {
      this.log = (this.log + b.toString("utf8")).slice(-20000);
    };
    child.stdout?.on("data", append);
    child.stderr?.on("data", append);
    child.once("exit", () => {
      if (this.child === child) this.child = null;
    });
    try {
      await waitForHttp(`${this.url}/ping`, [204], this.readyTimeoutMs, () => this.log);
    } catch (err) {
      // A server that never answered is nobody's to stop later.
      await this.kill();
      throw err;
    }
  }

  /** Kills influxd (SIGKILL: a crash, no clean shutdown). */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    await stopChild(child, "SIGKILL");
    this.child = null;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    await stopChild(child);
    this.child = null;
  }

  /** Runs InfluxQL; returns the parsed JSON response, throwing on an error result. */
  async query(q: string, db?: string, credentials?: { username: string; password: string }): Promise<InfluxResponse> {
    const body = new URLSearchParams({ q, ...(db !== undefined ? { db } : {}), epoch: "ms" });
    // influxd reads credentials from the URL or Basic auth, not from a form body.
    const headers: Record<string, string> =
      credentials !== undefined ? { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64")}` } : {};
    const res = await fetch(`${this.url}/query`, { method: "POST", body, headers });
    const json = (await res.json()) as InfluxResponse;
    const err = json.error ?? json.results?.find((r) => r.error !== undefined)?.error;
    if (!res.ok || err !== undefined) throw new Error(`influx query ${JSON.stringify(q)}: HTTP ${res.status} ${err ?? ""}`);
    return json;
  }
}

export interface InfluxSeries {
  name: string;
  tags?: Record<string, string>;
  columns: string[];
  values: unknown[][];
}

export interface InfluxResponse {
  error?: string;
  results?: { statement_id: number; error?: string; series?: InfluxSeries[] }[];
}

export class PrometheusServer {
  private child: ChildProcess | null = null;
  private log = "";
  readonly url: string;

  private constructor(readonly port: number) {
    this.url = `http://127.0.0.1:${port}`;
  }

  /**
   * Starts prometheus with its TSDB in `dir`, scraping `targets` (host:port, path /metrics; or with
   * target labels, e.g. `instance` set to a host name) every `scrapeSeconds` and evaluating
   * `ruleFiles` as often.
   */
  static async start(dir: string, targets: (string | ScrapeTarget)[], ruleFiles: string[], scrapeSeconds = 1): Promise<PrometheusServer> {
    const port = await freePort();
    mkdirSync(dir, { recursive: true });
    const configPath = join(dir, "prometheus.yml");
    writeFileSync(
      configPath,
      JSON.stringify({
        global: { scrape_interval: `${scrapeSeconds}s`, evaluation_interval: `${scrapeSeconds}s`, scrape_timeout: `${scrapeSeconds}s` },
        rule_files: ruleFiles,
        scrape_configs: [
          {
            job_name: "offloadcage",
            static_configs: targets.map((t) => (typeof t === "string" ? { targets: [t] } : { targets: [t.target], labels: t.labels })),
          },
        ],
      }),
    );
    const server = new PrometheusServer(port);
    const child = spawn(
      "prometheus",
      [`--config.file=${configPath}`, `--storage.tsdb.path=${join(dir, "tsdb")}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    server.child = child;
    const append = (b: Buffer): void => {
      server.log = (server.log + b.toString("utf8")).slice(-20000);
    };
    child.stdout?.on("data", append);
    child.stderr?.on("data", append);
    try {
      await waitForHttp(`${server.url}/-/ready`, [200], 30_000, () => server.log);
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  get output(): string {
    return this.log;
  }

  async stop(): Promise<void> {
    if (this.child !== null) await stopChild(this.child);
    this.child = null;
  }

  /** An instant query at `timeS` (default now); the result vector. */
  async instant(expr: string, timeS?: number): Promise<PromSample[]> {
    const params = new URLSearchParams({ query: expr, ...(timeS !== undefined ? { time: String(timeS) } : {}) });
    const json = await this.api(`/api/v1/query?${params}`);
    return json.data.result as PromSample[];
  }

  /** A range query; the result matrix. */
  async range(expr: string, startS: number, endS: number, stepS: number): Promise<PromRangeSeries[]> {
    const params = new URLSearchParams({ query: expr, start: String(startS), end: String(endS), step: String(stepS) });
    const json = await this.api(`/api/v1/query_range?${params}`);
    return json.data.result as PromRangeSeries[];
  }

  /** The rule groups Prometheus loaded, with each rule's health and state. */
  async rules(): Promise<{ name: string; rules: { name: string; type: string; health: string; lastError?: string; state?: string; query: string }[] }[]> {
    const json = await this.api("/api/v1/rules");
    return (json.data as { groups: [] }).groups;
  }

  private async api(path: string): Promise<{ status: string; data: { result?: unknown } & Record<string, unknown>; error?: string }> {
    const res = await fetch(`${this.url}${path}`);
    const json = (await res.json()) as { status: string; data: { result?: unknown } & Record<string, unknown>; error?: string };
    if (json.status !== "success") throw new Error(`prometheus ${path}: ${json.error ?? res.status}`);
    return json;
  }
}

/** A scrape target (host:port) with the labels Prometheus puts on every series scraped from it. */
export interface ScrapeTarget {
  target: string;
  labels: Record<string, string>;
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface PromRangeSeries {
  metric: Record<string, string>;
  values: [number, string][];
}
