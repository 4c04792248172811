import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePipelineArgs, PIPELINE_USAGE } from "../../pipeline/pipelineArgs.js";
import { UsageError } from "../../runtime/usageError.js";

void test("--config and --runtime-dir, as separate words or with =", () => {
  assert.deepEqual(parsePipelineArgs(["--config", "c.yaml"]), { help: false, configPath: "c.yaml", runtimeDir: null, agentPid: null });
  assert.deepEqual(parsePipelineArgs(["--runtime-dir", "/run/x", "--config=c.json"]), { help: false, configPath: "c.json", runtimeDir: "/run/x", agentPid: null });
  assert.deepEqual(parsePipelineArgs(["--config", "c", "--agent-pid", "4242"]), { help: false, configPath: "c", runtimeDir: null, agentPid: 4242 });
  assert.deepEqual(parsePipelineArgs(["--help"]), { help: true });
  assert.deepEqual(parsePipelineArgs(["-h", "--port", "1"]), { help: true });
});

void test("bad command lines give exact messages", () => {
  const cases: [string[], string][] = [
    [[], "pipeline: --config FILE is required"],
    [["--runtime-dir", "/x"], "pipeline: --config FILE is required"],
    [["--config"], "pipeline: --config needs a value"],
    [["--config", "--runtime-dir", "/x"], "pipeline: --config needs a value"],
    [["--config="], "pipeline: --config must not be empty"],
    [["--config", "a", "--config", "b"], "pipeline: --config given twice"],
    [["--config", "a", "--port", "1"], 'pipeline: unknown option "--port"'],
    [["c.yaml"], 'pipeline: unexpected argument "c.yaml"'],
    [["--config", "a", "--agent-pid", "0"], 'pipeline: --agent-pid must be an integer from 1 to 4194304, got "0"'],
    [["--config", "a", "--agent-pid", "x1"], 'pipeline: --agent-pid must be an integer from 1 to 4194304, got "x1"'],
  ];
  for (const [argv, message] of cases) {
    assert.throws(() => parsePipelineArgs(argv), (e: unknown) => e instanceof UsageError && e.message === message && e.usage === PIPELINE_USAGE, argv.join(" "));
  }
});
