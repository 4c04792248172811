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
import { createWriteStream, existsSync, writeFileSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfigFile } from "../config/loadConfig.js";
import { defaultEndpoints, defaultRuntimeDir, ensurePrivateDir } from "../protocol/endpoints.js";
import { Supervisor, type ChildSpec } from "../runtime/supervisor.js";
import { createLogger, LOG_LEVEL_ENV } from "../runtime/logger.js";
import { STOP_TIMEOUT_MS, type AgentProcessName } from "../runtime/processRuntime.js";
import { DEFAULT_BACKOFF } from "../runtime/restartBackoff.js";
import { UsageError } from "../runtime/usageError.js";
import { demoConfigDocument } from "./demo/demoConfig.js";
import { parseDemoArgs, parseRunArgs, RUN_USAGE } from "./runOptions.js";
import { startTopView, type TopHandle } from "./topCommand.js";

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
  const config = loadConfigFile(configPath as string);
  const runtimeDir = demo ? demoDir : (config.agent.runtimeDir ?? defaultRuntimeDir());
  ensurePrivateDir(runtimeDir);
  const endpoints = defaultEndpoints(runtimeDir);

  const logFile = showTop ? agentLogPath(runtimeDir) : null;
  const log = createLogger("cage-run", config.agent.logLevel, logFile ?? undefined);
  let childOutput: WriteStream | null = null;
  if (logFile !== null) childOutput = createWriteStream(logFile, { flags: "a" });
  const supervisor = new Supervisor(log, DEFAULT_BACKOFF, undefined, childOutput ?? process.stderr);
  // Children without a --config (cpu, xentrace) learn agent.logLevel from here.
  const env = { ...process.env, [LOG_LEVEL_ENV]: config.agent.logLevel };
  const agentChild = (name: AgentProcessName, main: string, childArgs: string[]): ChildSpec => ({
    name,
    command: process.execPath,
    args: [entry(main), ...childArgs],
    env,
    stopTimeoutMs: STOP_TIMEOUT_MS[name],
  });
  const cfg = configPath as string;

  const children: ChildSpec[] = [];
  if (demo) {
    for (const kind of ["vm", "ids"]) {
      children.push({ name: `demo-${kind}`, command: process.execPath, args: [entry("./demo/demoWorkload.js"), "--kind", kind], env });
    }
  }
  children.push(
    agentChild("collector-cpu", "../collectors/cpu/main.js", ["--interval-ms", String(config.agent.cpuIntervalMs), "--endpoint", endpoints.collectors.cpu as string]),
    agentChild("collector-memory", "../collectors/memory/main.js", ["--config", cfg, "--endpoint", endpoints.collectors.memory as string]),
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
  if (config.cages.some((c) => c.vm.kind === "xen")) {
    // Xen VMs' CPU is only visible to the hypervisor: read it from xentrace (TSC rate from `xl info`).
    children.push(agentChild("collector-xentrace", "../collectors/xentrace/main.js", ["--endpoint", endpoints.collectors.xentrace as string]));
  }
  if (config.agent.actuators.balloon !== null) {
    children.push(
      agentChild("actuator-balloon", "../actuators/balloon/main.js", ["--config", cfg, "--endpoint", endpoints.aggregates, "--publish", endpoints.actuators?.balloon as string]),
    );
  }
  // A section present in agent.actuators = that actuator runs.
  if (config.agent.actuators.cpu) children.push(agentChild("actuator-cpu", "../actuators/cpu/main.js", ["--config", cfg]));
  if (config.agent.actuators.limiter) children.push(agentChild("actuator-limiter", "../actuators/limiter/main.js", ["--config", cfg]));
  for (const c of children) supervisor.start(c);
  const prom = config.agent.prometheus;
  const promUrl = prom ? `http://${prom.host}:${prom.port}/metrics` : "(disabled)";
  log.info({ runtimeDir: runtimeDir, prometheus: promUrl, config: configPath, demo, logFile }, "agent started");

  let top: TopHandle | null = null;
  if (showTop) {
    top = startTopView(endpoints.aggregates, process.stdout, `OffloadCage${demo ? " demo" : ""}   Prometheus: ${promUrl}   Logs: ${logFile as string}   (Ctrl-C stops)`);
  }

  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    if (durationS !== undefined) setTimeout(stop, durationS * 1000).unref();
  });
  log.info("stopping");
  top?.stop();
  await supervisor.stop();
  await top?.done;
  if (childOutput !== null) await new Promise<void>((resolve) => childOutput.end(resolve));
  if (logFile !== null) process.stderr.write(`cage run: the agent's log is in ${logFile}\n`);
  log.flush();
  return 0;
}
