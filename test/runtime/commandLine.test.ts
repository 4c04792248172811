import { test } from "node:test";
import assert from "node:assert/strict";
import { commandLineExitCode, commandUsage, parseCommandLine, type CommandSpec } from "../../runtime/commandLine.js";
import { HelpRequested, UsageError } from "../../runtime/usageError.js";

const SPEC = {
  program: "cage thing",
  summary: "Does a thing.",
  positionals: [{ name: "FILE", required: true }, { name: "MORE" }],
  flags: {
    config: { type: "string", value: "FILE", required: true, help: "the cage file" },
    mode: { type: "string", choices: ["fast", "slow"], help: "how" },
    endpoint: { type: "string", value: "EP", format: { pattern: /^ipc:\/\/\/.+$/, description: "ipc:///absolute/path" }, help: "where" },
    count: { type: "integer", value: "N", min: 1, max: 10, help: "how many" },
    ratio: { type: "number", value: "R", min: 0.5, help: "how much" },
    span: { type: "number", value: "S", min: 0, max: 2, help: "how long" },
    json: { type: "boolean", help: "as JSON" },
    tag: { type: "repeated", value: "T", help: "a tag, again and again" },
  },
} as const satisfies CommandSpec;

const REST = { program: "cage run-it", summary: "Runs it.", flags: { json: { type: "boolean", help: "as JSON" } }, rest: "COMMAND [ARGS...]" } as const satisfies CommandSpec;

function usageError(argv: string[], message: string, spec: CommandSpec = SPEC): void {
  assert.throws(
    () => parseCommandLine(spec, argv),
    (e: unknown) => e instanceof UsageError && e.message === message && e.usage === commandUsage(spec),
    `${argv.join(" ")} → ${message}`,
  );
}

void test("typed values: strings, choices, integers, numbers, booleans, repeated; = or a separate word", () => {
  const r = parseCommandLine(SPEC, ["f.yaml", "--config=c.yaml", "--mode", "slow", "--count", "10", "--ratio=2.5", "--json", "--tag", "a", "--tag=b", "g"]);
  assert.deepEqual(r, {
    values: { config: "c.yaml", mode: "slow", endpoint: undefined, count: 10, ratio: 2.5, span: undefined, json: true, tag: ["a", "b"] },
    positionals: ["f.yaml", "g"],
    rest: null,
  });
  const bare = parseCommandLine(SPEC, ["--config", "c", "f"]);
  assert.equal(bare.values.json, false);
  assert.deepEqual(bare.values.tag, []);
  assert.equal(parseCommandLine(SPEC, ["--config", "c", "f", "--span", "2"]).values.span, 2);
});

void test("unknown options, stray positionals and bad values: a UsageError naming the word, with the usage", () => {
  usageError(["f", "--config", "c", "--no-such-flag"], 'cage thing: unknown option "--no-such-flag"');
  usageError(["f", "--config", "c", "-x"], 'cage thing: unknown option "-x"');
  usageError(["f", "g", "h", "--config", "c"], 'cage thing: unexpected argument "h"');
  usageError(["--config", "c"], "cage thing: FILE is missing");
  usageError(["f"], "cage thing: --config FILE is required");
  usageError(["f", "--config"], "cage thing: --config needs a value");
  usageError(["f", "--config", "--json"], "cage thing: --config needs a value");
  usageError(["f", "--config="], "cage thing: --config must not be empty");
  usageError(["f", "--config", "a", "--config", "b"], "cage thing: --config given twice");
  usageError(["f", "--config", "c", "--json=yes"], "cage thing: --json takes no value");
  usageError(["f", "--config", "c", "--mode", "medium"], 'cage thing: --mode must be fast or slow, got "medium"');
  usageError(["f", "--config", "c", "--endpoint", "tcp://x"], 'cage thing: --endpoint must be ipc:///absolute/path, got "tcp://x"');
  usageError(["f", "--config", "c", "--count", "0"], 'cage thing: --count must be an integer from 1 to 10, got "0"');
  usageError(["f", "--config", "c", "--count", "1.5"], 'cage thing: --count must be an integer from 1 to 10, got "1.5"');
  usageError(["f", "--config", "c", "--count=-3"], 'cage thing: --count must be an integer from 1 to 10, got "-3"');
  usageError(["f", "--config", "c", "--ratio", "x"], 'cage thing: --ratio must be a number >= 0.5, got "x"');
  usageError(["f", "--config", "c", "--ratio", "0.1"], 'cage thing: --ratio must be a number >= 0.5, got "0.1"');
  usageError(["f", "--config", "c", "--span", "3"], 'cage thing: --span must be a number from 0 to 2, got "3"');
});

void test("--help and -h: HelpRequested with the usage, even beside mistakes; not after --", () => {
  for (const argv of [["--help"], ["-h"], ["--bogus", "-h"], ["stray", "words", "here", "--help"]]) {
    assert.throws(() => parseCommandLine(SPEC, argv), (e: unknown) => e instanceof HelpRequested && e.usage === commandUsage(SPEC), argv.join(" "));
  }
  assert.deepEqual(parseCommandLine(REST, ["--json", "--", "ls", "-h", "--bogus"]), { values: { json: true }, positionals: [], rest: ["ls", "-h", "--bogus"] });
  assert.deepEqual(parseCommandLine(REST, []).rest, null);
  usageError(["ls"], 'cage run-it: unexpected argument "ls"', REST);
});

void test("without a rest, words after -- are positionals (a FILE may start with a dash)", () => {
  assert.deepEqual(parseCommandLine(SPEC, ["--config", "c", "--", "-odd.yaml"]).positionals, ["-odd.yaml"]);
});

void test("the usage is generated from the spec: synopsis, summary, one line per flag", () => {
  assert.equal(
    commandUsage(SPEC),
    [
      "usage: cage thing FILE [MORE] --config FILE [--mode fast|slow] [--endpoint EP] [--count N] [--ratio R] [--span S] [--json] [--tag T]...",
      "Does a thing.",
      "",
      "  --config FILE     the cage file",
      "  --mode fast|slow  how",
      "  --endpoint EP     where",
      "  --count N         how many",
      "  --ratio R         how much",
      "  --span S          how long",
      "  --json            as JSON",
      "  --tag T           a tag, again and again",
      "  -h, --help        print this help and exit",
    ].join("\n"),
  );
  assert.match(commandUsage(REST), /^usage: cage run-it \[--json\] \[-- COMMAND \[ARGS\.\.\.\]\]\n/);
  assert.throws(() => parseCommandLine({ program: "p", summary: "s", flags: { help: { type: "boolean", help: "x" } } }, []), /the flag name "help" is reserved/);
});

void test("commandLineExitCode: help on out with 0, a usage error on err with 2, anything else rethrown", () => {
  const sink = (): { text: string; stream: NodeJS.WritableStream } => {
    const s = { text: "", stream: null as unknown as NodeJS.WritableStream };
    s.stream = { write: (chunk: string) => ((s.text += chunk), true) } as unknown as NodeJS.WritableStream;
    return s;
  };
  const out = sink();
  const err = sink();
  assert.equal(commandLineExitCode(new HelpRequested("usage: x"), out.stream, err.stream), 0);
  assert.equal(commandLineExitCode(new UsageError("x: bad", "usage: x"), out.stream, err.stream), 2);
  assert.equal(out.text, "usage: x\n");
  assert.equal(err.text, "x: bad\nusage: x\n");
  assert.throws(() => commandLineExitCode(new Error("boom"), out.stream, err.stream), /boom/);
});
