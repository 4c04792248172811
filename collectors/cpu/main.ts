/**
 * The CPU collector process: bpftrace windows in, `raw.cpu` batches and `status` messages out.
 *   node dist/collectors/cpu/main.js --interval-ms 100 --endpoint ipc:///run/offloadcage/cpu.sock
 */
import { pino } from "pino";
import { pathToFileURL } from "node:url";
import { stopWhenParentDies } from "../../runtime/parentWatch.js";
import type { CollectorStatus } from "../../protocol/cageAggregate.js";
import { encodeJson } from "../../protocol/cageAggregate.js";
import { MessagePublisher } from "../../protocol/messageBus.js";
import { encodeCpuBatch } from "../../protocol/rawBatches.js";
import { Encoding, Topic } from "../../protocol/wireFormat.js";
import { commandLineExitCode } from "../../runtime/commandLine.js";
import { parseCpuCollectorArgs } from "./cliOptions.js";
import { startCpuTimeSource, type CpuTimeSource } from "./cpuTimeSource.js";

const STATUS_EVERY_MS = 5_000;

export async function main(argv: string[]): Promise<number> {
  let opts;
  try {
    opts = parseCpuCollectorArgs(argv);
  } catch (err) {
    return commandLineExitCode(err, process.stdout, process.stderr);
  }
  const log = pino({ name: "collector-cpu" }, pino.destination(2));
  const publisher = new MessagePublisher();
  try {
    await publisher.bind(opts.endpoint);
  } catch (err) {
    log.error(`cannot bind ${opts.endpoint}: ${(err as Error).message}`);
    await publisher.close();
    return 1;
  }

  let source: CpuTimeSource | null = null;
  let state = "started";
  let message: string | undefined;
  const publishStatus = (): void => {
    const status: CollectorStatus = {
      v: 1, collector: "cpu", state, counters: { ...source?.counters, publishFailed: publisher.failed }, timeMs: Date.now(),
    };
    if (message !== undefined) status.message = message;
    void publisher.publish(Topic.status, Encoding.json, encodeJson(status));
  };
  const setState = (next: string, why?: string): void => {
    const changed = next !== state || why !== message;
    state = next;
    message = why;
    if (changed) publishStatus();
  };
  publishStatus();

  try {
    source = await startCpuTimeSource({
      intervalMs: opts.intervalMs,
      mapKeysMax: opts.mapKeysMax,
      onBatch: (b) => void publisher.publish(Topic.rawCpu, Encoding.cpuBatch, encodeCpuBatch(b)),
      onEvent: (e) => {
        log[e.level](e.message);
        if (e.level === "warn" && e.message.includes("restarting")) setState("restarting", e.message);
        else if (e.message.startsWith("bpftrace restarted")) setState("running", e.message);
        else if (e.level !== "info") publishStatus();
      },
    });
  } catch (err) {
    const why = (err as Error).message;
    log.error(why);
    setState("error", why);
    // Give subscribers a moment to receive the error status; the supervisor restarts us.
    await new Promise((r) => setTimeout(r, 500));
    await publisher.close();
    return 1;
  }
  setState("running");
  log.info({ intervalMs: opts.intervalMs, endpoint: opts.endpoint, bpftracePid: source.bpftracePid }, "cpu collector running");
  const statusTimer = setInterval(publishStatus, STATUS_EVERY_MS);

  const running = source;
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string): void => {
      log.info({ signal }, "stopping");
      resolve();
    };
    process.once("SIGINT", () => shutdown("SIGINT"));
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    stopWhenParentDies();
  });
  clearInterval(statusTimer);
  await running.stop(); // publishes the last partial window
  setState("stopped");
  await publisher.close();
  log.info(running.counters, "stopped");
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`collector-cpu: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
