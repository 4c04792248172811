/** A command line the program cannot run: printed with the program's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";

  /** `usage`: the usage text of the command that refused the line, printed after the message. */
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
  }
}

export function isUsageError(err: unknown): err is UsageError {
  return err instanceof UsageError;
}

/**
 * `--help`/`-h` on a command line whose parse function cannot return it: not an error, the
 * caller prints `usage` on stdout and exits 0. Not a UsageError, so no caller mistakes it for one.
 */
export class HelpRequested extends Error {
  override readonly name = "HelpRequested";

  constructor(readonly usage: string) {
    super("help requested");
  }
}

export function isHelpRequested(err: unknown): err is HelpRequested {
  return err instanceof HelpRequested;
}
