/**
 * The xentrace collector process: `cage collector xentrace --endpoint ipc://... [--cpu-hz HZ]
 * [--window-ms N] [--xentrace PATH] [--xl PATH] [--no-names] [--cr3]`, or this file run directly with the
 * same arguments. Exit 2 = bad arguments (restarting won't help), 1 = cannot bind the socket.
 */
// First: a parent that dies while the modules below load must not leave us behind.
import "../../runtime/armParentWatch.js";
import { openPublisher } from "../../runtime/processEntry.js";
import { ExitCode, runIfEntry, runProcess, STOP_TIMEOUT_MS, type ProcessSpec } from "../../runtime/processRuntime.js";
import type { MessagePublisher } from "../../protocol/messageBus.js";
import { XENTRACE_COLLECTOR_USAGE, parseXentraceCollectorArgs, type XentraceCollectorArgs } from "./collectorArgs.js";
import { LiveXentrace } from "./liveTrace.js";
import { CR3_XENTRACE_ARGS } from "./liveWindow.js";

export const xentraceCollectorProcess: ProcessSpec<XentraceCollectorArgs, { collector: LiveXentrace; publisher: MessagePublisher }> = {
  name: "collector-xentrace",
  usage: XENTRACE_COLLECTOR_USAGE,
  parseArgs: parseXentraceCollectorArgs,
  stopTimeoutMs: STOP_TIMEOUT_MS["collector-xentrace"],
  async start(args, { log }) {
    const publisher = await openPublisher(args.endpoint, log);
    if (!publisher) throw new ExitCode(1, `cannot bind ${args.endpoint}`);
    const collector = new LiveXentrace({
      publisher,
      log,
      cpuHz: args.cpuHz,
      windowMs: args.windowMs,
      xentracePath: args.xentracePath,
      xlPath: args.xlPath,
      domainNames: args.domainNames,
      ...(args.cr3 ? { xentraceArgs: CR3_XENTRACE_ARGS } : {}),
    });
    collector.start();
    log.info({ endpoint: args.endpoint, windowMs: args.windowMs, cpuHz: args.cpuHz ?? "from xl info", xentrace: args.xentracePath, cr3: args.cr3 }, "xentrace collector started");
    return { collector, publisher };
  },
  async stop({ collector, publisher }, { log }) {
    await collector.stop();
    log.info({ counters: collector.counters }, "xentrace stopped");
    await publisher.close();
  },
};

/** `cage collector xentrace ARGS`: runs the collector until SIGINT/SIGTERM; returns the exit code. */
export function runXentraceCollector(argv: string[]): Promise<number> {
  return runProcess(xentraceCollectorProcess, argv);
}

runIfEntry(import.meta.url, xentraceCollectorProcess);
