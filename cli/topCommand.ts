/**
 * `cage top`: subscribes to the pipeline's aggregates (`agg.window`) and the actuators' states
 * (`act.state`, published on each actuator's own socket) and shows one row per cage: on a
 * terminal a full-screen view with keys, into a pipe plain text blocks or JSON lines.
 * The view itself is pure and lives in cli/topView.ts; docs/top.md describes both.
 */
import { readdirSync, writeSync } from "node:fs";
import { MessageSubscriber } from "../protocol/messageBus.js";
import { Topic } from "../protocol/wireFormat.js";
import { decodeCageAggregates } from "../protocol/cageAggregate.js";
import { decodeActuatorState } from "../protocol/actuatorMessages.js";
import { defaultEndpoints, defaultRuntimeDir } from "../protocol/endpoints.js";
import { COLUMN_IDS, TopModel, Term, applyKey, initialViewState, isColumnId, renderScreen, screenFrame, snapshot, type ColumnId, type ViewState } from "./topView.js";
import { commandUsage, ENDPOINT_FORMAT, parseCommandLine } from "../runtime/commandLine.js";
import { UsageError } from "../runtime/usageError.js";
import { loadConfigFile } from "../config/loadConfig.js";

export interface TopHandle {
  stop(): void;
  done: Promise<void>;
}

/** `screen`: full-screen terminal view with keys; `batch`: text blocks; `json`: one TopSnapshot per line. */
export type TopOutputMode = "screen" | "batch" | "json";

export interface TopOptions {
  /** The pipeline's aggregate endpoint. */
  endpoint: string;
  /** Where the actuators publish act.state. */
  actuatorEndpoints: readonly string[];
  out: NodeJS.WriteStream;
  /** Keys are read from here in screen mode when it is a terminal. */
  input: NodeJS.ReadStream | null;
  mode: TopOutputMode;
  title: string;
  sort?: ColumnId;
  delayS?: number;
  /** Print one refresh (after one delay) and stop. */
  once?: boolean;
  durationMs?: number;
  /** Called on `q` / Ctrl-C instead of stopping the view (the agent's embedded view stops the agent). */
  onQuit?: () => void;
}

/**
 * The actuators' sockets beside an aggregate endpoint in a runtime directory: the agent binds
 * them all in the same directory (protocol/endpoints.ts). Other endpoints have no known neighbours.
 */
export function actuatorEndpointsBeside(aggregateEndpoint: string): string[] {
  const m = /^ipc:\/\/(.+)\/aggregates\.sock$/.exec(aggregateEndpoint);
  if (!m) return [];
  const dir = m[1] as string;
  // External actuators (agent.actuators.external) bind actuator-NAME.sock there too.
  let external: string[] = [];
  try {
    external = readdirSync(dir).flatMap((f) => /^actuator-([a-z][a-z0-9-]{0,31})\.sock$/.exec(f)?.[1] ?? []);
  } catch {
    // No directory (the agent is not running yet): only the built-in endpoints.
  }
  return [...new Set(Object.values(defaultEndpoints(dir, external).actuators ?? {}))];
}

