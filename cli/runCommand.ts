/**
 * `cage run [--config FILE]`: starts the collectors, the pipeline and the configured actuators
 * as supervised children. `cage demo` runs the embedded demo (demo workloads + one cage) and
 * shows `cage top`.
 *
 * Every agent child is started the same way: node with that process's own main.js. Its
 * command line then names the process (the pipeline's agent footprint and the tests find
 * children by it), and no child loads the CLI dispatcher it does not need.
 *
 * With the top view on, the children's log lines and our own go to RUNTIME_DIR/agent.log
 * (printed in the view's header and when we exit), never over the view.
 */
import { createWriteStream, existsSync, readFileSync, renameSync, rmSync, writeFileSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { AgentConfig, ExternalActuatorSpec } from "../config/cageConfig.js";
import { formatConfigProblem, isConfigError } from "../config/configError.js";
import { loadConfigFile, parseConfigText } from "../config/loadConfig.js";
import { defaultEndpoints, defaultRuntimeDir, ensurePrivateDir, type Endpoints } from "../protocol/endpoints.js";
import { Supervisor, type ChildSpec } from "../runtime/supervisor.js";
import type { Logger } from "pino";
import { createLogger, LOG_LEVEL_ENV } from "../runtime/logger.js";
import { STOP_TIMEOUT_MS, type AgentProcessName } from "../runtime/processRuntime.js";
import { SUPERVISOR_BACKOFF } from "../runtime/restartBackoff.js";
import { UsageError } from "../runtime/usageError.js";
import { demoConfigDocument } from "./demo/demoConfig.js";
import { parseDemoArgs, parseRunArgs, RUN_USAGE } from "./runOptions.js";
import type { TopHandle } from "./topCommand.js";
import { releaseOwnPageCacheGroups } from "../collectors/pagecache/idsPlacer.js";
import { releaseActuatorLeftovers } from "../actuators/common/actuatorLeftovers.js";

const entry = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));

/** The file `cage run --top` logs to, in the agent's runtime directory. */
export function agentLogPath(runtimeDir: string): string {
  return join(runtimeDir, "agent.log");
}

