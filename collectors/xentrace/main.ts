/**
 * The xentrace collector process: `cage collector xentrace --endpoint ipc://... [--cpu-hz HZ]
 * [--window-ms N] [--xentrace PATH] [--xl PATH] [--no-names]`, or this file run directly with the
 * same arguments. Exit 2 = bad arguments (restarting won't help), 1 = cannot bind the socket.
 */
import { pino } from "pino";
import { stopWhenParentDies } from "../../runtime/parentWatch.js";
import { argsOrReport, isEntryModule, openPublisher, runEntry, waitForStopSignal } from "../../runtime/processEntry.js";
import { isUsageError } from "../../runtime/usageError.js";
import { XENTRACE_COLLECTOR_USAGE, parseXentraceCollectorArgs } from "./collectorArgs.js";
import { LiveXentrace } from "./liveTrace.js";

/** Runs the collector until SIGINT/SIGTERM; returns the exit code. */
export async function runXentraceCollector(argv: string[]): Promise<number> {
  stopWhenParentDies();
  const args = argsOrReport(() => parseXentraceCollectorArgs(argv), isUsageError, XENTRACE_COLLECTOR_USAGE);
  if (!args) return 2;
  // Listen before anything slow, so an early SIGTERM still takes the clean path.
  const signalled = waitForStopSignal();

  const log = pino({ name: "collector-xentrace" }, pino.destination(2));
  const publisher = await openPublisher(args.endpoint, log);
  if (!publisher) return 1;

  const collector = new LiveXentrace({
    publisher,
    log,
    cpuHz: args.cpuHz,
    windowMs: args.windowMs,
    xentracePath: args.xentracePath,
    xlPath: args.xlPath,
    domainNames: args.domainNames,
  });
  collector.start();
  log.info({ endpoint: args.endpoint, windowMs: args.windowMs, cpuHz: args.cpuHz ?? "from xl info", xentrace: args.xentracePath }, "xentrace collector started");

  const signal = await signalled;
  log.info({ signal }, "stopping");
  // A stuck child or socket must not keep us alive: the supervisor waits for our exit.
  setTimeout(() => process.exit(0), 8000).unref();
  await collector.stop();
  log.info({ counters: collector.counters }, "stopped");
  await publisher.close();
  log.flush();
  return 0;
}

if (isEntryModule(import.meta.url)) runEntry("collector-xentrace", () => runXentraceCollector(process.argv.slice(2)));
