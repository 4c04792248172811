#!/usr/bin/env node
/**
 * The one CLI: `cage <command>`. Each command lives in its own module; this file only
 * dispatches and turns usage/config errors into exit code 2 with a clear message.
 */
import { isUsageError } from "../runtime/cliArgs.js";
import { isConfigError } from "../config/configError.js";

const USAGE = `usage: cage <command> [options]

  run [--config FILE] [--top] [--duration S]   start collectors + pipeline (no config: embedded demo)
      [--prometheus-port N] [--influx URL]     demo only: scrape port; write history to InfluxDB
  top [--config FILE | --endpoint EP]          live per-cage view (docs/top.md)
      [--json|--batch] [--once] [--delay S] [--sort COLUMN] [--actuators EP,...]
  validate FILE                                check a cage config; exit 2 on errors
  measure [--json] -- COMMAND [ARGS...]        measure a command and its descendants
  measure [--json] --pid PID[,PID...] --duration S
  xentrace summarize FILE --cpu-hz HZ [--json] per-domain / per-vCPU run time from a trace
  collector xentrace --endpoint EP [--cpu-hz HZ] [--window-ms N] [--xentrace PATH] [--xl PATH]
                                               run xentrace live, publish per-domain CPU on raw.xen
  actuator cpu|limiter|balloon --config FILE [--dry-run] [--endpoint AGG_EP] [--publish EP]
                                               cpu: cage scheduler; limiter: IDS limiter;
                                               balloon: move the IDS's memory from the VM to the host
  lab memory --ids malloc|file [--vm qemu|cgroup] [--duration S] [--json] [--plot FILE.svg]
                                               Balloon Performer's Figures 4/5 with the real agent
  lab cpu --ids packet|file --actuators on|off [--duration S] [--json] [--plot FILE.svg]
          [--idle-after S] [--compare-cpulimit]  the paper's CPU cage experiments (docs/lab-cpu.md)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case "run":
      return (await import("./runCommand.js")).runAgent(args);
    case "top":
      return (await import("./topCommand.js")).runTop(args);
    case "validate":
      return (await import("../config/validateCommand.js")).runValidate(args, process.stdout, process.stderr);
    case "measure":
      return (await import("./measureCommand.js")).runMeasure(args);
    case "xentrace":
      if (args[0] === "summarize") return (await import("../collectors/xentrace/summarizeCommand.js")).runXentraceSummarize(args.slice(1), process.stdout);
      process.stderr.write(`cage xentrace: unknown subcommand ${JSON.stringify(args[0] ?? "")}; expected "summarize"\n`);
      return 2;
    case "collector":
      if (args[0] === "xentrace") return (await import("../collectors/xentrace/main.js")).runXentraceCollector(args.slice(1));
      process.stderr.write(`cage collector: unknown collector ${JSON.stringify(args[0] ?? "")}; expected "xentrace"\n`);
      return 2;
    case "actuator":
      if (args[0] === "cpu") return (await import("../actuators/cpu/main.js")).runCpuActuator(args.slice(1));
      if (args[0] === "limiter") return (await import("../actuators/limiter/main.js")).runLimiter(args.slice(1));
      if (args[0] === "balloon") return (await import("../actuators/balloon/main.js")).runBalloonActuator(args.slice(1));
      process.stderr.write(`cage actuator: unknown actuator ${JSON.stringify(args[0] ?? "")}; expected "cpu", "limiter" or "balloon"\n`);
      return 2;
    case "lab":
      if (args[0] === "cpu") return (await import("../lab/cpu/labCpuCommand.js")).runLabCpuCommand(args.slice(1));
      if (args[0] === "memory") return (await import("../lab/memory/labMemoryCommand.js")).runLabMemory(args.slice(1));
      process.stderr.write(`cage lab: unknown experiment ${JSON.stringify(args[0] ?? "")}; expected "cpu" or "memory"\n`);
      return 2;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`cage: unknown command ${JSON.stringify(command)}\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (isUsageError(err)) {
      process.stderr.write(`cage: ${err.message}\n${USAGE}`);
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
