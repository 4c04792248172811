/**
 * Runs the agent's processes (collectors, pipeline, actuators) as children: restarts a child
 * that dies (RestartSchedule), relays its log lines, and on shutdown stops every child
 * (SIGTERM, then SIGKILL once the child's own stop deadline and a margin have passed) so none
 * is left behind.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import type { Logger } from "pino";
import { RestartSchedule, SUPERVISOR_BACKOFF, type BackoffOptions } from "./restartBackoff.js";
import { SUPERVISOR_KILL_MARGIN_MS } from "./processRuntime.js";
import { SUPERVISOR_PID_ENV } from "./parentWatch.js";
import { AGENT_NODE_FLAGS } from "./agentNodeFlags.js";

/**
 * Preloaded (node --import) into every node child: it watches for our death before the child's
 * own modules are even loaded, which takes seconds on a loaded host.
 */
export const PARENT_WATCH_PRELOAD = fileURLToPath(new URL("./armParentWatch.js", import.meta.url));

/** The arguments a child is started with: node children get AGENT_NODE_FLAGS, then PARENT_WATCH_PRELOAD first. */
export function launchArgs(spec: Pick<ChildSpec, "command" | "args">): string[] {
  return spec.command === process.execPath ? [...AGENT_NODE_FLAGS, "--import", PARENT_WATCH_PRELOAD, ...spec.args] : spec.args;
}

export interface ChildSpec {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /**
   * The child's own stop deadline (processRuntime's STOP_TIMEOUT_MS for an agent process): it
   * is SIGKILLed only SUPERVISOR_KILL_MARGIN_MS after that. Default: the supervisor's graceMs.
   */
  stopTimeoutMs?: number;
}

interface Supervised {
  spec: ChildSpec;
  child: ChildProcess | null;
  startedAt: number;
  restarts: RestartSchedule;
  /** Set once it is being stopped for good: its exit is not a crash to restart. */
  stopped: boolean;
}

export class Supervisor {
  private readonly children = new Map<string, Supervised>();
  private stopping = false;

  /**
   * @param graceMs SIGTERM → SIGKILL for a child without stopTimeoutMs.
   * @param output where the children's stdout and stderr lines go, one line at a time.
   */
  constructor(
    private readonly log: Logger,
    private readonly backoff: BackoffOptions = SUPERVISOR_BACKOFF,
    private readonly graceMs = 5_000,
    private readonly output: NodeJS.WritableStream = process.stderr,
  ) {}

  start(spec: ChildSpec): void {
    if (this.children.has(spec.name)) throw new Error(`supervisor: a child named ${spec.name} is already running`);
    if (spec.stopTimeoutMs !== undefined && !(Number.isInteger(spec.stopTimeoutMs) && spec.stopTimeoutMs > 0)) {
      throw new Error(`supervisor: ${spec.name}: stopTimeoutMs must be a positive integer, got ${String(spec.stopTimeoutMs)}`);
    }
    const s: Supervised = { spec, child: null, startedAt: 0, restarts: new RestartSchedule(this.backoff), stopped: false };
    this.children.set(spec.name, s);
    this.launch(s);
  }

  restartsOf(name: string): number {
    return this.children.get(name)?.restarts.restarts ?? 0;
  }

  pidOf(name: string): number | undefined {
    return this.children.get(name)?.child?.pid;
  }

  /** How long stop() waits after SIGTERM before it SIGKILLs this child. */
  killAfterMs(spec: ChildSpec): number {
    return spec.stopTimeoutMs === undefined ? this.graceMs : spec.stopTimeoutMs + SUPERVISOR_KILL_MARGIN_MS;
  }

  private launch(s: Supervised): void {
    if (this.stopping || s.stopped) return;
    const child = spawn(s.spec.command, launchArgs(s.spec), {
      // fd 3 is an IPC channel and SUPERVISOR_PID_ENV our PID: children watch both to stop
      // when we die (parentWatch.ts).
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      env: { ...(s.spec.env ?? process.env), [SUPERVISOR_PID_ENV]: String(process.pid) },
    });
    s.child = child;
    s.startedAt = Date.now();
    // Children log pino JSON lines; pass them through as they are so one stream holds all.
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) createInterface({ input: stream }).on("line", (line) => this.output.write(`${line}\n`));
    }
    child.on("error", (err) => this.log.error({ child: s.spec.name, err }, "could not start child"));
    child.on("exit", (code, signal) => {
      s.child = null;
      if (this.stopping || s.stopped) return;
      const ranForMs = Date.now() - s.startedAt;
      const delay = s.restarts.schedule(ranForMs, () => this.launch(s));
      this.log.warn({ child: s.spec.name, code, signal, ranForMs, restartInMs: delay, restarts: s.restarts.restarts }, "child exited; restarting");
    });
  }

  /** The spec a child runs under, or undefined when no child has that name. */
  specOf(name: string): ChildSpec | undefined {
    return this.children.get(name)?.spec;
  }

  /** The names of the children, in start order. */
  names(): string[] {
    return [...this.children.keys()];
  }

  /**
   * Stops one child the way stop() does (SIGTERM, its own deadline, then SIGKILL) and forgets it:
   * it is not restarted. Resolves when it has exited. For a config reload.
   */
  async stopChild(name: string): Promise<void> {
    const s = this.children.get(name);
    if (s === undefined) throw new Error(`supervisor: no child named ${name}`);
    this.children.delete(name);
    await this.terminate(s);
  }

  /** Stops the child of the same name (if any), then starts `spec` in its place. */
  async replace(spec: ChildSpec): Promise<void> {
    if (this.children.has(spec.name)) await this.stopChild(spec.name);
    if (this.stopping) return;
    this.start(spec);
  }

  /** Stops every child; resolves when all have exited. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.children.values()].map((s) => this.terminate(s)));
  }

  /** SIGTERM, SIGKILL past the child's deadline; no restart after. */
  private terminate(s: Supervised): Promise<void> {
    s.restarts.cancel();
    s.stopped = true;
    const child = s.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    const killAfterMs = this.killAfterMs(s.spec);
    return new Promise<void>((resolve) => {
      const kill = setTimeout(() => {
        this.log.warn({ child: s.spec.name, killAfterMs }, "child did not stop within its deadline; killing");
        child.kill("SIGKILL");
      }, killAfterMs);
      child.once("exit", () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill("SIGTERM");
    });
  }
}
