import { test } from "node:test";
import assert from "node:assert/strict";
import { parseCpuCollectorArgs } from "../../../collectors/cpu/cliOptions.js";

test("collector arguments: good and bad", () => {
  assert.deepEqual(parseCpuCollectorArgs(["--interval-ms", "100", "--endpoint", "ipc:///run/x/cpu.sock"]), {
    intervalMs: 100, endpoint: "ipc:///run/x/cpu.sock", mapKeysMax: undefined,
  });
  assert.throws(() => parseCpuCollectorArgs(["--interval-ms", "5", "--endpoint", "ipc:///x"]), { message: 'collector-cpu: --interval-ms must be an integer from 10 to 60000, got "5"' });
  assert.throws(() => parseCpuCollectorArgs(["--interval-ms", "100", "--endpoint", "/x"]), { message: 'collector-cpu: --endpoint must be an ipc:// or tcp:// address, got "/x"' });
  assert.throws(() => parseCpuCollectorArgs(["--interval-ms", "100"]), /--endpoint is required/);
  assert.throws(() => parseCpuCollectorArgs(["--bogus"]), /unknown argument "--bogus"/);
  assert.throws(() => parseCpuCollectorArgs(["--interval-ms"]), /--interval-ms needs a value/);
});
