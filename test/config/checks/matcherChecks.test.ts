import { test } from "node:test";
import assert from "node:assert/strict";
import { COMM_MAX_BYTES, matcherProblems } from "../../../config/checks/matcherChecks.js";
import { collect } from "./collect.js";

function linesOf(matcher: unknown): string[] {
  const { report, lines } = collect();
  matcherProblems(matcher, ["cages", 0, "ids", 1], report);
  return lines;
}

void test("a matcher needs a selector, a comm the kernel can hold and a cmdline that compiles", () => {
  assert.deepEqual(linesOf({ comm: "x".repeat(COMM_MAX_BYTES), cmdline: "^a.*b$" }), []);
  assert.deepEqual(linesOf({ descendants: false }), ["cages[0].ids[1]: must have at least one selector (pid, comm, exe, cmdline, cgroup); descendants alone selects nothing"]);
  assert.deepEqual(linesOf({ comm: "ü".repeat(8) }), ["cages[0].ids[1].comm: is 16 bytes; the kernel keeps at most 15 of a command name, so it never matches (use exe or cmdline)"]);
  const [bad] = linesOf({ cmdline: "((" });
  assert.match(bad ?? "", /^cages\[0\]\.ids\[1\]\.cmdline: not a valid regular expression: /);
  assert.deepEqual(linesOf("not a mapping"), []);
});
