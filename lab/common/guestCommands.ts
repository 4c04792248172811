/**
 * Commands and progress lines for the QEMU-guest labs' guest side (the Xen lab's dom0, the v2
 * lab's guest): every command bounded in time, its failure text kept (a failure is often itself
 * the finding), progress on the console as `LAB: progress` markers.
 */
import { execFile } from "node:child_process";
import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { promisify } from "node:util";

const execFileP = promisify(execFile);
const started = Date.now();
export const elapsed = (): number => Math.round((Date.now() - started) / 100) / 10;

/** A progress line in the scenario log and on the console (the host prints it as it comes). */
export function say(msg: string): void {
  process.stdout.write(`[${elapsed()}s] ${msg}\n`);
  try {
    appendFileSync("/dev/console", `LAB: progress [${elapsed()}s] ${msg}\n`);
  } catch {
    /* no console: the log file has it */
  }
}

export async function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { code?: number | string; signal?: string; stderr?: string; stdout?: string; killed?: boolean };
    const how = e.killed ? `killed after the ${timeoutMs} ms timeout` : e.signal ? `signal ${e.signal}` : `exit ${String(e.code)}`;
    throw new Error(`${cmd} ${args.join(" ")}: ${how}: ${(e.stderr ?? "").trim().slice(-800)}${(e.stdout ?? "").trim().slice(-400)}`, { cause: err });
  }
}

/** Output, or the error text: for records where a failure is itself the finding. */
export async function capture(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    return await run(cmd, args, timeoutMs);
  } catch (err) {
    return `ERROR: ${(err as Error).message}`;
  }
}

/** stdout and the exit status, for commands whose status is part of the answer (`systemctl is-*`). */
export async function answer(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ stdout: string; code: number }> {
  try {
    const { stdout } = await execFileP(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return { stdout, code: 0 };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string };
    return { stdout: e.stdout ?? "", code: typeof e.code === "number" ? e.code : -1 };
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` every `pollMs` until it gives a value (a probe that throws counts as no value);
 * every 20 s says how the wait is going (`report`), and names it in the timeout's error.
 */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | null>, report?: () => string | Promise<string>, pollMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let nextReport = Date.now() + 20_000;
  for (;;) {
    const v = await probe().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${report ? ` (${await report()})` : ""}`);
    if (report && Date.now() > nextReport) {
      say(`waiting for ${what}: ${await report()}`);
      nextReport = Date.now() + 20_000;
    }
    await sleep(pollMs);
  }
}


/**
 * The guest scenario's command line, `scenarioMain.js SPEC.json RESULTS_DIR`: the spec read and
 * checked by `validate`, the results folder made. Null, with the usage on stderr, when either is missing.
 */
export function scenarioArgs<S>(argv: readonly string[], validate: (spec: S) => void): { spec: S; resultsDir: string } | null {
  const [specPath, resultsDir] = argv;
  if (!specPath || !resultsDir) {
    process.stderr.write("usage: scenarioMain.js SPEC.json RESULTS_DIR\n");
    return null;
  }
  const spec = JSON.parse(readFileSync(specPath, "utf8")) as S;
  validate(spec);
  mkdirSync(resultsDir, { recursive: true });
  return { spec, resultsDir };
}

/** Runs the scenario's main and exits with its code; an escaped error is printed with its stack, exit 1. */
export function exitWithScenario(main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`scenarioMain: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
