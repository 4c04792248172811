#!/usr/bin/env node
/**
 * The one CLI: `cage <command>`. This file holds only the dispatch table: each command's module
 * is imported when that command runs, so `cage --help` loads neither OpenTelemetry nor ZeroMQ.
 * Each command answers --help itself (its usage comes from its CommandSpec); a bad command line
 * is exit 2 with the message and that usage, before anything starts.
 */
import { readFileSync } from "node:fs";
import type { ProcessSpec } from "../runtime/processRuntime.js";
import { isHelpRequested, isUsageError } from "../runtime/usageError.js";
import { isConfigError } from "../config/configError.js";

interface Command {
  /** The synopsis shown in the command list, after `cage`. */
  synopsis: string;
  summary: string;
  run: (args: string[]) => Promise<number>;
}

interface CommandGroup {
  synopsis: string;
  summary: string;
  subcommands: Record<string, Command>;
}

const COMMANDS: Record<string, Command | CommandGroup> = {
  run: {
    synopsis: "run [--config FILE] [--top]",
    summary: "the agent on a cage file (default /etc/offloadcage/cages.yaml)",
    run: async (args) => {
      // The line is checked before the agent's modules (ZeroMQ, OpenTelemetry) load: --help and mistakes answer at once.
      (await import("./runOptions.js")).parseRunArgs(args);
      return (await import("./runCommand.js")).runAgent(args, "run");
    },
  },
  demo: {
    synopsis: "demo [--influx URL]",
    summary: "demo workloads in one cage, the agent and the live view (npm start)",
    run: async (args) => {
      (await import("./runOptions.js")).parseDemoArgs(args);
      return (await import("./runCommand.js")).runAgent(args, "demo");
    },
  },
  top: {
    synopsis: "top [--config FILE | --endpoint EP]",
    summary: "live per-cage view of a running agent",
    run: async (args) => (await import("./topCommand.js")).runTop(args),
  },
  validate: {
    synopsis: "validate FILE [--json]",
    summary: "check a cage file; exit 2 on problems",
    run: async (args) => (await import("./validateCommand.js")).runValidate(args, process.stdout, process.stderr),
  },
  measure: {
    synopsis: "measure [--json] -- COMMAND [ARGS...]",
    summary: "true CPU and memory of a command tree (or --pid P --duration S)",
    run: async (args) => (await import("./measureCommand.js")).runMeasure(args),
  },
  install: {
    synopsis: "install [--root DIR] [--prefix DIR]",
    summary: "install the built agent as the systemd service offloadcage.service",
    run: async (args) => (await import("./installCommand.js")).runInstall(args),
  },
  uninstall: {
    synopsis: "uninstall [--root DIR] [--prefix DIR] [--purge]",
    summary: "stop and remove the service and what install put in place",
    run: async (args) => (await import("./installCommand.js")).runUninstall(args),
  },
  lab: {
    synopsis: "lab cpu|memory|chaos|fleet ...",
    summary: "the experiments: the paper's CPU cages, Balloon Performer's Figures 4/5, the chaos run",
    subcommands: {
      cpu: {
        synopsis: "lab cpu --ids packet|file --actuators on|off",
        summary: "the paper's CPU cage experiments (docs/lab-cpu.md)",
        run: async (args) => (await import("../lab/cpu/labCpuCommand.js")).runLabCpuCommand(args),
      },
      memory: {
        synopsis: "lab memory --ids malloc|file",
        summary: "Balloon Performer's Figures 4/5 with the real agent (docs/lab-memory.md)",
        run: async (args) => (await import("../lab/memory/labMemoryCommand.js")).runLabMemory(args),
      },
      chaos: {
        synopsis: "lab chaos --mode short|long",
        summary: "kill -9 every agent component under load, impostors, malformed input (docs/chaos.md)",
        run: async (args) => (await import("../lab/chaos/chaosCommand.js")).runLabChaos(args),
      },
      fleet: { synopsis: "lab fleet --hosts N --cages M", summary: "N hosts into one Prometheus and one InfluxDB (docs/lab-fleet.md)", run: async (args) => (await import("../lab/fleet/fleetCommand.js")).runLabFleet(args) },
    },
  },
  xentrace: {
    synopsis: "xentrace summarize FILE --cpu-hz HZ [--json]",
    summary: "per-domain and per-vCPU run time of a trace file",
    subcommands: {
      summarize: {
        synopsis: "xentrace summarize FILE --cpu-hz HZ [--json]",
        summary: "per-domain and per-vCPU run time of a trace file",
        run: async (args) => (await import("../collectors/xentrace/summarizeCommand.js")).runXentraceSummarize(args, process.stdout),
      },
    },
  },
  collector: {
    synopsis: "collector cpu|memory|pagecache|xentrace ...",
    summary: "one collector process (cage run starts them)",
    subcommands: {
      cpu: {
        synopsis: "collector cpu --interval-ms N --endpoint EP",
        summary: "on-CPU time per process (eBPF sched_switch)",
        run: async (args) => runAgentProcess((await import("../collectors/cpu/main.js")).cpuCollectorProcess, args),
      },
      memory: {
        synopsis: "collector memory --config FILE --endpoint EP",
        summary: "the cages' processes' memory from /proc",
        run: async (args) => runAgentProcess((await import("../collectors/memory/main.js")).memoryCollectorProcess, args),
      },
      pagecache: {
        synopsis: "collector pagecache (--cgroup PATH | --config FILE) --endpoint EP",
        summary: "page cache a cgroup's tasks insert (eBPF filemap)",
        run: async (args) => runAgentProcess((await import("../collectors/pagecache/main.js")).pageCacheCollectorProcess, args),
      },
      xentrace: {
        synopsis: "collector xentrace --endpoint EP",
        summary: "xentrace live in a Xen dom0, per-domain CPU on raw.xen",
        run: async (args) => (await import("../collectors/xentrace/main.js")).runXentraceCollector(args),
      },
    },
  },
  actuator: {
    synopsis: "actuator cpu|limiter|balloon --config FILE [--dry-run]",
    summary: "one actuator process (cage run starts the configured ones)",
    subcommands: {
      cpu: {
        synopsis: "actuator cpu --config FILE [--dry-run]",
        summary: "the cage scheduler: VM cap = cage cap − IDS",
        run: async (args) => (await import("../actuators/cpu/main.js")).runCpuActuator(args),
      },
      limiter: {
        synopsis: "actuator limiter --config FILE [--dry-run]",
        summary: "the IDS limiter: keeps each IDS under idsCap",
        run: async (args) => (await import("../actuators/limiter/main.js")).runLimiter(args),
      },
      balloon: {
        synopsis: "actuator balloon --config FILE [--dry-run]",
        summary: "moves the IDS's memory from the VM to the host",
        run: async (args) => (await import("../actuators/balloon/main.js")).runBalloonActuator(args),
      },
    },
  },
};

