/**
 * The actuator's side of the restore guardian (guardianMain.ts): starts it in its own session,
 * registers what to undo and waits for the guardian's acknowledgement (so nothing is stopped or
 * changed that the guardian does not know about), sends heartbeats, and reports when the
 * guardian is gone so the actuator can make things safe and start a new one.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { DEFAULT_GUARDIAN_START_TIMEOUT_MS } from "../../config/loadConfig.js";
import type { Logger } from "pino";
import type { GuardedActuatorOptions } from "./actuatorOptions.js";
import { encodeGuardianMessage, type GuardianMessage, type RestoreAction } from "./guardianProtocol.js";

export const GUARDIAN_ENTRY = fileURLToPath(new URL("./guardianMain.js", import.meta.url));

export interface GuardianOptions {
  name: string;
  watchdogMs?: number;
  /** Called once when the guardian exits without being closed by us. */
  onLost?: (reason: string) => void;
  /** The actuator section's guardianStartTimeoutMs; default as in the config. */
  startTimeoutMs?: number;
  /** Aborted when the actuator is asked to stop while the guardian is still starting. */
  signal?: AbortSignal;
}

export class GuardianClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private exited = false;
  private closing = false;
  private readonly exitPromise: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    private readonly options: GuardianOptions,
  ) {
    this.exitPromise = new Promise((resolve) => child.once("exit", () => resolve()));
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get alive(): boolean {
    return !this.exited;
  }

  static async start(options: GuardianOptions): Promise<GuardianClient> {
    const args = [GUARDIAN_ENTRY, "--name", options.name, "--watchdog-ms", String(options.watchdogMs ?? 500)];
    // detached: its own session, so a signal to our process group (Ctrl-C) does not reach it.
    const child = spawn(process.execPath, args, { detached: true, stdio: ["pipe", "pipe", "inherit"] });
    const client = new GuardianClient(child, options);
    await client.waitReady(options.startTimeoutMs ?? DEFAULT_GUARDIAN_START_TIMEOUT_MS, options.signal);
    return client;
  }

  private waitReady(timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    const child = this.child;
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`restore guardian did not start within ${timeoutMs} ms (the actuator's guardianStartTimeoutMs)`));
      }, timeoutMs);
      // A stop during start-up must not wait out guardianStartTimeoutMs; nothing is registered yet.
      const onAbort = (): void => {
        if (ready) return;
        clearTimeout(timer);
        this.closing = true;
        child.kill("SIGKILL");
        reject(new Error("restore guardian start abandoned: stop requested"));
      };
      if (signal?.aborted === true) queueMicrotask(onAbort);
      else signal?.addEventListener("abort", onAbort, { once: true });
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(new Error(`guardian could not start: ${err.message}`));
      });
      child.stdin?.on("error", () => undefined); // EPIPE after the guardian died: handled by "exit"
      createInterface({ input: child.stdout! }).on("line", (line) => {
        let o: { ready?: boolean; id?: number; ok?: boolean; error?: string };
        try {
          o = JSON.parse(line) as typeof o;
        } catch {
          return;
        }
        if (o.ready === true && !ready) {
          ready = true;
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          resolve();
          return;
        }
        if (typeof o.id === "number") {
          const p = this.pending.get(o.id);
          this.pending.delete(o.id);
          if (o.ok === true) p?.resolve();
          else p?.reject(new Error(`guardian refused: ${o.error ?? "unknown error"}`));
        }
      });
      child.once("exit", (code, exitSignal) => {
        this.exited = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        for (const p of this.pending.values()) p.reject(new Error("guardian exited"));
        this.pending.clear();
        if (!ready) reject(new Error(`guardian exited before it was ready (code ${String(code)}, signal ${String(exitSignal)})`));
        else if (!this.closing) this.options.onLost?.(`guardian exited (code ${String(code)}, signal ${String(exitSignal)})`);
      });
    });
  }

  private send(message: GuardianMessage, withAck: boolean): Promise<void> {
    if (this.exited) return Promise.reject(new Error("guardian is not running"));
    const id = withAck ? this.nextId++ : null;
    const done = id === null ? Promise.resolve() : new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.child.stdin?.write(encodeGuardianMessage(id, message));
    return done;
  }

  /** Resolves once the guardian has it: only then may the actuator stop / change the thing. */
  register(action: RestoreAction): Promise<void> {
    return this.send(action, true);
  }

  forget(pid: number): Promise<void> {
    return this.send({ op: "forget", pid }, true);
  }

  unwrite(path: string): Promise<void> {
    return this.send({ op: "unwrite", path }, true);
  }

  unexec(key: string): Promise<void> {
    return this.send({ op: "unexec", key }, true);
  }

  /** The agent is stopping in order: from now on, if we go away undisarmed, the guardian restores the originals (not the fail-safe). */
  orderly(): Promise<void> {
    return this.send({ op: "orderly" }, true);
  }

  heartbeat(): void {
    if (!this.exited) void this.send({ op: "hb" }, false).catch(() => undefined);
  }

  /** Clean exit: we restored everything ourselves; the guardian exits without acting. */
  async disarmAndClose(): Promise<void> {
    this.closing = true;
    if (!this.exited) {
      await this.send({ op: "done" }, false).catch(() => undefined);
      this.child.stdin?.end();
    }
    await this.exitPromise;
  }

  /** Closes without disarming: the guardian carries out everything registered, then exits. */
  async closeArmed(): Promise<void> {
    this.closing = true;
    if (!this.exited) this.child.stdin?.end();
    await this.exitPromise;
  }
}

