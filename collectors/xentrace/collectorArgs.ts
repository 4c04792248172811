// Command line of the xentrace collector process (pure: parsing and checks only).

import { integerFlag, readFlags, requireEndpoint } from "../../runtime/processFlags.js";
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

const PROGRAM = "collector-xentrace";

function fail(message: string): never {
  throw new XentraceCollectorArgsError(message);
}

export function parseXentraceCollectorArgs(argv: readonly string[]): XentraceCollectorArgs {
  const flags = readFlags(argv, { program: PROGRAM, valued: ["--endpoint", "--cpu-hz", "--window-ms", "--xentrace", "--xl"], switches: ["--no-names"] }, fail);
  const endpoint = requireEndpoint(flags, PROGRAM, fail);
  let cpuHz: number | undefined;
  const hzText = flags.values.get("--cpu-hz");
  if (hzText !== undefined) {
    try {
      cpuHz = parseCpuHz(hzText);
    } catch (err) {
      fail(`${PROGRAM}: ${(err as Error).message}`);
    }
  }
  return {
    endpoint,
    cpuHz,
    windowMs: integerFlag(flags, "--window-ms", { program: PROGRAM, min: 50, max: 3_600_000 }, fail) ?? 1000,
    xentracePath: flags.values.get("--xentrace") ?? "xentrace",
    xlPath: flags.values.get("--xl") ?? "xl",
    domainNames: !flags.switches.has("--no-names"),
  };
}
