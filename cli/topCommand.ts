/** `cage top`: subscribes to the pipeline's aggregates and redraws the cage table each second. */
import { MessageSubscriber } from "../protocol/messageBus.js";
import { Topic } from "../protocol/wireFormat.js";
import { decodeCageAggregate } from "../protocol/cageAggregate.js";
import { defaultEndpoints, defaultRuntimeDir } from "../protocol/endpoints.js";
import { TopModel, renderTop } from "./topView.js";
import { commandUsage, ENDPOINT_FORMAT, parseCommandLine } from "../runtime/commandLine.js";
import { loadConfigFile } from "../config/loadConfig.js";

export interface TopHandle {
  stop(): void;
  done: Promise<void>;
}

/** Starts the live view on `out`; used by `cage top` and by `cage run` in demo mode. */
export function startTopView(endpoint: string, out: NodeJS.WriteStream, header: string, durationMs?: number): TopHandle {
  const sub = new MessageSubscriber();
  sub.connect(endpoint);
  sub.subscribe(Topic.cageAggregate);
  const model = new TopModel();
  let lost = 0;
  const draw = (): void => {
    model.prune(Date.now());
    const text = renderTop(model.rows(), `${header}   lost messages: ${lost}   invalid frames: ${sub.invalid}`);
    // On a terminal redraw in place; into a pipe or file print one block per second.
    out.write(out.isTTY ? `\x1b[H\x1b[2J${text}\n` : `${text}\n\n`);
  };
  const timer = setInterval(draw, 1_000);
  const stopTimer = durationMs !== undefined ? setTimeout(() => handle.stop(), durationMs) : null;
  const done = (async () => {
    for await (const msg of sub.messages((err) => process.stderr.write(`cage top: ignored a bad frame: ${err.message}\n`))) {
      lost += msg.lostBefore;
      try {
        model.add(decodeCageAggregate(msg.payload));
      } catch (err) {
        process.stderr.write(`cage top: ignored a bad aggregate: ${(err as Error).message}\n`);
      }
    }
  })();
  const handle: TopHandle = {
    stop: () => {
      clearInterval(timer);
      if (stopTimer) clearTimeout(stopTimer);
      sub.close();
    },
    done,
  };
  return handle;
}

export const TOP_COMMAND = {
  program: "cage top",
  summary: "Live per-cage view of a running agent.",
  flags: {
    config: { type: "string", value: "FILE", help: "the running agent's cage file (for its agent.runtimeDir)" },
    endpoint: { type: "string", value: "EP", format: ENDPOINT_FORMAT, help: "the pipeline's aggregates (default: the runtime dir's aggregates.sock)" },
    duration: { type: "number", value: "SECONDS", min: 0.1, help: "stop after this long (default: until Ctrl-C)" },
  },
} as const;

export const TOP_USAGE = commandUsage(TOP_COMMAND);

export async function runTop(args: string[]): Promise<number> {
  const { values } = parseCommandLine(TOP_COMMAND, args);
  let endpoint = values.endpoint;
  if (!endpoint) {
    const configPath = values.config;
    const dir = configPath ? (loadConfigFile(configPath).agent.runtimeDir ?? defaultRuntimeDir()) : defaultRuntimeDir();
    endpoint = defaultEndpoints(dir).aggregates;
  }
  const duration = values.duration;
  const view = startTopView(endpoint, process.stdout, `cage top  (${endpoint})`, duration === undefined ? undefined : duration * 1000);
  const stop = (): void => view.stop();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  await view.done;
  return 0;
}