/** `mode` "demo": `cage demo`'s command line and the embedded demo; "run": `cage run`'s. */
export async function runAgent(args: string[], mode: "run" | "demo" = "run"): Promise<number> {
  const opts = mode === "demo" ? parseDemoArgs(args) : parseRunArgs(args);
  if (opts.defaultConfig && opts.configPath !== null && !existsSync(opts.configPath)) {
    throw new UsageError(`cage run: no cage file at ${opts.configPath}; give one with --config FILE, or try the embedded demo with \`cage demo\``, RUN_USAGE);
  }
  const durationS = opts.durationS;
  let configPath = opts.configPath ?? undefined;
  const demo = configPath === undefined;
  const showTop = opts.top;

  const demoDir = join(defaultRuntimeDir(), "demo");
  if (demo) {
    ensurePrivateDir(demoDir);
    configPath = join(demoDir, "demo-config.json");
    writeFileSync(configPath, JSON.stringify(demoConfigDocument(demoDir, opts.prometheusPort, opts.influxUrl), null, 2));
  }
  // Loading validates: a bad file stops here with every problem listed (ConfigError).
  const loaded = readCageFile(configPath as string);
  let config = loaded.config;
  const runtimeDir = demo ? demoDir : (config.agent.runtimeDir ?? defaultRuntimeDir());
  ensurePrivateDir(runtimeDir);
  const endpoints = defaultEndpoints(runtimeDir);
  // The children read the config cage run accepted, not the operator's file: an edit reaches
  // them only through a reload that validated it (a child restarted after a crash included).
  const cfg = demo ? (configPath as string) : activeConfigPath(runtimeDir);
  if (!demo) writeActiveConfig(cfg, loaded.text);

  const logFile = showTop ? agentLogPath(runtimeDir) : null;
  const log = createLogger("cage-run", config.agent.logLevel, logFile ?? undefined);
  let childOutput: WriteStream | null = null;
  if (logFile !== null) childOutput = createWriteStream(logFile, { flags: "a" });
  const supervisor = new Supervisor(log, SUPERVISOR_BACKOFF, undefined, childOutput ?? process.stderr);
  const childContext: ChildContext = { cfg, runtimeDir, endpoints, demo };
  // SIGHUP (systemctl reload): one reload at a time, in the order asked; none once stopping.
  // With the live view (cage demo, cage run --top) it is the terminal hanging up: a stop.
  const hangUpStops = demo || showTop;
  let stopping = false;
  let reloads = Promise.resolve();
  const onHangUp = (): void => {
    reloads = reloads.then(() => {
      if (!stopping) config = reloadConfig(configPath as string, config, childContext, supervisor, log);
    });
  };
  if (!hangUpStops) process.on("SIGHUP", onHangUp);

  // Listening before any child starts: a signal in between must not kill us with children left.
  const stopRequested = new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    if (hangUpStops) process.once("SIGHUP", stop);
    if (durationS !== undefined) setTimeout(stop, durationS * 1000).unref();
  });
  for (const c of agentChildren(config, childContext)) supervisor.start(c);
  const prom = config.agent.prometheus;
  const promUrl = prom ? `http://${prom.host}:${prom.port}/metrics` : "(disabled)";
  log.info({ runtimeDir: runtimeDir, prometheus: promUrl, config: configPath, demo, logFile }, "agent started");

  let top: TopHandle | null = null;
  if (showTop) {
    // Loaded only for the view: it brings ZeroMQ into a process that otherwise never opens a socket.
    const { startTopView } = await import("./topCommand.js");
    top = startTopView(endpoints.aggregates, process.stdout, `OffloadCage${demo ? " demo" : ""}   Prometheus: ${promUrl}   Logs: ${logFile as string}   (Ctrl-C stops)`);
  }

  await stopRequested;
  stopping = true;
  log.info("stopping");
  top?.stop();
  await Promise.all([supervisor.stop(), reloads]);
  // A child that was down at the stop (killed, waiting for its restart) could not undo what it
  // did: the IDS in its page cache group, an actuator's recorded originals and own groups.
  if (config.agent.pageCache !== null) {
    try {
      releaseOwnPageCacheGroups(config.cages, log);
    } catch (err) {
      log.error({ err: (err as Error).message }, "could not release the page cache groups");
    }
  }
  await releaseActuatorLeftovers(config, log);
  process.off("SIGHUP", onHangUp);
  if (!demo) rmSync(cfg, { force: true });
  await top?.done;
  if (childOutput !== null) await new Promise<void>((resolve) => childOutput.end(resolve));
  if (logFile !== null) process.stderr.write(`cage run: the agent's log is in ${logFile}\n`);
  log.flush();
  return 0;
}

/** The copy of the accepted cage file the children read (`cage run` only; the demo has its own). */
export function activeConfigPath(runtimeDir: string): string {
  return join(runtimeDir, "cages.active.yaml");
}

/** Replaces the active config in one step: a child starting meanwhile reads the old or the new, whole. */
function writeActiveConfig(path: string, text: string): void {
  writeFileSync(`${path}.new`, text, { mode: 0o600 });
  renameSync(`${path}.new`, path);
}

interface ChildContext {
  /** The config file the children read. */
  cfg: string;
  runtimeDir: string;
  endpoints: Endpoints;
  demo: boolean;
}

