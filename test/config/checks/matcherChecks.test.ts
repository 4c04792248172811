import { test } from "node:test";
import assert from "node:assert/strict";
import { COMM_MAX_BYTES, matcherProblems, type MatcherRole } from "../../../config/checks/matcherChecks.js";
import { CMDLINE_PATTERN_MAX_CHARS, cmdlinePatternProblem, compileCmdlinePattern } from "../../../config/checks/cmdlinePattern.js";
import { collect } from "./collect.js";

const USERS = new Map([["root", 0], ["clamav", 108], ["nobody", 65534]]);

/** As a VM matcher unless asked: the owner rule of IDS matchers is tested on its own below. */
function linesOf(matcher: unknown, role: MatcherRole = "vm"): string[] {
  const { report, lines } = collect();
  matcherProblems(matcher, ["cages", 0, role === "vm" ? "vm" : "ids", 1], report, role, () => USERS);
  return lines;
}

void test("a matcher needs a selector, a comm the kernel can hold and a cmdline that compiles", () => {
  assert.deepEqual(linesOf({ comm: "x".repeat(COMM_MAX_BYTES), cmdline: "^a.*b$" }), []);
  assert.deepEqual(linesOf({ descendants: false }), ["cages[0].vm[1]: must have at least one selector (pid, comm, exe, cmdline, cgroup); descendants alone selects nothing"]);
  assert.deepEqual(linesOf({ comm: "ü".repeat(8) }), ["cages[0].vm[1].comm: is 16 bytes; the kernel keeps at most 15 of a command name, so it never matches (use exe or cmdline)"]);
  const [bad] = linesOf({ cmdline: "((" });
  assert.match(bad ?? "", /^cages\[0\]\.vm\[1\]\.cmdline: not a valid regular expression: /);
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

void test("an IDS matcher must name root as its owner unless allowNonRoot says otherwise", () => {
  assert.deepEqual(linesOf({ comm: "aide", uid: 0 }, "ids"), []);
  assert.deepEqual(linesOf({ comm: "aide", user: "root" }, "ids"), []);
  assert.deepEqual(linesOf({ comm: "aide", user: ["root"], uid: [0] }, "ids"), []);
  assert.deepEqual(linesOf({ comm: "aide" }, "ids"), [
    "cages[0].ids[1]: an IDS matcher without uid or user also selects other users' processes, so any user could pose as the IDS (and get the VM capped); add uid: 0 (or user: root), or the IDS's own user with allowNonRoot: true",
  ]);
  assert.deepEqual(linesOf({ comm: "clamd", user: "clamav" }, "ids"), [
    'cages[0].ids[1].user: user "clamav" (uid 108) is not root, so a process of that user could pose as the IDS; set allowNonRoot: true on this matcher if that user runs the IDS',
  ]);
  assert.deepEqual(linesOf({ comm: "aide", uid: [0, 65534] }, "ids"), [
    "cages[0].ids[1].uid[1]: uid 65534 is not root, so a process of that user could pose as the IDS; set allowNonRoot: true on this matcher if that user runs the IDS",
  ]);
  assert.deepEqual(linesOf({ comm: "clamd", user: "clamav", allowNonRoot: true }, "ids"), []);
  assert.deepEqual(linesOf({ comm: "aide", allowNonRoot: true }, "ids"), []);
  assert.deepEqual(linesOf({ comm: "aide", allowNonRoot: false }, "ids").length, 1);
});

void test("VM matchers need no owner; allowNonRoot is an IDS-only field", () => {
  assert.deepEqual(linesOf({ comm: "qemu" }), []);
  assert.deepEqual(linesOf({ comm: "qemu", user: "nobody" }), []);
  assert.deepEqual(linesOf({ comm: "qemu", allowNonRoot: true }), ["cages[0].vm[1].allowNonRoot: is for IDS matchers only; a VM matcher may match any user's processes"]);
});

void test("a user name that is not in /etc/passwd is an error naming it; passwd is read only for user:", () => {
  assert.deepEqual(linesOf({ comm: "aide", user: ["root", "no-such-user"] }, "ids"), ['cages[0].ids[1].user[1]: user "no-such-user" does not exist in /etc/passwd']);
  let reads = 0;
  const { report, lines } = collect();
  const users = (): Map<string, number> => {
    reads++;
    throw new Error("EACCES");
  };
  matcherProblems({ comm: "aide", uid: 0 }, ["cages", 0, "ids", 0], report, "ids", users);
  assert.equal(reads, 0);
  matcherProblems({ comm: "aide", user: "root" }, ["cages", 0, "ids", 0], report, "ids", users);
  assert.deepEqual(lines, ['cages[0].ids[0].user: cannot read /etc/passwd to look up user "root": EACCES']);
});

void test("an exe with the kernel's deleted suffix is refused: the matcher strips it from the process side", () => {
  assert.deepEqual(linesOf({ exe: "/usr/sbin/aide (deleted)" }), ['cages[0].vm[1].exe: ends with " (deleted)": give the binary\'s path; a running process whose binary was deleted or replaced matches it anyway']);
});
