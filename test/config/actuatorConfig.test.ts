// agent.actuators.cpu / .limiter and the per-cage CPU actuator knobs: defaults, checks, messages.
import { test } from "node:test";
import assert from "node:assert/strict";
import { isConfigError, type ConfigProblem } from "../../config/configError.js";
import { parseConfigText } from "../../config/loadConfig.js";
import { parseActuatorArgs } from "../../actuators/common/actuatorArgs.js";
import { UsageError } from "../../runtime/usageError.js";

function problemsOf(text: string): string[] {
  try {
    parseConfigText(text, "t.yaml");
  } catch (err) {
    assert.ok(isConfigError(err));
    return err.problems.map((p: ConfigProblem) => `${p.line ?? "?"}: ${p.path}: ${p.message}`);
  }
  assert.fail("expected the config to be rejected");
}

const cage = `cages:
  - name: web1
    vm: { kind: process, match: [{ comm: nginx }] }
    cpu: { cap: 50 }
`;

void test("no actuators section: no actuator section (nothing starts)", () => {
  assert.deepEqual(parseConfigText(cage, "t.yaml").agent.actuators, { balloon: null, cpu: null, limiter: null, external: [] });
});

void test("actuator sections get their defaults", () => {
  const c = parseConfigText(`agent:\n  actuators:\n    cpu: {}\n    limiter: {}\n${cage}`, "t.yaml");
  assert.deepEqual(c.agent.actuators, {
    balloon: null,
    cpu: { dryRun: false, periodMs: 100, staleAfterMs: 1000, guardianStartTimeoutMs: 60_000, hostCapacityPct: null, minChangePct: 1, idsHoldMs: 0, actOnAggregate: true },
    limiter: { dryRun: false, periodMs: 100, staleAfterMs: 1000, guardianStartTimeoutMs: 60_000, mode: "cgroup", failsafe: "hold" },
    external: [],
  });
  const only = parseConfigText(`agent:\n  actuators:\n    limiter: { mode: sigstop, failsafe: release, dryRun: true, periodMs: 50 }\n${cage}`, "t.yaml");
  assert.equal(only.agent.actuators.cpu, null);
  assert.deepEqual(only.agent.actuators.limiter, { dryRun: true, periodMs: 50, staleAfterMs: 1000, guardianStartTimeoutMs: 60_000, mode: "sigstop", failsafe: "release" });
});

void test("per-cage knobs and back ends are carried through", () => {
  const c = parseConfigText(
    `cages:
  - name: a
    vm: { kind: qemu, match: [{ comm: qemu-system-x86 }], qmpSocket: /run/a.qmp }
    cpu: { cap: 80, vmFloor: 10, vmCeiling: 70, failsafeCap: 60, backend: { kind: virsh, domain: web1, uri: "qemu:///system" } }
  - name: b
    vm: { kind: process, match: [{ comm: x }] }
    cpu: { cap: 50, backend: { kind: cgroup, path: /sys/fs/cgroup/cpu/b/ } }
`,
    "t.yaml",
  );
  assert.deepEqual(c.cages[0]?.cpu, { cap: 80, idsCap: null, weight: null, vmFloor: 10, vmCeiling: 70, failsafeCap: 60, backend: { kind: "virsh", domain: "web1", uri: "qemu:///system" } });
  assert.deepEqual(c.cages[1]?.cpu.backend, { kind: "cgroup", path: "/sys/fs/cgroup/cpu/b" });
});

