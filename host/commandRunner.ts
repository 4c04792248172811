/**
 * Runs the agent's external commands (xl, virsh) without a shell: execFile with an argv
 * array, a timeout, and every argument checked first. Errors name the command line and carry
 * why it failed, its exit code and stderr, so a failed decision says exactly what went wrong.
 */
import { execFile, type ChildProcess } from "node:child_process";

export const COMMAND_TIMEOUT_MS = 10_000;

/** refused: an argument we will not pass; missing/denied: the program cannot be run; timeout; exit: non-zero exit. */
export type CommandFailure = "refused" | "missing" | "denied" | "timeout" | "exit";

export class CommandError extends Error {
  override readonly name = "CommandError";
  constructor(
    readonly commandLine: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    message: string,
    readonly failure: CommandFailure = "exit",
  ) {
    super(message);
  }
}

export function isCommandError(err: unknown): err is CommandError {
  return err instanceof CommandError;
}

function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** An argument we are willing to pass: printable, no NUL, not empty, at most 256 characters. */
export function checkArgv(program: string, args: readonly string[]): void {
  if (!/^[A-Za-z0-9_./-]+$/.test(program) || program.startsWith("-")) throw new CommandError(program, null, "", `refusing to run ${JSON.stringify(program)}: not a plain program name or path`, "refused");
  for (const a of args) {
    if (typeof a !== "string" || a === "" || a.length > 256 || hasControlCharacter(a)) {
      throw new CommandError(`${program} ${args.join(" ")}`, null, "", `refusing to run ${program}: bad argument ${JSON.stringify(a)}`, "refused");
    }
  }
}

export interface CommandOutput {
  stdout: string;
  stderr: string;
}

/** Commands still running; killed when this process exits, so a hanging one never outlives us. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const c of running) c.kill("SIGKILL");
    });
  }
  running.add(child);
  child.once("close", () => running.delete(child));
}

/** Runs `program args...`; resolves with its output when it exits 0, else rejects with a CommandError. */
export function runCommand(program: string, args: readonly string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<CommandOutput> {
  checkArgv(program, args);
  const line = [program, ...args].join(" ");
  return new Promise((resolve, reject) => {
    const child = execFile(program, args, { timeout: timeoutMs, maxBuffer: 1 << 20, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err === null) {
        resolve({ stdout, stderr });
        return;
      }
      const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string };
      const firstLine = stderr.trim().split("\n")[0] ?? "";
      if (e.code === "ENOENT") reject(new CommandError(line, null, stderr, `\`${line}\`: ${program} ${program.includes("/") ? "does not exist" : "not found on PATH"}`, "missing"));
      else if (e.code === "EACCES") reject(new CommandError(line, null, stderr, `\`${line}\`: ${program}: permission denied (not executable?)`, "denied"));
      else if (e.killed === true || e.signal) reject(new CommandError(line, null, stderr, `\`${line}\`: killed after ${timeoutMs} ms (${e.signal ?? "timeout"})`, "timeout"));
      else reject(new CommandError(line, typeof e.code === "number" ? e.code : null, stderr, `\`${line}\` exited ${String(e.code)}${firstLine === "" ? "" : `: ${firstLine}`}`));
    });
    track(child);
  });
}