/** Starts the view; stop() (or q, or the end of the stream) restores the terminal and resolves `done`. */
export function startTop(o: TopOptions): TopHandle {
  const sub = new MessageSubscriber();
  sub.connect(o.endpoint);
  for (const ep of o.actuatorEndpoints) sub.connect(ep);
  sub.subscribe(Topic.cageAggregates, Topic.actuatorState);
  const model = new TopModel();
  let state: ViewState = initialViewState(o.sort, o.delayS);
  let lost = 0;
  /** Well-formed frames whose payload did not decode (malformed frames: sub.invalid). */
  let undecodable = 0;
  let stopped = false;
  let failure: unknown = null;
  let timer: NodeJS.Timeout | null = null;
  const screen = o.mode === "screen";
  const keys = screen && o.input !== null && o.input.isTTY === true ? o.input : null;
  const outFd = (o.out as { fd?: number }).fd;

  // On the screen a warning would tear the view apart; the status line counts them instead.
  const warn = (text: string): void => {
    if (!screen) process.stderr.write(`cage top: ${text}\n`);
  };

  const draw = (): void => {
    const now = Date.now();
    model.prune(now);
    const rows = model.rows();
    const invalid = sub.invalid + undecodable;
    if (o.mode === "json") {
      o.out.write(`${JSON.stringify(snapshot(rows, state, o.endpoint, now, lost, invalid))}\n`);
      return;
    }
    const width = screen ? (o.out.columns ?? 80) : Infinity;
    const height = screen ? (o.out.rows ?? 24) : Infinity;
    const lines = renderScreen({ rows, state, title: o.title, lostMessages: lost, invalidFrames: invalid, width, height, interactive: keys !== null });
    o.out.write(screen ? screenFrame(lines, width) : `${lines.join("\n")}\n\n`);
  };

  const refresh = (): void => {
    if (stopped) return;
    try {
      draw();
    } catch (err) {
      failure ??= err;
      stop();
      return;
    }
    if (o.once) stop();
  };
  const arm = (): void => {
    if (timer) clearInterval(timer);
    timer = setInterval(refresh, state.delayS * 1000);
  };

  const restoreTerminal = (): void => {
    if (!screen) return;
    // After a hangup the terminal may be gone: restoring it then fails, and that must not
    // turn a clean stop into a crash.
    try {
      if (keys) {
        keys.setRawMode(false);
        keys.pause();
      }
      // Synchronous so it also happens from the process's 'exit' event.
      const text = Term.showCursor + Term.leaveAltScreen;
      if (outFd !== undefined) writeSync(outFd, text);
      else o.out.write(text);
    } catch {
      // nothing left to restore
    }
  };

  const onKey = (chunk: Buffer | string): void => {
    for (const key of chunk.toString()) {
      const r = applyKey(state, key);
      if (r.quit) {
        if (o.onQuit) o.onQuit();
        else stop();
        return;
      }
      const delayChanged = r.state.delayS !== state.delayS;
      state = r.state;
      if (delayChanged) arm();
    }
    refresh();
  };
  const onResize = (): void => refresh();
  const onInputEnd = (): void => stop();
  // Stays attached after stop(): a write already queued may still fail (EPIPE) afterwards.
  const onOutError = (): void => stop();
  const onExit = (): void => restoreTerminal();
  const stopTimer = o.durationMs !== undefined ? setTimeout(() => stop(), o.durationMs) : null;

  function stop(): void {
    if (stopped) return;
    stopped = true;
    if (timer) clearInterval(timer);
    if (stopTimer) clearTimeout(stopTimer);
    sub.close();
    o.out.off("resize", onResize);
    keys?.off("data", onKey);
    keys?.off("end", onInputEnd);
    process.off("exit", onExit);
    restoreTerminal();
  }

  // From here on every exit path goes through stop(): keys, signals (the caller's), the stream
  // or stdin ending, a failed write, an exception in the loop or a redraw, the process exiting.
  o.out.on("error", onOutError);
  if (screen) {
    process.on("exit", onExit);
    o.out.write(Term.enterAltScreen + Term.hideCursor + Term.home + Term.eraseScreenEnd);
    if (keys) {
      keys.setRawMode(true);
      keys.on("data", onKey);
      keys.on("end", onInputEnd);
      keys.resume();
    }
    o.out.on("resize", onResize);
  }
  arm();
  if (screen) refresh();

  const done = (async () => {
    try {
      for await (const msg of sub.messages((err) => warn(`ignored a bad frame: ${err.message}`))) {
        lost += msg.lostBefore;
        try {
          // Prefix subscriptions also match longer topics: take only the exact ones.
          if (msg.topic === Topic.cageAggregates) {
            const decoded = decodeCageAggregates(msg.payload);
            for (const aggregate of decoded.aggregates) model.add(aggregate);
            undecodable += decoded.rejected.length;
            for (const err of decoded.rejected) warn(`ignored a bad aggregate: ${err.message}`);
          } else if (msg.topic === Topic.actuatorState) model.addState(decodeActuatorState(msg.payload), Date.now());
        } catch (err) {
          undecodable++;
          warn(`ignored a bad ${msg.topic} message: ${(err as Error).message}`);
        }
      }
    } catch (err) {
      failure ??= err;
    } finally {
      stop();
    }
    if (failure !== null) throw failure instanceof Error ? failure : new Error(`cage top: ${JSON.stringify(failure)}`);
  })();
  return { stop, done };
}

