import { test } from "node:test";
import assert from "node:assert/strict";
import { programArgs, programCommand, programPlan } from "../../../collectors/cpu/cpuProgram.js";

test("programPlan: auto tries libbpf first only when it is built, and says why it skipped it", () => {
  assert.deepEqual(programPlan("auto", true, "/x/dist/bpf/cpuTime"), { tries: ["libbpf", "bpftrace"], skipped: null });
  const skipped = programPlan("auto", false, "/x/dist/bpf/cpuTime");
  assert.deepEqual(skipped.tries, ["bpftrace"]);
  assert.match(skipped.skipped ?? "", /^the libbpf program \/x\/dist\/bpf\/cpuTime is not built \(scripts\/build\.sh builds it when clang-14, bpftool and libbpf-dev are installed\)$/);
  // An explicit choice has no fallback: a missing or failing program is an error to report.
  assert.deepEqual(programPlan("libbpf", false, "/x"), { tries: ["libbpf"], skipped: null });
  assert.deepEqual(programPlan("bpftrace", true, "/x"), { tries: ["bpftrace"], skipped: null });
});

test("programArgs: window, tick and flush rate", () => {
  assert.deepEqual(programArgs(100), ["100", "5", "40"]);
  assert.deepEqual(programArgs(10), ["10", "5", "400"]);
  assert.deepEqual(programArgs(60_000), ["60000", "5", "1"]);
});

test("programCommand: the same arguments; the map size as an argument or in bpftrace's environment", () => {
  const paths = { bpftrace: "/usr/bin/bpftrace", script: "/p/bpf/cpuTime.bt", loader: "/p/dist/bpf/cpuTime" };
  assert.deepEqual(programCommand("libbpf", paths, 100, 4096), { command: "/p/dist/bpf/cpuTime", args: ["100", "5", "40", "4096"], env: {} });
  assert.deepEqual(programCommand("bpftrace", paths, 100, 4096), {
    command: "/usr/bin/bpftrace", args: ["-f", "json", "/p/bpf/cpuTime.bt", "100", "5", "40"], env: { BPFTRACE_MAP_KEYS_MAX: "4096" },
  });
});
