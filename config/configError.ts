/**
 * A configuration that cannot be used. It carries every problem found, not just the first, so
 * `cage validate` can show them all in one run.
 */

export interface ConfigProblem {
  /** Where in the file, e.g. `cages[1].cpu.cap`; "" for the file as a whole. */
  path: string;
  message: string;
  /** 1-based line in the file, when known. */
  line?: number;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly fileName: string,
    readonly problems: ConfigProblem[],
  ) {
    super(
      `${fileName}: ${problems.length} problem${problems.length === 1 ? "" : "s"}:\n` +
        problems.map((p) => `  ${formatConfigProblem(fileName, p)}`).join("\n"),
    );
  }
}

export function isConfigError(err: unknown): err is ConfigError {
  return err instanceof ConfigError;
}

/** `FILE:LINE: path: message`, the form editors and CI logs link to. */
export function formatConfigProblem(fileName: string, p: ConfigProblem): string {
  const where = p.line === undefined ? fileName : `${fileName}:${p.line}`;
  return p.path === "" ? `${where}: ${p.message}` : `${where}: ${p.path}: ${p.message}`;
}
