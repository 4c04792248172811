import { test } from "node:test";
import assert from "node:assert/strict";
import { COMM_MAX_BYTES, matcherProblems } from "../../../config/checks/matcherChecks.js";
import { CMDLINE_PATTERN_MAX_CHARS, cmdlinePatternProblem, compileCmdlinePattern } from "../../../config/checks/cmdlinePattern.js";
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

void test("cmdline patterns must run in linear time: backreferences and lookaround are refused, ordinary patterns pass", () => {
  const linear = "cannot run in linear time (backreferences and lookaround are not allowed): the resolver tests it against every command line";
  for (const p of ["(a)\\1", "(?<x>a)\\k<x>", "(?=aide)a", "(?!x)aide", "(?<=/)aide", "(?<!x)aide"]) assert.equal(cmdlinePatternProblem(p), linear, p);
  for (const p of ["^/usr/bin/aide\\b.*--check", "suricata.*-i (eth0|ens3)", "(a+)+b", "a*a*a*b", "x{2,5}"]) assert.equal(cmdlinePatternProblem(p), null, p);
  assert.match(cmdlinePatternProblem("((") ?? "", /^not a valid regular expression: /);
  assert.match(cmdlinePatternProblem("a".repeat(CMDLINE_PATTERN_MAX_CHARS + 1)) ?? "", /is 513 characters; a cmdline pattern may have at most 512/);
});

void test("a pathological pattern compiled for the resolver matches a long command line in linear time", () => {
  const re = compileCmdlinePattern("(a+)+a*a*b");
  const text = "a".repeat(20_000);
  const started = process.hrtime.bigint();
  assert.equal(re.test(text), false);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  // A backtracking engine needs far beyond a minute for this; the linear one a few milliseconds per 10,000 characters.
  assert.ok(ms < 2_000, `took ${ms} ms`);
  assert.throws(() => compileCmdlinePattern("(a)\\1"), /cmdline pattern "\(a\)\\\\1": cannot run in linear time/);
});