/** The supervised children a config asks for, in start order. */
export function agentChildren(config: AgentConfig, c: ChildContext): ChildSpec[] {
  const { cfg, runtimeDir, endpoints } = c;
  // Children without a --config (cpu, xentrace) learn agent.logLevel from here.
  const env = { ...process.env, [LOG_LEVEL_ENV]: config.agent.logLevel };
  const agentChild = (name: AgentProcessName, main: string, childArgs: string[]): ChildSpec => ({
    name,
    command: process.execPath,
    args: [entry(main), ...childArgs],
    env,
    stopTimeoutMs: STOP_TIMEOUT_MS[name],
  });
  const children: ChildSpec[] = [];
  if (c.demo) {
    for (const kind of ["vm", "ids"]) {
      children.push({ name: `demo-${kind}`, command: process.execPath, args: [entry("./demo/demoWorkload.js"), "--kind", kind], env });
    }
  }
  children.push(
    agentChild("collector-cpu", "../collectors/cpu/main.js", ["--interval-ms", String(config.agent.cpuIntervalMs), "--program", config.agent.cpuProgram, "--endpoint", endpoints.collectors.cpu as string]),
    // --members: the pipeline's /proc scan is the agent's only one; the memory collector takes its result.
    agentChild("collector-memory", "../collectors/memory/main.js", ["--config", cfg, "--endpoint", endpoints.collectors.memory as string, "--members", endpoints.aggregates]),
    // --agent-pid: the pipeline exports this process tree's CPU and memory (cage_agent_*).
    agentChild("pipeline", "../pipeline/main.js", ["--config", cfg, "--runtime-dir", runtimeDir, "--agent-pid", String(process.pid)]),
  );
  const pageCache = config.agent.pageCache;
  if (pageCache !== null) {
    // It also moves the IDS processes into its cgroup v2 tracking group (and back at exit).
    children.push(
      agentChild("collector-pagecache", "../collectors/pagecache/main.js", [
        "--config", cfg,
        "--endpoint", endpoints.collectors.pagecache as string,
        "--interval-ms", String(pageCache.intervalMs),
        "--max-pages", String(pageCache.maxPages),
      ]),
    );
  }
  if (config.cages.some((c) => c.vm.kind === "xen" || (c.idsVms ?? []).some((v) => v.kind === "xen"))) {
    // Xen VMs' CPU is only visible to the hypervisor: read it from xentrace (TSC rate from `xl info`).
    // IDS-VMs charged by CR3 need the CR3 writes traced as well.
    const cr3 = config.cages.some((c) => c.idsCr3 !== undefined) ? ["--cr3"] : [];
    children.push(agentChild("collector-xentrace", "../collectors/xentrace/main.js", ["--endpoint", endpoints.collectors.xentrace as string, ...cr3]));
  }
  if (config.agent.actuators.balloon !== null) {
    children.push(
      agentChild("actuator-balloon", "../actuators/balloon/main.js", ["--config", cfg, "--endpoint", endpoints.aggregates, "--publish", endpoints.actuators?.balloon as string]),
    );
  }
  // A section present in agent.actuators = that actuator runs.
  if (config.agent.actuators.cpu) children.push(agentChild("actuator-cpu", "../actuators/cpu/main.js", ["--config", cfg]));
  if (config.agent.actuators.limiter) children.push(agentChild("actuator-limiter", "../actuators/limiter/main.js", ["--config", cfg]));
  for (const spec of config.agent.actuators.external) children.push(externalActuatorChild(spec, config, c));
  return children;
}

/**
 * A third party's actuator: its own program, told where everything is through OFFLOADCAGE_*
 * variables (docs/protocol.md, External actuators). Supervised like ours: the same restarts, and
 * the same IPC channel on fd 3 (NODE_CHANNEL_FD) whose hang-up tells it the agent died.
 */
export function externalActuatorChild(spec: ExternalActuatorSpec, config: AgentConfig, c: ChildContext): ChildSpec {
  const publish = defaultEndpoints(c.runtimeDir, [spec.name]).actuators?.[spec.name] as string;
  return {
    name: `actuator-${spec.name}`,
    command: spec.command,
    args: [...spec.args],
    env: {
      ...process.env,
      ...spec.env,
      OFFLOADCAGE_ACTUATOR: spec.name,
      OFFLOADCAGE_CONFIG: c.cfg,
      OFFLOADCAGE_AGGREGATES: c.endpoints.aggregates,
      OFFLOADCAGE_PUBLISH: publish,
      OFFLOADCAGE_PARENT_PID: String(process.pid),
      [LOG_LEVEL_ENV]: config.agent.logLevel,
    },
    stopTimeoutMs: spec.stopTimeoutMs,
  };
}

