/**
 * Carrying out restore steps (guardianProtocol.ts): cgroup writes, xl/virsh commands and the QEMU
 * balloon over QMP. The restore guardian runs them when its actuator is gone; an actuator runs
 * the recorded originals (originalSettings.ts) itself on a clean stop.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { createInterface } from "node:readline";
import type { OriginalSettings, RecordedAction } from "./originalSettings.js";
import type { CpuBackend } from "./cpuBackend.js";

/** Connecting to a QMP socket fails so when its QEMU is no longer there. */
const VM_GONE = new Set(["ENOENT", "ECONNREFUSED"]);

/** How long one restore command or QMP exchange may take. */
export const RESTORE_STEP_TIMEOUT_MS = 5_000;

export interface RestorePlan {
  writes: ReadonlyMap<string, string>;
  execs: ReadonlyMap<string, readonly string[]>;
  qmps: ReadonlyMap<string, { socket: string; bytes: number }>;
}

/** The plan that puts recorded originals back. */
export function planOf(actions: readonly RecordedAction[]): RestorePlan {
  const writes = new Map<string, string>();
  const execs = new Map<string, readonly string[]>();
  const qmps = new Map<string, { socket: string; bytes: number }>();
  for (const a of actions) {
    if (a.op === "write") writes.set(a.path, a.value);
    else if (a.op === "exec") execs.set(a.key, a.argv);
    else qmps.set(a.key, { socket: a.socket, bytes: a.bytes });
  }
  return { writes, execs, qmps };
}

/**
 * Runs every step, each one whatever the others did; returns what failed (empty: all done). A
 * cgroup file that no longer exists is no failure: its cgroup was removed, nothing to restore.
 * Nor is a QMP socket that is gone or has no listener: that QEMU has exited, and its VM with it.
 */
export async function carryOutRestore(plan: RestorePlan, stepTimeoutMs: number): Promise<string[]> {
  const failures: string[] = [];
  for (const [path, value] of plan.writes) {
    try {
      writeFileSync(path, value);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") failures.push(`${path}: ${(err as Error).message}`);
    }
  }
  for (const [key, cmd] of plan.execs) {
    try {
      execFileSync(cmd[0] as string, cmd.slice(1), { timeout: stepTimeoutMs, stdio: ["ignore", "ignore", "pipe"] });
    } catch (err) {
      failures.push(`${key} (${cmd.join(" ")}): ${(err as Error).message.split("\n")[0] ?? ""}`);
    }
  }
  for (const [key, q] of plan.qmps) {
    try {
      await qmpBalloon(q.socket, q.bytes, stepTimeoutMs);
    } catch (err) {
      if (VM_GONE.has((err as NodeJS.ErrnoException).code ?? "")) continue;
      failures.push(`${key} (balloon ${q.bytes} via ${q.socket}): ${(err as Error).message}`);
    }
  }
  return failures;
}

/**
 * One QMP exchange: greeting, qmp_capabilities, then `balloon` with `bytes`. Resolves on QEMU's
 * "return", rejects on an "error" reply, a closed socket or the timeout.
 */
export function qmpBalloon(socket: string, bytes: number, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const conn = createConnection(socket);
    let step: "greeting" | "capabilities" | "balloon" | "done" = "greeting";
    let settled = false;
    const finish = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.destroy();
      if (err === null) resolve();
      else reject(err);
    };
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    conn.on("error", (err) => finish(err));
    conn.on("close", () => finish(step === "done" ? null : new Error("QMP socket closed before the balloon was set")));
    const lines = createInterface({ input: conn });
    // readline re-emits the socket's errors, which would be uncaught: the socket's own handler settles.
    lines.on("error", () => undefined);
    lines.on("line", (line) => {
      let reply: { QMP?: unknown; return?: unknown; error?: { desc?: string }; event?: unknown };
      try {
        reply = JSON.parse(line) as typeof reply;
      } catch {
        finish(new Error(`not JSON from QMP: ${JSON.stringify(line.slice(0, 80))}`));
        return;
      }
      if (reply.event !== undefined) return;
      if (reply.error !== undefined) {
        finish(new Error(`QMP error: ${reply.error.desc ?? JSON.stringify(reply.error)}`));
        return;
      }
      if (step === "greeting" && reply.QMP !== undefined) {
        conn.write(`${JSON.stringify({ execute: "qmp_capabilities" })}\n`);
        step = "capabilities";
      } else if (step === "capabilities" && reply.return !== undefined) {
        conn.write(`${JSON.stringify({ execute: "balloon", arguments: { value: bytes } })}\n`);
        step = "balloon";
      } else if (step === "balloon" && reply.return !== undefined) {
        step = "done";
        finish(null);
      }
    });
  });
}


/**
 * Puts a cage's CPU settings back on an orderly stop: the back end's own restore (the values it
 * read when it opened), then the originals an earlier run recorded under `key`, which win (what
 * the back end read may be that run's leftover, a fail-safe cap held by its guardian); the
 * record is dropped once carried out. Throws what failed.
 */
export async function restoreCageSettings(backend: Pick<CpuBackend, "restore">, originals: OriginalSettings | null, key: string): Promise<void> {
  await backend.restore();
  const failures = await carryOutRestore(planOf(originals?.recorded(key) ?? []), RESTORE_STEP_TIMEOUT_MS);
  if (failures.length > 0) throw new Error(`restoring the recorded originals failed: ${failures.join("; ")}`);
  originals?.forget(key);
}
