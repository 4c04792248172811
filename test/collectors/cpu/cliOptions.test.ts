import { test } from "node:test";
import assert from "node:assert/strict";
import { CPU_COLLECTOR_USAGE, parseCpuCollectorArgs } from "../../../collectors/cpu/cliOptions.js";
import { HelpRequested, UsageError } from "../../../runtime/usageError.js";

const usageError = (message: string | RegExp) => (e: unknown) =>
  e instanceof UsageError && (typeof message === "string" ? e.message === message : message.test(e.message)) && e.usage === CPU_COLLECTOR_USAGE;

test("collector arguments: good and bad", () => {
  assert.deepEqual(parseCpuCollectorArgs(["--interval-ms", "100", "--endpoint", "ipc:///run/x/cpu.sock"]), {
    intervalMs: 100, endpoint: "ipc:///run/x/cpu.sock", mapKeysMax: undefined, program: "auto",
  });
  assert.equal(parseCpuCollectorArgs(["--interval-ms", "100", "--endpoint", "ipc:///x", "--program", "libbpf"]).program, "libbpf");
  assert.throws(() => parseCpuCollectorArgs(["--interval-ms", "100", "--endpoint", "ipc:///x", "--program", "bcc"]), usageError(/--program must be .*auto.*libbpf.*bpftrace.*got "bcc"/));
  assert.equal(parseCpuCollectorArgs(["--interval-ms=100", "--endpoint=tcp://127.0.0.1:5555", "--map-keys-max", "16"]).mapKeysMax, 16);
  assert.throws(() => parseCpuCollectorArgs(["--interval-ms", "5", "--endpoint", "ipc:///x"]), usageError('cage collector cpu: --interval-ms must be an integer from 10 to 60000, got "5"'));
  assert.throws(() => parseCpuCollectorArgs(["--interval-ms", "100", "--endpoint", "/x"]), usageError('cage collector cpu: --endpoint must be ipc:///absolute/path or tcp://HOST:PORT, got "/x"'));
  assert.throws(() => parseCpuCollectorArgs(["--interval-ms", "100"]), usageError("cage collector cpu: --endpoint EP is required"));
  assert.throws(() => parseCpuCollectorArgs(["--bogus"]), usageError('cage collector cpu: unknown option "--bogus"'));
  assert.throws(() => parseCpuCollectorArgs(["--interval-ms", "100", "--endpoint", "ipc:///x", "extra"]), usageError('cage collector cpu: unexpected argument "extra"'));
  assert.throws(() => parseCpuCollectorArgs(["--interval-ms"]), usageError(/--interval-ms needs a value/));
  assert.throws(() => parseCpuCollectorArgs(["--help"]), (e: unknown) => e instanceof HelpRequested && e.usage === CPU_COLLECTOR_USAGE);
  assert.match(CPU_COLLECTOR_USAGE, /^usage: cage collector cpu --interval-ms N --endpoint EP \[--map-keys-max N\] \[--program auto\|libbpf\|bpftrace\]\n/);
});
