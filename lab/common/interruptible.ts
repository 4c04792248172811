/**
 * Runs a lab command until it ends or SIGINT/SIGTERM asks it to stop: the signal aborts the
 * lab's AbortSignal (the lab stops and cleans up after itself) and the exit code is then a
 * shell's for that signal, 130 or 143, whatever the lab returned or threw on its way out.
 */
export async function runInterruptible(program: string, run: (signal: AbortSignal, progress: (line: string) => void) => Promise<number>): Promise<number> {
  const abort = new AbortController();
  let received: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    received = sig;
    process.stderr.write(`${program}: ${sig}: stopping and cleaning up\n`);
    abort.abort();
  };
  const exitCode = (sig: NodeJS.Signals): number => (sig === "SIGINT" ? 130 : 143);
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const code = await run(abort.signal, (line) => process.stderr.write(`${program}: ${line}\n`));
    return received === null ? code : exitCode(received);
  } catch (err) {
    if (received !== null) return exitCode(received);
    throw err;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
