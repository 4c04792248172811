import { test } from "node:test";
import assert from "node:assert/strict";
import { parseArgs, numberFlag, isUsageError } from "../../runtime/cliArgs.js";

test("valued flags, switches, positionals and the rest after --", () => {
  const p = parseArgs(["--json", "--pid=1,2", "--duration", "3", "file", "--", "cmd", "--json"], ["pid", "duration"], ["json"]);
  assert.equal(p.flags.get("json"), true);
  assert.equal(p.flags.get("pid"), "1,2");
  assert.equal(numberFlag(p, "duration", { min: 0 }), 3);
  assert.deepEqual(p.positional, ["file"]);
  assert.deepEqual(p.rest, ["cmd", "--json"]);
});

test("unknown flags and missing values are usage errors naming the flag", () => {
  assert.throws(() => parseArgs(["--nope"], [], []), (e: unknown) => isUsageError(e) && /--nope/.test(e.message));
  assert.throws(() => parseArgs(["--pid"], ["pid"], []), /--pid needs a value/);
  const p = parseArgs(["--duration", "-1"], ["duration"], []);
  assert.throws(() => numberFlag(p, "duration", { min: 0.1 }), /--duration: must be a number >= 0.1, got "-1"/);
});
