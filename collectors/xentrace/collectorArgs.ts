// Command line of the xentrace collector process (pure: parsing and checks only).

import { commandUsage, ENDPOINT_FORMAT, parseCommandLine } from "../../runtime/commandLine.js";
import { UsageError } from "../../runtime/usageError.js";
import { parseCpuHz } from "./summarizeCommand.js";

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
  /** Trace HVM CR3 writes too (CR3_XENTRACE_ARGS): raw.xen then carries per-CR3 run time. */
  cr3: boolean;
}

export const XENTRACE_COLLECTOR_COMMAND = {
  program: "cage collector xentrace",
  summary: "Run xentrace live in a Xen dom0 and publish per-domain CPU time on raw.xen.",
  flags: {
    endpoint: { type: "string", value: "EP", format: ENDPOINT_FORMAT, required: true, help: "where to bind the PUB socket" },
    "cpu-hz": { type: "string", value: "HZ", help: "TSC rate, e.g. 2596M (default: from `xl info`)" },
    "window-ms": { type: "integer", value: "N", min: 50, max: 3_600_000, help: "window length, ms (default 1000)" },
    xentrace: { type: "string", value: "PATH", help: "the xentrace program (default xentrace)" },
    xl: { type: "string", value: "PATH", help: "the xl program (default xl)" },
    "no-names": { type: "boolean", help: "do not look domain names up with `xl list`" },
    cr3: { type: "boolean", help: "also trace HVM CR3 writes: per-address-space run time in raw.xen (IDS-VMs with cr3From: helper)" },
  },
} as const;

export const XENTRACE_COLLECTOR_USAGE = commandUsage(XENTRACE_COLLECTOR_COMMAND);

/** Throws runtime/usageError.ts's UsageError, or HelpRequested for --help. */
export function parseXentraceCollectorArgs(argv: readonly string[]): XentraceCollectorArgs {
  const { values } = parseCommandLine(XENTRACE_COLLECTOR_COMMAND, argv);
  let cpuHz: number | undefined;
  if (values["cpu-hz"] !== undefined) {
    try {
      cpuHz = parseCpuHz(values["cpu-hz"]);
    } catch (err) {
      throw new UsageError(`${XENTRACE_COLLECTOR_COMMAND.program}: ${(err as Error).message}`, XENTRACE_COLLECTOR_USAGE);
    }
  }
  return {
    endpoint: values.endpoint,
    cpuHz,
    windowMs: values["window-ms"] ?? 1000,
    xentracePath: values.xentrace ?? "xentrace",
    xlPath: values.xl ?? "xl",
    domainNames: !values["no-names"],
    cr3: values.cr3 === true,
  };
}