void test("bad actuator settings are reported with their line", () => {
  assert.deepEqual(
    problemsOf(`agent:
  actuators:
    cpu: { periodMs: 5, bogus: 1 }
    limiter: { mode: freeze, guardianStartTimeoutMs: 10 }
cages:
  - name: web1
    vm: { kind: xen, domain: d1 }
    cpu: { cap: 50, vmCeiling: 70, backend: { kind: cgroup, path: /sys/fs/cgroup/cpu/x } }
  - name: web2
    vm: { kind: process, match: [{ comm: x }] }
    cpu: { cap: 50, vmFloor: 40, vmCeiling: 30, backend: { kind: virsh, domain: "-bad" } }
`).sort(),
    [
      "3: agent.actuators.cpu.bogus: unknown field (allowed: dryRun, periodMs, staleAfterMs, guardianStartTimeoutMs, hostCapacityPct, minChangePct, idsHoldMs, actOnAggregate)",
      "3: agent.actuators.cpu.periodMs: must be >= 10",
      "4: agent.actuators.limiter.guardianStartTimeoutMs: must be >= 1000",
      "4: agent.actuators.limiter.mode: must be one of: cgroup, sigstop",
      "8: cages[0].cpu.backend: a xen VM is controlled with xl; remove backend (it is for process, qemu and cgroup VMs)",
      "8: cages[0].cpu.vmCeiling: must be <= cap (70 > 50)",
      "11: cages[1].cpu.backend.domain: must be a libvirt domain name: letters, digits, '.', '_', ':', '+', '-', not starting with '-'",
      "11: cages[1].cpu.vmFloor: must be <= vmCeiling (40 > 30)",
    ].sort(),
  );
});

void test("actuator command line: defaults, switches, endpoint checks", () => {
  assert.deepEqual(parseActuatorArgs("cpu", ["--config", "c.yaml"]), { help: false, configPath: "c.yaml", dryRun: false, endpoint: null, publish: null });
  assert.deepEqual(parseActuatorArgs("limiter", ["--config=c.yaml", "--dry-run", "--endpoint", "tcp://127.0.0.1:5555", "--publish", "ipc:///tmp/x.sock"]), {
    help: false,
    configPath: "c.yaml",
    dryRun: true,
    endpoint: "tcp://127.0.0.1:5555",
    publish: "ipc:///tmp/x.sock",
  });
  assert.deepEqual(parseActuatorArgs("cpu", ["-h"]), { help: true });
  assert.throws(() => parseActuatorArgs("cpu", []), /cage actuator cpu: --config FILE is required/);
  assert.throws(() => parseActuatorArgs("cpu", ["--config", "c", "--endpoint", "localhost"]), /--endpoint must be ipc:\/\/\/absolute\/path or tcp:\/\/HOST:PORT, got "localhost"/);
  assert.throws(() => parseActuatorArgs("cpu", ["--config", "c", "--frob"]), (e: unknown) => e instanceof UsageError && e.message === 'cage actuator cpu: unknown option "--frob"');
  assert.throws(() => parseActuatorArgs("cpu", ["--config", "c", "c.yaml"]), (e: unknown) => e instanceof UsageError && e.message === 'cage actuator cpu: unexpected argument "c.yaml"');
});

void test("external actuators: defaults filled in; names unique, not a built-in's, commands absolute or bare", () => {
  const c = parseConfigText(`agent:\n  actuators:\n    external:\n      - { name: advisor, command: /usr/bin/python3, args: [/opt/a.py] }\n      - { name: pager, command: pager-bin, env: { MODE: test }, stopTimeoutMs: 500 }\n${cage}`, "t.yaml");
  assert.deepEqual(c.agent.actuators.external, [
    { name: "advisor", command: "/usr/bin/python3", args: ["/opt/a.py"], env: {}, stopTimeoutMs: 10_000 },
    { name: "pager", command: "pager-bin", env: { MODE: "test" }, args: [], stopTimeoutMs: 500 },
  ]);
  const bad = (external: string, message: RegExp): void => {
    assert.throws(() => parseConfigText(`agent:\n  actuators:\n    external:\n${external}${cage}`, "t.yaml"), message, external);
  };
  bad("      - { name: cpu, command: /bin/x }\n", /t\.yaml:4: agent\.actuators\.external\[0\]\.name: must be .*not cpu, limiter or balloon/);
  bad("      - { name: a, command: /bin/x }\n      - { name: a, command: /bin/y }\n", /t\.yaml:5: agent\.actuators\.external\[1\]\.name: duplicate external actuator name "a" \(also at index 0\)/);
  bad("      - { name: a, command: ./x }\n", /agent\.actuators\.external\[0\]\.command: must be an absolute path without '\.\.' segments, or a bare program name/);
  bad("      - { name: a, command: /opt/../bin/x }\n", /agent\.actuators\.external\[0\]\.command: must be an absolute path/);
  bad("      - { name: a }\n", /agent\.actuators\.external\[0\]/);
});
