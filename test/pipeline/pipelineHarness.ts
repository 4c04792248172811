/** Shared helpers for the in-process pipeline tests: configs, log capture, polling, scraping. */
import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { get } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { pino, type Logger } from "pino";
import type { AgentConfig, CageSpec } from "../../config/cageConfig.js";

/** The in-process agents' state and runtime directories: one per test process, never the host's
 * /var/lib/offloadcage or runtime directory (an actuator records originals in both). */
export const TEST_STATE_DIR = join(tmpdir(), `offloadcage-test-state-${process.pid}`);
export const TEST_RUNTIME_DIR = join(tmpdir(), `offloadcage-test-run-${process.pid}`);
process.once("exit", () => {
  for (const d of [TEST_STATE_DIR, TEST_RUNTIME_DIR]) rmSync(d, { recursive: true, force: true });
});

export function agentConfig(cages: CageSpec[], resolveMs = 100): AgentConfig {
  return {
    agent: { host: null, runtimeDir: TEST_RUNTIME_DIR, stateDir: TEST_STATE_DIR, cpuIntervalMs: 100, cpuProgram: "auto", memorySampleMs: 100, idsMemorySampleMs: null, resolveMs, prometheus: null, otlp: null, pageCache: null, logLevel: "debug", actuators: { balloon: null, cpu: null, limiter: null, external: [] }, influx: null },
    cages,
  };
}

/** A cage whose VM and IDS are given PIDs (no descendants: the test owns exactly these). */
export function cageByPid(name: string, vmPid: number, idsPid: number): CageSpec {
  return {
    name,
    vm: { kind: "process", match: [{ pid: vmPid, descendants: false }] },
    ids: [{ pid: idsPid, descendants: false }],
    cpu: { cap: 150, idsCap: 40, weight: 2 },
    memory: { baseBytes: 2 * 2 ** 30, floorBytes: 512 << 20, failsafeBytes: 2 * 2 ** 30, balloon: { backend: "auto", libvirtDomain: null, cgroup: null, cgroupV2File: "memory.max" } },
  };
}

export interface LogRecord {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A pino logger whose records land in `records` (and nowhere else). */
export function capturingLogger(): { logger: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line !== "") records.push(JSON.parse(line) as LogRecord);
      done();
    },
  });
  return { logger: pino({ name: "pipeline", level: "debug" }, sink), records };
}

/**
 * A bound for waits on something that must happen, not on how fast: CI runs every test on a
 * loaded 2-core machine, and a bound only ever turns a slow pass into a failure.
 */
export const PATIENT_MS = 30_000;

export async function waitFor(what: string, condition: () => boolean, timeoutMs = PATIENT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(10);
  }
}

/**
 * As waitFor, sending again every `everyMs` until the condition holds: a PUB socket drops what it
 * sends before a subscriber's subscription has reached it.
 */
export async function waitForResending(what: string, send: () => void, condition: () => boolean, timeoutMs = PATIENT_MS, everyMs = 100): Promise<void> {
  let lastSentMs = -Infinity;
  await waitFor(what, () => {
    if (Date.now() - lastSentMs >= everyMs) {
      lastSentMs = Date.now();
      send();
    }
    return condition();
  }, timeoutMs);
}

/** As waitFor, for a condition that asks something slow (a command): polled every `intervalMs`, a rejection counts as false. */
export async function waitForAsync(what: string, condition: () => Promise<boolean>, timeoutMs: number, intervalMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(intervalMs);
  }
}

/** A real process the test can use as a cage member; killed by `stop`. */
export function startSleeper(): ChildProcess & { pid: number } {
  const child = spawn("sleep", ["60"], { stdio: "ignore" });
  if (child.pid === undefined) throw new Error("could not start sleep");
  return child as ChildProcess & { pid: number };
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGKILL");
  await exited;
}

export function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // agent: false: a fresh connection each time, so a closed port shows as refused.
    get(url, { agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    }).on("error", reject);
  });
}

/** Metric names (before any `{`) present in a scrape. */
export function metricNamesIn(series: Map<string, number>): Set<string> {
  return new Set([...series.keys()].map((k) => k.split("{")[0]!));
}
