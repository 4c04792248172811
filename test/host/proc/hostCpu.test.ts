import { test } from "node:test";
import assert from "node:assert/strict";
import { hostBusyTicks, hostIdleTicks, parseHostCpuTicks } from "../../../host/proc/hostCpu.js";

void test("parseHostCpuTicks reads the cpu line's eight counts, wherever the line is", () => {
  // user nice system idle iowait irq softirq steal guest guest_nice, as Linux prints them
  const t = parseHostCpuTicks("cpu  100 2 30 5000 40 1 2 3 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 7\n");
  assert.deepEqual(t, { user: 100, nice: 2, system: 30, idle: 5000, iowait: 40, irq: 1, softirq: 2, steal: 3 });
  assert.equal(hostBusyTicks(t), 100 + 2 + 30 + 1 + 2);
  assert.equal(hostIdleTicks(t), 5040);
  assert.equal(parseHostCpuTicks("intr 1\ncpu 1 2 3 4 5 6 7 8\n").steal, 8);
});

void test("parseHostCpuTicks names /proc/stat and the line it cannot read", () => {
  assert.throws(() => parseHostCpuTicks("intr 1 2 3\n"), /^Error: \/proc\/stat: no "cpu" line in "intr 1 2 3\\n"$/);
  assert.throws(() => parseHostCpuTicks("cpu0 1 2 3 4 5 6 7 8\n"), /no "cpu" line/);
  assert.throws(() => parseHostCpuTicks("cpu 1 2 x 4 5 6 7 8\n"), /^Error: \/proc\/stat: the "cpu" line needs eight or more counts ≥ 0, got "cpu {2}1 2 x 4 5 6 7 8"$/);
  assert.throws(() => parseHostCpuTicks("cpu 1 2 3 4 5 6 7\n"), /eight or more counts/);
  assert.throws(() => parseHostCpuTicks("cpu 1 2 3 4 5 6 7 -8\n"), /eight or more counts/);
});
