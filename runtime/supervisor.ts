/**
 * Runs the agent's processes (collectors, pipeline, actuators) as children: restarts a child
 * that dies with backoff, relays its log lines, and on shutdown stops every child
 * (SIGTERM, then SIGKILL after a grace period) so none is left behind.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import type { Logger } from "pino";
import { RestartBackoff, type BackoffOptions, DEFAULT_BACKOFF } from "./restartBackoff.js";

export interface ChildSpec {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
}

interface Supervised {
  spec: ChildSpec;
  child: ChildProcess | null;
  startedAt: number;
  restarts: number;
  backoff: RestartBackoff;
  timer: NodeJS.Timeout | null;
}

export class Supervisor {
  private readonly children = new Map<string, Supervised>();
  private stopping = false;

  constructor(
    private readonly log: Logger,
    private readonly backoff: BackoffOptions = DEFAULT_BACKOFF,
    private readonly graceMs = 5_000,
  ) {}

  start(spec: ChildSpec): void {
    if (this.children.has(spec.name)) throw new Error(`supervisor: a child named ${spec.name} is already running`);
    const s: Supervised = { spec, child: null, startedAt: 0, restarts: 0, backoff: new RestartBackoff(this.backoff), timer: null };
    this.children.set(spec.name, s);
    this.launch(s);
  }

  restartsOf(name: string): number {
    return this.children.get(name)?.restarts ?? 0;
  }

  pidOf(name: string): number | undefined {
    return this.children.get(name)?.child?.pid;
  }

  private launch(s: Supervised): void {
    s.timer = null;
    if (this.stopping) return;
    const child = spawn(s.spec.command, s.spec.args, {
      // fd 3 is an IPC channel: children watch it to stop when we die (parentWatch.ts).
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      env: s.spec.env ?? process.env,
    });
    s.child = child;
    s.startedAt = Date.now();
    // Children log pino JSON lines; pass them through as they are so one stream holds all.
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) createInterface({ input: stream }).on("line", (line) => process.stderr.write(`${line}\n`));
    }
    child.on("error", (err) => this.log.error({ child: s.spec.name, err: err.message }, "could not start child"));
    child.on("exit", (code, signal) => {
      s.child = null;
      if (this.stopping) return;
      const ranFor = Date.now() - s.startedAt;
      const delay = s.backoff.delayAfterExit(ranFor);
      s.restarts++;
      this.log.warn({ child: s.spec.name, code, signal, ranForMs: ranFor, restartInMs: delay, restarts: s.restarts }, "child exited; restarting");
      s.timer = setTimeout(() => this.launch(s), delay);
    });
  }

  /** Stops every child; resolves when all have exited. */
  async stop(): Promise<void> {
    this.stopping = true;
    const waits: Promise<void>[] = [];
    for (const s of this.children.values()) {
      if (s.timer) clearTimeout(s.timer);
      const child = s.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) continue;
      waits.push(
        new Promise<void>((resolve) => {
          const kill = setTimeout(() => {
            this.log.warn({ child: s.spec.name }, "child ignored SIGTERM; killing");
            child.kill("SIGKILL");
          }, this.graceMs);
          child.once("exit", () => {
            clearTimeout(kill);
            resolve();
          });
          child.kill("SIGTERM");
        }),
      );
    }
    await Promise.all(waits);
  }
}
