// Command line of the xentrace collector process (pure: parsing and checks only).

import { parseCpuHz } from "./summarizeCommand.js";

export const XENTRACE_COLLECTOR_USAGE =
  "usage: cage collector xentrace --endpoint ipc:///PATH|tcp://HOST:PORT [--cpu-hz HZ] [--window-ms N] [--xentrace PATH] [--xl PATH] [--no-names]";

export interface XentraceCollectorArgs {
  /** Where to bind the PUB socket. */
  endpoint: string;
  /** TSC rate; undefined = read `xl info`. */
  cpuHz: number | undefined;
  windowMs: number;
  xentracePath: string;
  xlPath: string;
  /** Look domain names up with `xl list`. */
  domainNames: boolean;
}

/** A bad command line; `message` is exactly what the user sees (before the usage line). */
export class XentraceCollectorArgsError extends Error {
  override readonly name = "XentraceCollectorArgsError";
}

const VALUED = ["--endpoint", "--cpu-hz", "--window-ms", "--xentrace", "--xl"] as const;
type Valued = (typeof VALUED)[number];
const PREFIX = "collector-xentrace:";

export function parseXentraceCollectorArgs(argv: readonly string[]): XentraceCollectorArgs {
  const values = new Map<Valued, string>();
  let domainNames = true;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--no-names") {
      domainNames = false;
      continue;
    }
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (!(VALUED as readonly string[]).includes(name)) throw new XentraceCollectorArgsError(`${PREFIX} unknown argument ${JSON.stringify(arg)}`);
    const flag = name as Valued;
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith("--")) throw new XentraceCollectorArgsError(`${PREFIX} ${flag} needs a value`);
      i++;
    }
    if (value === "") throw new XentraceCollectorArgsError(`${PREFIX} ${flag} must not be empty`);
    if (values.has(flag)) throw new XentraceCollectorArgsError(`${PREFIX} ${flag} given twice`);
    values.set(flag, value);
  }

  const endpoint = values.get("--endpoint");
  if (endpoint === undefined) throw new XentraceCollectorArgsError(`${PREFIX} --endpoint is required`);
  if (!/^(ipc:\/\/\/.+|tcp:\/\/.+:[0-9]+)$/.test(endpoint)) {
    throw new XentraceCollectorArgsError(`${PREFIX} --endpoint must be ipc:///absolute/path or tcp://HOST:PORT, got ${JSON.stringify(endpoint)}`);
  }

  let cpuHz: number | undefined;
  const hzText = values.get("--cpu-hz");
  if (hzText !== undefined) {
    try {
      cpuHz = parseCpuHz(hzText);
    } catch (err) {
      throw new XentraceCollectorArgsError(`${PREFIX} ${(err as Error).message}`);
    }
  }

  let windowMs = 1000;
  const windowText = values.get("--window-ms");
  if (windowText !== undefined) {
    windowMs = Number(windowText);
    if (!/^[0-9]+$/.test(windowText) || windowMs < 50 || windowMs > 3_600_000) {
      throw new XentraceCollectorArgsError(`${PREFIX} --window-ms must be an integer from 50 to 3600000, got ${JSON.stringify(windowText)}`);
    }
  }

  return {
    endpoint,
    cpuHz,
    windowMs,
    xentracePath: values.get("--xentrace") ?? "xentrace",
    xlPath: values.get("--xl") ?? "xl",
    domainNames,
  };
}