/** The live view `cage run --top` shows while the agent runs; q and Ctrl-C stop the agent (SIGINT). */
export function startTopView(endpoint: string, out: NodeJS.WriteStream, header: string, durationMs?: number): TopHandle {
  return startTop({
    endpoint,
    actuatorEndpoints: actuatorEndpointsBeside(endpoint),
    out,
    input: process.stdin,
    mode: out.isTTY ? "screen" : "batch",
    title: header,
    durationMs,
    onQuit: () => process.kill(process.pid, "SIGINT"),
  });
}

export interface TopFlags {
  endpoint: string;
  actuatorEndpoints: string[];
  mode: TopOutputMode;
  once: boolean;
  delayS: number;
  sort: ColumnId;
  durationS: number | undefined;
}

/** All of `cage top`'s command line, in one place. */
export const TOP_COMMAND = {
  program: "cage top",
  summary: "Live per-cage view of a running agent (docs/top.md).",
  flags: {
    config: { type: "string", value: "FILE", help: "the running agent's cage file (for its agent.runtimeDir)" },
    endpoint: { type: "string", value: "EP", format: ENDPOINT_FORMAT, help: "the pipeline's aggregates (default: the runtime dir's aggregates.sock)" },
    actuators: { type: "string", value: "EP,...|none", help: "where the actuators publish act.state (default: beside an ipc:// aggregate endpoint)" },
    json: { type: "boolean", help: "one JSON snapshot per refresh, a line each" },
    batch: { type: "boolean", help: "plain text blocks (the default when stdout is not a terminal)" },
    once: { type: "boolean", help: "print one refresh, then exit" },
    delay: { type: "number", value: "SECONDS", min: 0.1, help: "refresh interval (default 1)" },
    sort: { type: "string", value: "COLUMN", choices: COLUMN_IDS, help: "sort column (default cage)" },
    duration: { type: "number", value: "SECONDS", min: 0.1, help: "stop after this long (default: until q or Ctrl-C)" },
  },
} as const;

export const TOP_USAGE = commandUsage(TOP_COMMAND);

export function parseTopFlags(args: string[], stdoutIsTTY: boolean): TopFlags {
  const { values } = parseCommandLine(TOP_COMMAND, args);
  let endpoint = values.endpoint;
  if (!endpoint) {
    const dir = values.config ? (loadConfigFile(values.config).agent.runtimeDir ?? defaultRuntimeDir()) : defaultRuntimeDir();
    endpoint = defaultEndpoints(dir).aggregates;
  }
  const actuators = values.actuators;
  const actuatorEndpoints = actuators === undefined ? actuatorEndpointsBeside(endpoint) : actuators === "none" ? [] : actuators.split(",");
  if (actuatorEndpoints.some((e) => e === "")) throw new UsageError(`cage top: --actuators: empty endpoint in ${JSON.stringify(actuators)}`);
  const sort = values.sort ?? "cage";
  // The spec's choices already hold every column id; this narrows the type.
  if (!isColumnId(sort)) throw new UsageError(`cage top: --sort: unknown column ${JSON.stringify(sort)}`);
  if (values.json && values.batch) throw new UsageError("cage top: --json and --batch: choose one");
  const mode: TopOutputMode = values.json ? "json" : values.batch || values.once || !stdoutIsTTY ? "batch" : "screen";
  return { endpoint, actuatorEndpoints, mode, once: values.once, delayS: values.delay ?? 1, sort, durationS: values.duration };
}

export async function runTop(args: string[]): Promise<number> {
  const f = parseTopFlags(args, process.stdout.isTTY === true);
  const view = startTop({
    endpoint: f.endpoint,
    actuatorEndpoints: f.actuatorEndpoints,
    out: process.stdout,
    input: process.stdin,
    mode: f.mode,
    title: `cage top  ${f.endpoint}`,
    sort: f.sort,
    delayS: f.delayS,
    once: f.once,
    durationMs: f.durationS === undefined ? undefined : f.durationS * 1000,
  });
  const stop = (): void => view.stop();
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  for (const s of signals) process.on(s, stop);
  try {
    await view.done;
  } finally {
    for (const s of signals) process.off(s, stop);
    view.stop();
  }
  return 0;
}