/** The cage file's text and its config; ConfigError (every problem) when unreadable or invalid. */
function readCageFile(path: string): { text: string; config: AgentConfig } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    // loadConfigFile turns the same failure into the ConfigError every caller expects.
    loadConfigFile(path);
    throw err;
  }
  return { text, config: parseConfigText(text, path) };
}

/**
 * SIGHUP: reads and validates the cage file again. Invalid (or needing a restart): every problem
 * is logged and the running config kept. Valid: the children whose inputs changed are restarted
 * (a child that reads the cage file: any change to the loaded config; any child: its command
 * line or environment), children no longer asked for are stopped, new ones started; the rest run
 * on untouched. A restarted actuator restores what it changed on its way out (its stop path),
 * and its successor starts from that restored state. Returns the config now running.
 */
export function reloadConfig(configPath: string, running: AgentConfig, c: ChildContext, supervisor: Supervisor, log: Logger): AgentConfig {
  let next: { text: string; config: AgentConfig };
  try {
    next = readCageFile(configPath);
  } catch (err) {
    if (!isConfigError(err)) {
      log.error({ config: configPath, err }, "config reload refused; the running config is kept");
      return running;
    }
    for (const p of err.problems) log.error({ config: configPath }, `config reload refused: ${formatConfigProblem(err.fileName, p)}`);
    log.error({ config: configPath, problems: err.problems.length }, "config reload refused; the running config is kept");
    return running;
  }
  const runtimeDir = next.config.agent.runtimeDir ?? defaultRuntimeDir();
  if (runtimeDir !== c.runtimeDir) {
    log.error({ config: configPath, runtimeDir, running: c.runtimeDir }, "config reload refused: agent.runtimeDir changed, which needs a restart; the running config is kept");
    return running;
  }
  const current = supervisor.names().map((n) => supervisor.specOf(n) as ChildSpec);
  const plan = planReload(current, agentChildren(next.config, c), c.cfg, JSON.stringify(running) !== JSON.stringify(next.config));
  writeActiveConfig(c.cfg, next.text);
  for (const name of plan.stop) void supervisor.stopChild(name);
  for (const spec of plan.restart) void supervisor.replace(spec);
  for (const spec of plan.start) supervisor.start(spec);
  log.info({ config: configPath, restarted: plan.restart.map((s) => s.name), stopped: plan.stop, started: plan.start.map((s) => s.name), unchanged: plan.unchanged }, "config reloaded");
  return next.config;
}

/** Which children a reload stops, restarts, starts, and leaves running. */
export interface ReloadPlan {
  stop: string[];
  restart: ChildSpec[];
  start: ChildSpec[];
  unchanged: string[];
}

/**
 * Pure. `cfg`: the config file the children read; `configChanged`: whether the loaded
 * (normalised) config differs, comments and layout aside: then every child reading cfg restarts.
 */
export function planReload(running: readonly ChildSpec[], wanted: readonly ChildSpec[], cfg: string, configChanged: boolean): ReloadPlan {
  const plan: ReloadPlan = { stop: [], restart: [], start: [], unchanged: [] };
  const wantedNames = new Set(wanted.map((s) => s.name));
  for (const old of running) if (!wantedNames.has(old.name)) plan.stop.push(old.name);
  for (const spec of wanted) {
    const old = running.find((s) => s.name === spec.name);
    if (old === undefined) plan.start.push(spec);
    else if ((configChanged && spec.args.includes(cfg)) || !sameInvocation(old, spec)) plan.restart.push(spec);
    else plan.unchanged.push(spec.name);
  }
  return plan;
}

function sameInvocation(a: ChildSpec, b: ChildSpec): boolean {
  return a.command === b.command && JSON.stringify(a.args) === JSON.stringify(b.args) && JSON.stringify(a.env ?? null) === JSON.stringify(b.env ?? null) && a.stopTimeoutMs === b.stopTimeoutMs;
}