function listing(rows: { synopsis: string; summary: string }[]): string {
  const width = Math.max(...rows.map((c) => c.synopsis.length)) + 2;
  return rows.map((c) => `  ${c.synopsis.padEnd(width)}${c.summary}`).join("\n");
}

const USAGE = [
  "usage: cage <command> [options]   (cage <command> --help: that command's options)",
  "",
  listing([...Object.values(COMMANDS), { synopsis: "--version", summary: "print the version" }, { synopsis: "--help", summary: "print this list" }]),
].join("\n");

function groupUsage(name: string, group: CommandGroup): string {
  return [`usage: cage ${name} ${Object.keys(group.subcommands).join("|")} [options]`, `${group.summary}`, "", listing(Object.values(group.subcommands))].join("\n");
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
  return String(pkg.version);
}

/** Runs one agent process's spec in this process, through the shared process runtime. */
async function runAgentProcess<A, S>(spec: ProcessSpec<A, S>, args: string[]): Promise<number> {
  return (await import("../runtime/processRuntime.js")).runProcess(spec, args);
}

/** The words naming the command being run (e.g. "collector memory"), for messages without one. */
let commandName = "";

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return 2;
  }
  if (name === "--help" || name === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (name === "--version") {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (name === "help") return main(args.length > 0 ? [...args, "--help"] : ["--help"]);
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (entry === undefined) {
    process.stderr.write(`cage: unknown command ${JSON.stringify(name)}\n${USAGE}\n`);
    return 2;
  }
  commandName = name;
  if ("run" in entry) return entry.run(args);
  const [sub, ...subArgs] = args;
  if (sub === "--help" || sub === "-h") {
    process.stdout.write(`${groupUsage(name, entry)}\n`);
    return 0;
  }
  const command = sub !== undefined && Object.hasOwn(entry.subcommands, sub) ? entry.subcommands[sub] : undefined;
  if (command === undefined) {
    const names = Object.keys(entry.subcommands);
    const expected = names.length === 1 ? names[0] : `${names.slice(0, -1).join(", ")} or ${names[names.length - 1]}`;
    const what = sub === undefined ? "needs a subcommand" : `unknown subcommand ${JSON.stringify(sub)}`;
    process.stderr.write(`cage ${name}: ${what}; expected ${expected}\n${groupUsage(name, entry)}\n`);
    return 2;
  }
  commandName = `${name} ${sub}`;
  return command.run(subArgs);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (isHelpRequested(err)) {
      process.stdout.write(`${err.usage}\n`);
      process.exitCode = 0;
    } else if (isUsageError(err)) {
      // A parser's message names its command and carries its usage; another usage error gets the name here.
      process.stderr.write(err.usage !== undefined ? `${err.message}\n${err.usage}\n` : `cage ${commandName}: ${err.message}\n`);
      process.exitCode = 2;
    } else if (isConfigError(err)) {
      process.stderr.write(`cage: ${err.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`cage: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
