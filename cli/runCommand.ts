/**
 * `cage run [--config FILE]`: starts the collectors and the pipeline as supervised children.
 * `cage demo` runs the embedded demo (demo workloads + one cage) and shows `cage top`.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfigFile } from "../config/loadConfig.js";
import { defaultEndpoints, defaultRuntimeDir, ensurePrivateDir } from "../protocol/endpoints.js";
import { Supervisor, type ChildSpec } from "../runtime/supervisor.js";
import { createLogger } from "../runtime/logger.js";
import { UsageError } from "../runtime/usageError.js";
import { demoConfigDocument } from "./demo/demoConfig.js";
import { parseDemoArgs, parseRunArgs, RUN_USAGE } from "./runOptions.js";
import { startTopView, type TopHandle } from "./topCommand.js";

const entry = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));

/** `mode` "demo": `cage demo`'s command line and the embedded demo; "run": `cage run`'s. */
export async function runAgent(args: string[], mode: "run" | "demo" = "run"): Promise<number> {
  const opts = mode === "demo" ? parseDemoArgs(args) : parseRunArgs(args);
  if (opts.defaultConfig && opts.configPath !== null && !existsSync(opts.configPath)) {
    throw new UsageError(`cage run: no cage file at ${opts.configPath}; give one with --config FILE, or try the embedded demo with \`cage demo\``, RUN_USAGE);
  }
  const log = createLogger("cage-run");
  const durationS = opts.durationS;
  let configPath = opts.configPath ?? undefined;
  const demo = configPath === undefined;
  const supervisor = new Supervisor(log);

  let runtimeDir: string;
  if (demo) {
    runtimeDir = join(defaultRuntimeDir(), "demo");
    ensurePrivateDir(runtimeDir);
    configPath = join(runtimeDir, "demo-config.json");
    writeFileSync(configPath, JSON.stringify(demoConfigDocument(runtimeDir, opts.prometheusPort, opts.influxUrl), null, 2));
    for (const kind of ["vm", "ids"]) {
      supervisor.start({ name: `demo-${kind}`, command: process.execPath, args: [entry("./demo/demoWorkload.js"), "--kind", kind] });
    }
  } else {
    runtimeDir = "";
  }
  // Loading validates: a bad file stops here with every problem listed (ConfigError).
  const config = loadConfigFile(configPath as string);
  if (!demo) runtimeDir = config.agent.runtimeDir ?? defaultRuntimeDir();
  ensurePrivateDir(runtimeDir);
  const endpoints = defaultEndpoints(runtimeDir);

  const children: ChildSpec[] = [
    {
      name: "collector-cpu",
      command: process.execPath,
      args: [entry("../collectors/cpu/main.js"), "--interval-ms", String(config.agent.cpuIntervalMs), "--endpoint", endpoints.collectors.cpu as string],
    },
    {
      name: "collector-memory",
      command: process.execPath,
      args: [entry("../collectors/memory/main.js"), "--config", configPath as string, "--endpoint", endpoints.collectors.memory as string],
    },
    {
      name: "pipeline",
      command: process.execPath,
      // --agent-pid: the pipeline exports this process tree's CPU and memory (cage_agent_*).
      args: [entry("../pipeline/main.js"), "--config", configPath as string, "--runtime-dir", runtimeDir, "--agent-pid", String(process.pid)],
    },
  ];
  const pageCache = config.agent.pageCache;
  if (pageCache !== null) {
    // It also moves the IDS processes into its cgroup v2 tracking group (and back at exit).
    children.push({
      name: "collector-pagecache",
      command: process.execPath,
      args: [
        entry("../collectors/pagecache/main.js"),
        "--config", configPath as string,
        "--endpoint", endpoints.collectors.pagecache as string,
        "--interval-ms", String(pageCache.intervalMs),
        "--max-pages", String(pageCache.maxPages),
      ],
    });
  }
  if (config.cages.some((c) => c.vm.kind === "xen")) {
    // Xen VMs' CPU is only visible to the hypervisor: read it from xentrace (TSC rate from `xl info`).
    children.push({
      name: "collector-xentrace",
      command: process.execPath,
      args: [entry("../collectors/xentrace/main.js"), "--endpoint", endpoints.collectors.xentrace as string],
    });
  }
  if (config.agent.actuators.balloon !== null) {
    // agent.actuators.balloon present: the balloon actuator runs as a supervised child too.
    children.push({
      name: "actuator-balloon",
      command: process.execPath,
      args: [entry("../actuators/balloon/main.js"), "--config", configPath as string, "--endpoint", endpoints.aggregates, "--publish", endpoints.actuators?.balloon as string],
    });
  }
  // CPU actuators (issue 4): a section present in agent.actuators = that actuator runs.
  for (const name of ["cpu", "limiter"] as const) {
    if (config.agent.actuators[name]) {
      children.push({ name: `actuator-${name}`, command: process.execPath, args: [entry("./cage.js"), "actuator", name, "--config", configPath as string] });
    }
  }
  for (const c of children) supervisor.start(c);
  const prom = config.agent.prometheus;
  const promUrl = prom ? `http://${prom.host}:${prom.port}/metrics` : "(disabled)";
  log.info({ runtimeDir, prometheus: promUrl, config: configPath, demo }, "agent started");

  let top: TopHandle | null = null;
  if (opts.top) {
    top = startTopView(endpoints.aggregates, process.stdout, `OffloadCage${demo ? " demo" : ""}   Prometheus: ${promUrl}   (Ctrl-C stops)`);
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
  return 0;
}
