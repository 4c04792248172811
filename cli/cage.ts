#!/usr/bin/env node
/**
 * The one CLI: `cage <command>`. Each command lives in its own module; this file only
 * dispatches and turns usage/config errors into exit code 2 with a clear message.
 */
import { isUsageError } from "./cliArgs.js";
import { isConfigError } from "../config/configError.js";

const USAGE = `usage: cage <command> [options]

  run [--config FILE] [--top] [--duration S]   start collectors + pipeline (no config: embedded demo)
  top [--config FILE | --endpoint EP]          live per-cage view
  validate FILE                                check a cage config; exit 2 on errors
  measure [--json] -- COMMAND [ARGS...]        measure a command and its descendants
  measure [--json] --pid PID[,PID...] --duration S
  xentrace summarize FILE --cpu-hz HZ [--json] per-domain / per-vCPU run time from a trace
  collector xentrace --endpoint EP [--cpu-hz HZ] [--window-ms N] [--xentrace PATH] [--xl PATH]
                                               run xentrace live, publish per-domain CPU on raw.xen
  actuator cpu|limiter --config FILE [--dry-run] [--endpoint AGG_EP] [--publish EP]
                                               run the cage scheduler / IDS limiter in the foreground
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
      process.stderr.write(`cage actuator: unknown actuator ${JSON.stringify(args[0] ?? "")}; expected "cpu" or "limiter"\n`);
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
