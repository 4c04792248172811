/**
 * The CPU collector process: eBPF program windows in, `raw.cpu` batches and `status` messages out.
 *   node dist/collectors/cpu/main.js --interval-ms 100 --endpoint ipc:///run/offloadcage/cpu.sock
 * Exit 2 = bad arguments, 1 = could not start (bpftrace, socket).
 */
// First: a parent that dies while the modules below load must not leave us behind.
import "../../runtime/armParentWatch.js";
import { CollectorStatusPublisher } from "../../runtime/collectorStatus.js";
import { openPublisher } from "../../runtime/processEntry.js";
import { ExitCode, runIfEntry, STOP_TIMEOUT_MS, type ProcessSpec } from "../../runtime/processRuntime.js";
import type { MessagePublisher } from "../../protocol/messageBus.js";
import { encodeCpuBatch } from "../../protocol/rawBatches.js";
import { Encoding, Topic } from "../../protocol/wireFormat.js";
import { CPU_COLLECTOR_USAGE, parseCpuCollectorArgs, type CpuCollectorOptions } from "./cliOptions.js";
import { startCpuTimeSource, type CpuTimeSource } from "./cpuTimeSource.js";

const STATUS_EVERY_MS = 5_000;

interface CpuCollector {
  publisher: MessagePublisher;
  source: CpuTimeSource;
  status: CollectorStatusPublisher;
}

export const cpuCollectorProcess: ProcessSpec<CpuCollectorOptions, CpuCollector> = {
  name: "collector-cpu",
  usage: CPU_COLLECTOR_USAGE,
  parseArgs: parseCpuCollectorArgs,
  stopTimeoutMs: STOP_TIMEOUT_MS["collector-cpu"],
  async start(opts, { log, signal }) {
    const publisher = await openPublisher(opts.endpoint, log);
    if (!publisher) throw new ExitCode(1, `cannot bind ${opts.endpoint}`);
    let source: CpuTimeSource | null = null;
    const status = new CollectorStatusPublisher({
      collector: "cpu",
      publisher,
      log,
      counters: () => ({ ...source?.counters, publishFailed: publisher.failed }),
    });
    status.publish();
    try {
      source = await startCpuTimeSource({
        intervalMs: opts.intervalMs,
        mapKeysMax: opts.mapKeysMax,
        program: opts.program,
        signal,
        onBatch: (b) => void publisher.publish(Topic.rawCpu, Encoding.cpuBatch, encodeCpuBatch(b)),
        onEvent: (e) => {
          log[e.level](e.message);
          if (e.state === "restarting") status.set("restarting", e.message);
          else if (e.state === "running") status.set("running", e.message);
          else if (e.level !== "info") status.publish();
        },
      });
    } catch (err) {
      if (!signal.aborted) {
        status.set("error", (err as Error).message);
        // Give subscribers a moment to receive the error status; the supervisor restarts us.
        await new Promise((r) => setTimeout(r, 500));
      }
      await publisher.close();
      throw err;
    }
    status.set("running");
    status.startPeriodic(STATUS_EVERY_MS);
    log.info({ intervalMs: opts.intervalMs, endpoint: opts.endpoint, program: source.program, pid: source.bpftracePid }, "cpu collector running");
    return { publisher, source, status };
  },
  async stop({ publisher, source, status }, { log }) {
    status.stopPeriodic();
    await source.stop(); // publishes the last partial window
    status.set("stopped");
    await publisher.close();
    log.info(source.counters, "stopped");
  },
};

runIfEntry(import.meta.url, cpuCollectorProcess);
