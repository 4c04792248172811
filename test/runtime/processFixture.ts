/**
 * A real agent-like process for processRuntime.test.ts:
 *   processFixture.js --mode slow-start|stuck-stop --marks DIR
 * slow-start: start() waits until the runtime aborts it (up to 60 s); stop() leaves a mark.
 * stuck-stop: starts at once; stop() never finishes (the deadline must end the process).
 * Each step leaves an empty file in DIR, so the test sees what ran.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { runIfEntry, type ProcessSpec } from "../../runtime/processRuntime.js";
import { UsageError } from "../../runtime/usageError.js";

interface FixtureArgs {
  mode: "slow-start" | "stuck-stop";
  marks: string;
}

const USAGE = "usage: processFixture --mode slow-start|stuck-stop --marks DIR";

export function parseFixtureArgs(argv: string[]): FixtureArgs {
  let mode: string | undefined;
  let marks: string | undefined;
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === "--mode") mode = argv[i + 1];
    else if (argv[i] === "--marks") marks = argv[i + 1];
    else throw new UsageError(`processFixture: unknown argument ${JSON.stringify(argv[i])}`);
  }
  if (mode !== "slow-start" && mode !== "stuck-stop") throw new UsageError(`processFixture: --mode must be slow-start or stuck-stop, got ${JSON.stringify(mode)}`);
  if (marks === undefined) throw new UsageError("processFixture: --marks DIR is required");
  return { mode, marks };
}

const mark = (args: FixtureArgs, name: string): void => writeFileSync(join(args.marks, name), "");

const fixture: ProcessSpec<FixtureArgs, FixtureArgs> = {
  name: "process-fixture",
  usage: USAGE,
  parseArgs: parseFixtureArgs,
  stopTimeoutMs: 500,
  async start(args, { signal }) {
    mark(args, "start-began");
    if (args.mode === "slow-start") {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 60_000);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          mark(args, "start-aborted");
          resolve();
        });
      });
    }
    mark(args, "started");
    return args;
  },
  async stop(args) {
    mark(args, "stop-began");
    if (args.mode === "stuck-stop") await new Promise(() => setInterval(() => undefined, 1000));
    mark(args, "stopped");
  },
};

runIfEntry(import.meta.url, fixture);