export interface GuardianKeeperOptions {
  name: string;
  watchdogMs?: number;
  startTimeoutMs?: number;
  log: Logger;
  now: () => number;
  /** Logged at error level when the guardian is lost; says what the actuator did about it. */
  lostMessage: string;
  /** Called first when the guardian is lost: make things safe without it. */
  onLost?: () => void;
  /** Called after each (re)start: hand the new guardian what it must restore. */
  onStarted: () => Promise<void> | void;
}

/**
 * Keeps one restore guardian running for an actuator: starts it, and when it is lost starts a
 * new one, retrying every second, until stopRestarting() (the actuator is stopping).
 */
export class GuardianKeeper {
  /** The running guardian; null before start, after a loss until the next one is up, and after take(). */
  current: GuardianClient | null = null;
  private restarting = true;

  constructor(private readonly options: GuardianKeeperOptions) {}

  /** Starts the first guardian; `signal` (the process's stop request) abandons a start in progress. */
  async start(signal?: AbortSignal): Promise<void> {
    const { log, now } = this.options;
    const t0 = now();
    this.current = await GuardianClient.start({
      name: this.options.name,
      watchdogMs: this.options.watchdogMs,
      startTimeoutMs: this.options.startTimeoutMs,
      signal,
      onLost: (reason) => {
        this.current = null;
        this.options.onLost?.();
        log.error({ reason }, this.options.lostMessage);
        if (this.restarting) void this.restart();
      },
    });
    log.info({ ms: now() - t0 }, "restore guardian started");
    await this.options.onStarted();
  }

  stopRestarting(): void {
    this.restarting = false;
  }

  /**
   * For the start of an orderly stop: no more restarts, and the running guardian restores the
   * originals (not the fail-safe) should this process die before it has restored them itself.
   */
  async beginOrderlyStop(): Promise<void> {
    this.restarting = false;
    await this.current?.orderly().catch((err: unknown) => this.options.log.warn({ err: (err as Error).message }, "could not tell the restore guardian the stop is orderly"));
  }

  /** The running guardian, now the caller's to close; no restarts after this. */
  take(): GuardianClient | null {
    this.restarting = false;
    const guardian = this.current;
    this.current = null;
    return guardian;
  }

  private async restart(): Promise<void> {
    try {
      await this.start();
    } catch (err) {
      this.options.log.error({ err: (err as Error).message }, "cannot start a restore guardian; retrying in 1 s");
      setTimeout(() => void (!this.restarting || this.current !== null ? undefined : this.restart()), 1000).unref();
    }
  }
}

/** What an actuator says about its own guardian; the rest of the keeper's options come from its options. */
export type GuardianKeeperHooks = Pick<GuardianKeeperOptions, "lostMessage" | "onLost" | "onStarted">;

/**
 * The keeper of actuator `name`: the guardian watchdog of its options, the guardianStartTimeoutMs
 * of its config section, its logger and its clock (default Date.now), with its own hooks.
 */
export function guardianKeeperFor(name: string, options: GuardedActuatorOptions<{ guardianStartTimeoutMs?: number }>, hooks: GuardianKeeperHooks): GuardianKeeper {
  return new GuardianKeeper({ name, watchdogMs: options.guardianWatchdogMs, startTimeoutMs: options.spec.guardianStartTimeoutMs, log: options.logger, now: options.now ?? Date.now, ...hooks });
}
