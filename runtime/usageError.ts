/** A command line the program cannot run: printed with the program's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export function isUsageError(err: unknown): err is UsageError {
  return err instanceof UsageError;
}
