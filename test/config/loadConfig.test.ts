import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { formatConfigProblem, isConfigError, type ConfigError, type ConfigProblem } from "../../config/configError.js";
import { configSchemaPath, loadConfigFile, parseConfigText, parseSize } from "../../config/loadConfig.js";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
/** A memory section's balloon knobs when none are given. */
const AUTO_BALLOON = { backend: "auto", libvirtDomain: null, cgroup: null, cgroupV2File: "memory.max" };

/** The ConfigError that parsing `text` throws. */
function problemsOf(text: string, fileName = "test.yaml"): ConfigProblem[] {
  try {
    parseConfigText(text, fileName);
  } catch (err) {
    assert.ok(isConfigError(err), `expected a ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail("expected the config to be rejected");
}

const minimal = `
cages:
  - name: web1
    vm: { kind: process, match: [{ comm: nginx }] }
    cpu: { cap: 50 }
`;

void test("the schema file is found relative to the compiled module", () => {
  assert.equal(configSchemaPath(), `${repoRoot}docs/config.schema.json`);
});

void test("the example file is valid and normalised", () => {
  const config = loadConfigFile(`${repoRoot}examples/cages.yaml`);
  assert.deepEqual(config.cages.map((c) => c.name), ["web1", "db1", "batch", "legacy"]);
  const [web1, db1, batch, legacy] = config.cages;
  assert.deepEqual(web1?.memory, { baseBytes: 2 * 1024 ** 3, floorBytes: 1024 ** 3, failsafeBytes: 2 * 1024 ** 3, balloon: AUTO_BALLOON });
  assert.deepEqual(web1?.cpu, { cap: 150, idsCap: 50, weight: 200 });
  assert.deepEqual(web1?.ids[0], { comm: "aide", uids: [0], descendants: true });
  assert.deepEqual(web1?.ids[1], { exe: "/usr/bin/tshark", cmdline: "-i veth-web1", uids: [0], descendants: true });
  assert.deepEqual(db1?.memory, { baseBytes: 4 * 1024 ** 3, floorBytes: 1536 * 1024 ** 2, failsafeBytes: 4 * 1024 ** 3, balloon: AUTO_BALLOON });
  assert.equal(db1?.vm.kind, "qemu");
  assert.deepEqual(db1?.ids[1], { exe: "/usr/bin/suricata", uids: [0], descendants: false });
  assert.deepEqual(batch?.vm, { kind: "cgroup", path: "/sys/fs/cgroup/unified/batch.slice" });
  assert.equal(batch?.memory, null);
  assert.deepEqual(legacy?.vm, { kind: "xen", domain: "legacy-hvm" });
  assert.equal(config.agent.runtimeDir, "/run/offloadcage");
});

void test("page cache attribution: on by default only when a cage has a memory section; true, false or an object", () => {
  const withMemory = `${minimal}    memory: { base: 1GiB, floor: 256MiB }\n`;
  assert.deepEqual(parseConfigText(withMemory, "m.yaml").agent.pageCache, { intervalMs: 1000, maxPages: 262144 });
  assert.equal(parseConfigText(`agent: { pageCache: false }\n${withMemory}`, "m.yaml").agent.pageCache, null);
  assert.deepEqual(parseConfigText(`agent: { pageCache: { maxPages: 4096 } }\n${minimal}`, "m.yaml").agent.pageCache, { intervalMs: 1000, maxPages: 4096 });
  assert.throws(() => parseConfigText(`agent: { pageCache: { maxPages: 0 } }\n${minimal}`, "m.yaml"), /agent\.pageCache\.maxPages/);
});

void test("agent.host: a host name, else an error naming its line", () => {
  assert.equal(parseConfigText(`agent: { host: node-17.dc1 }\n${minimal}`, "h.yaml").agent.host, "node-17.dc1");
  for (const bad of ["-node", "node_17", "a..b", "x".repeat(64), "'node 17'"]) {
    const got = problemsOf(`agent:\n  logLevel: info\n  host: ${bad}\n${minimal}`).map((p) => `${p.line ?? "?"}: ${p.path}: ${p.message}`);
    assert.deepEqual(got, ["3: agent.host: must be a host name: letters, digits and '-' in dot-separated labels of 1-63 characters, 253 at most (e.g. node-17.dc1)"], bad);
  }
});

void test("agent.influx: username and passwordFile come together; the password file is an absolute path", () => {
  const influx = parseConfigText(`agent: { influx: { username: agent7, passwordFile: /etc/offloadcage/influx.pw } }\n${minimal}`, "i.yaml").agent.influx;
  assert.equal(influx?.username, "agent7");
  assert.equal(influx?.passwordFile, "/etc/offloadcage/influx.pw");
  assert.equal(parseConfigText(`agent: { influx: true }\n${minimal}`, "i.yaml").agent.influx?.username, null);
  const only = (field: string): string[] => problemsOf(`agent:\n  influx:\n    ${field}\n${minimal}`).map((p) => `${p.line ?? "?"}: ${p.path}: ${p.message}`);
  assert.deepEqual(only("username: agent7"), ["3: agent.influx.username: needs passwordFile as well (set both or neither)"]);
  assert.deepEqual(only("passwordFile: /etc/pw"), ["3: agent.influx.passwordFile: needs username as well (set both or neither)"]);
  assert.deepEqual(problemsOf(`agent:\n  influx: { username: a, passwordFile: pw.txt }\n${minimal}`).map((p) => `${p.line ?? "?"}: ${p.path}: ${p.message}`), [
    "2: agent.influx.passwordFile: must be an absolute path without '..' segments",
  ]);
});

void test("defaults are filled in", () => {
  const config = parseConfigText(minimal, "min.yaml");
  assert.deepEqual(config.agent, {
    host: null,
    runtimeDir: null,
    stateDir: "/var/lib/offloadcage",
    cpuIntervalMs: 100,
    cpuProgram: "auto",
    memorySampleMs: 1000,
    idsMemorySampleMs: 50,
    resolveMs: 500,
    prometheus: { host: "127.0.0.1", port: 9464 },
    otlp: null,
    pageCache: null,
    logLevel: "info",
    actuators: { balloon: null, cpu: null, limiter: null, external: [] },
    influx: null,
  });
  assert.deepEqual(config.cages, [
    {
      name: "web1",
      vm: { kind: "process", match: [{ comm: "nginx", descendants: true }] },
      ids: [],
      cpu: { cap: 50, idsCap: null, weight: null },
      memory: null,
    },
  ]);
});

void test("prometheus can be disabled or partly given; otlp true means the local collector", () => {
  const off = parseConfigText(`agent: { prometheus: false, otlp: true }\n${minimal}`, "a.yaml").agent;
  assert.equal(off.prometheus, null);
  assert.deepEqual(off.otlp, { endpoint: "http://127.0.0.1:4318/v1/metrics", intervalMs: 5000 });
  const partial = parseConfigText(`agent: { prometheus: { port: 9500 }, otlp: { endpoint: "https://otel:4318/v1/metrics" } }\n${minimal}`, "b.yaml").agent;
  assert.deepEqual(partial.prometheus, { host: "127.0.0.1", port: 9500 });
  assert.deepEqual(partial.otlp, { endpoint: "https://otel:4318/v1/metrics", intervalMs: 5000 });
});

void test("all vm kinds and matcher selectors load", () => {
  const config = parseConfigText(
    `
cages:
  - name: a
    vm: { kind: cgroup, path: /sys/fs/cgroup/memory/vm-a/ }
    ids: [{ comm: aide, user: root }, { exe: /usr/bin/tshark, descendants: true, uid: [0, 0] }, { pid: 1234, user: [root, nobody], uid: 0, allowNonRoot: true }, { cgroup: /sys/fs/cgroup/unified/ids1, uid: 0 }, { cmdline: "^tshark .*veth", allowNonRoot: true }]
    cpu: { cap: 250, idsCap: 30, weight: 256 }
    memory: { base: 1GiB, floor: 268435456 }
  - name: b
    vm: { kind: qemu, match: [{ cmdline: "guest=b" }], qmpSocket: /run/qemu/b.qmp }
    cpu: { cap: 100 }
  - name: c
    vm: { kind: xen, domain: 7 }
    cpu: { cap: 100 }
  - name: d
    vm: { kind: libvirt, domain: web1 }
    cpu: { cap: 100 }
  - name: e
    vm: { kind: libvirt, domain: 948ce2ac-3191-4a24-aa47-29115dd88f72, uri: "qemu:///system?socket=/tmp/x/libvirt-sock" }
    cpu: { cap: 100 }
`,
    "kinds.yaml",
  );
  const [a, b, c, d, e] = config.cages;
  assert.deepEqual(a?.vm, { kind: "cgroup", path: "/sys/fs/cgroup/memory/vm-a" });
  assert.deepEqual(a?.ids, [
    { comm: "aide", uids: [0], descendants: true },
    { exe: "/usr/bin/tshark", uids: [0], descendants: true },
    { pid: 1234, uids: [0, 65534], descendants: true },
    { cgroup: "/sys/fs/cgroup/unified/ids1", uids: [0], descendants: true },
    { cmdline: "^tshark .*veth", descendants: true },
  ]);
  assert.deepEqual(a?.cpu, { cap: 250, idsCap: 30, weight: 256 });
  assert.deepEqual(a?.memory, { baseBytes: 1024 ** 3, floorBytes: 256 * 1024 ** 2, failsafeBytes: 1024 ** 3, balloon: AUTO_BALLOON });
  assert.deepEqual(b?.vm, { kind: "qemu", match: [{ cmdline: "guest=b", descendants: true }], qmpSocket: "/run/qemu/b.qmp" });
  assert.deepEqual(c?.vm, { kind: "xen", domain: 7 });
  assert.deepEqual(d?.vm, { kind: "libvirt", domain: "web1", uri: "qemu:///system" });
  assert.deepEqual(e?.vm, { kind: "libvirt", domain: "948ce2ac-3191-4a24-aa47-29115dd88f72", uri: "qemu:///system?socket=/tmp/x/libvirt-sock" });
  assert.throws(() => parseConfigText("cages:\n  - name: f\n    vm: { kind: libvirt, domain: --help }\n    cpu: { cap: 100 }\n", "bad.yaml"), /cages\[0\]\.vm\.domain: must be a libvirt domain name or UUID/);
});

void test("a config with five different errors reports all five, with paths and lines", () => {
  const text = [
    "cages:", //                                         1
    "  - name: web1", //                                 2
    "    vm: { kind: process, match: [{ comm: nginx }] }", // 3
    "    cpu: { cap: 0 }", //                            4  cap must be > 0
    "    memory: { base: 1GiB, floor: 2GiB }", //        5  floor > base
    "  - name: web1", //                                 6  duplicate name
    "    vm: { kind: vmware }", //                       7  unknown kind
    "    cpu: { cap: 10, colour: blue }", //             8  unknown field
  ].join("\n");
  assert.deepEqual(problemsOf(text), [
    { path: "cages[0].cpu.cap", message: "must be > 0", line: 4 },
    { path: "cages[0].memory.floor", message: "must be <= base (2GiB > 1GiB)", line: 5 },
    { path: "cages[1].name", message: 'duplicate cage name "web1" (also cages[0].name)', line: 6 },
    { path: "cages[1].vm.kind", message: 'unknown kind "vmware" (must be one of: process, cgroup, qemu, xen, libvirt)', line: 7 },
    { path: "cages[1].cpu.colour", message: "unknown field (allowed: cap, idsCap, weight, vmFloor, vmCeiling, failsafeCap, backend)", line: 8 },
  ]);
});

void test("the same errors in JSON get the same paths and their JSON lines", () => {
  const text = JSON.stringify(
    {
      cages: [
        { name: "web1", vm: { kind: "process", match: [{ comm: "nginx" }] }, cpu: { cap: 0 }, memory: { base: "1GiB", floor: "2GiB" } },
        { name: "web1", vm: { kind: "vmware" }, cpu: { cap: 10, colour: "blue" } },
      ],
    },
    null,
    2,
  );
  const lineOf = (needle: string): number => text.split("\n").findIndex((l) => l.includes(needle)) + 1;
  const problems = problemsOf(text, "test.json");
  assert.deepEqual(
    problems.map((p) => p.path),
    ["cages[0].cpu.cap", "cages[0].memory.floor", "cages[1].name", "cages[1].vm.kind", "cages[1].cpu.colour"],
  );
  const byPath = new Map(problems.map((p) => [p.path, p]));
  assert.equal(byPath.get("cages[0].cpu.cap")?.line, lineOf('"cap": 0'));
  assert.equal(byPath.get("cages[0].memory.floor")?.line, lineOf('"floor": "2GiB"'));
  assert.equal(byPath.get("cages[1].vm.kind")?.line, lineOf('"kind": "vmware"'));
  assert.equal(byPath.get("cages[1].cpu.colour")?.line, lineOf('"colour"'));
  assert.equal(byPath.get("cages[1].name")?.line, text.split("\n").map((l) => l.includes('"name": "web1"')).lastIndexOf(true) + 1);
});

void test("every kind of problem is reported with its exact path", () => {
  const text = `agent:
  cpuIntervalMs: 5
  prometheus: { port: 70000 }
  logLevel: loud
  runtimeDir: relative/dir
cages:
  - name: "bad name"
    vm: { kind: qemu, match: [] }
    ids: [{ descendants: false, uid: 0 }, { cmdline: "((", uid: 0 }, { comm: averyveryverylongname, uid: 0 }, { exe: tshark, uid: 0 }, { cgroup: /tmp/x, uid: 0 }]
    cpu: { cap: fast, idsCap: 30, weight: 0 }
    memory: { base: lots }
  - name: x
    vm: { kind: xen }
    cpu: { cap: 50, idsCap: 60 }
  - name: y
    cpu: { }
`;
  const got = problemsOf(text).map((p) => `${p.line ?? "?"}: ${p.path}: ${p.message}`);
  assert.deepEqual(got, [
    "2: agent.cpuIntervalMs: must be >= 10",
    "3: agent.prometheus.port: must be <= 65535",
    "4: agent.logLevel: must be one of: trace, debug, info, warn, error, fatal",
    "5: agent.runtimeDir: must be an absolute path without '..' segments",
    "7: cages[0].name: must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
    "8: cages[0].vm.qmpSocket: is required",
    "8: cages[0].vm.match: must list at least 1 item",
    "9: cages[0].ids[3].exe: must be an absolute path without '..' segments",
    "9: cages[0].ids[4].cgroup: must be a cgroup directory under /sys/fs/cgroup without '..' segments, e.g. /sys/fs/cgroup/memory/ids1 or /sys/fs/cgroup/unified/ids1",
    "9: cages[0].ids[0]: must have at least one selector (pid, comm, exe, cmdline, cgroup); descendants alone selects nothing",
    "9: cages[0].ids[1].cmdline: not a valid regular expression: Invalid regular expression: /((/: Unterminated group",
    "9: cages[0].ids[2].comm: is 21 bytes; the kernel keeps at most 15 of a command name, so it never matches (use exe or cmdline)",
    "10: cages[0].cpu.cap: must be a number",
    "10: cages[0].cpu.weight: must be >= 1",
    "11: cages[0].memory.floor: is required",
    "11: cages[0].memory.base: must be a size: bytes as an integer or a string like 512MiB (units B, KiB, MiB, GiB, TiB, KB, MB, GB, TB, K, M, G, T)",
    "13: cages[1].vm.domain: is required",
    "14: cages[1].cpu.idsCap: must be <= cap (60 > 50)",
    "15: cages[2].vm: is required",
    "16: cages[2].cpu.cap: is required",
  ]);
});

void test("hardening: failsafeCap in [vmFloor, vmCeiling], no '..' in paths, commands by expected name or absolute path, linear-time cmdline", () => {
  const text = `agent:
  runtimeDir: /run/offloadcage/../../etc
  actuators:
    balloon: { xlPath: ./xl, virshPath: /usr/bin/../../tmp/virsh }
cages:
  - name: a
    vm: { kind: cgroup, path: /sys/fs/cgroup/../../etc }
    ids: [{ cmdline: '(a)\\1', uid: 0 }, { cmdline: '(?=aide)a', uid: 0 }, { exe: /usr/../tmp/aide, uid: 0 }, { cmdline: "${"x".repeat(513)}", uid: 0 }]
    cpu: { cap: 50, vmFloor: 10, vmCeiling: 40, failsafeCap: 45 }
  - name: b
    vm: { kind: qemu, match: [{ comm: qemu }], qmpSocket: /run/../qmp.sock }
    cpu: { cap: 50, failsafeCap: 2 }
  - name: c
    vm: { kind: process, match: [{ cmdline: '^/usr/bin/aide\\b.*--check' }] }
    cpu: { cap: 50, vmFloor: 10, failsafeCap: 10 }
`;
  const got = problemsOf(text, "cages.yaml").map((p) => formatConfigProblem("cages.yaml", p));
  assert.deepEqual(got, [
    "cages.yaml:2: agent.runtimeDir: must be an absolute path without '..' segments",
    "cages.yaml:4: agent.actuators.balloon.xlPath: must be xl (looked up in PATH) or an absolute path without '..' segments",
    "cages.yaml:4: agent.actuators.balloon.virshPath: must be virsh (looked up in PATH) or an absolute path without '..' segments",
    "cages.yaml:7: cages[0].vm.path: must be a cgroup directory under /sys/fs/cgroup without '..' segments, e.g. /sys/fs/cgroup/memory/ids1 or /sys/fs/cgroup/unified/ids1",
    "cages.yaml:8: cages[0].ids[2].exe: must be an absolute path without '..' segments",
    "cages.yaml:8: cages[0].ids[3].cmdline: must NOT have more than 512 characters",
    "cages.yaml:8: cages[0].ids[0].cmdline: cannot run in linear time (backreferences and lookaround are not allowed): the resolver tests it against every command line",
    "cages.yaml:8: cages[0].ids[1].cmdline: cannot run in linear time (backreferences and lookaround are not allowed): the resolver tests it against every command line",
    "cages.yaml:9: cages[0].cpu.failsafeCap: must be within [vmFloor, vmCeiling] ([10, 40]), got 45",
    "cages.yaml:11: cages[1].vm.qmpSocket: must be an absolute path to the QMP UNIX socket, without '..' segments",
    "cages.yaml:12: cages[1].cpu.failsafeCap: must be within [the default vmFloor, cap] ([5, 50]), got 2",
  ]);
});

void test("commands: the expected bare name or any absolute path is accepted", () => {
  const cfg = parseConfigText("agent:\n  actuators:\n    balloon: { xlPath: /opt/xen/sbin/xl, virshPath: virsh }\ncages:\n  - name: a\n    vm: { kind: xen, domain: 1 }\n    cpu: { cap: 50 }\n", "c.yaml");
  assert.equal(cfg.agent.actuators.balloon?.xlPath, "/opt/xen/sbin/xl");
  assert.match(problemsOf("agent:\n  actuators:\n    balloon: { xlPath: sh }\ncages: []\n")[0]?.message ?? "", /must be xl \(looked up in PATH\)/);
});

void test("YAML syntax errors name their line and stop there", () => {
  const problems = problemsOf("cages:\n  - name: a\n    cpu: { cap: 1 }\n    cpu: { cap: 2 }\n");
  assert.equal(problems.length, 1);
  assert.equal(problems[0]?.line, 4);
  assert.match(problems[0]?.message ?? "", /^YAML syntax: Map keys must be unique/);
  const unclosed = problemsOf("cages: [\n  { name: a,\n");
  assert.ok(unclosed.length >= 1);
  for (const p of unclosed) {
    assert.match(p.message, /^YAML syntax: /);
    assert.ok((p.line ?? 0) >= 2, `line of ${p.message}`);
  }
});

void test("empty and non-mapping files are rejected clearly", () => {
  assert.deepEqual(problemsOf(""), [{ path: "", message: "the file is empty (expected a mapping with a cages: list)" }]);
  assert.deepEqual(problemsOf("- a\n- b\n"), [{ path: "(top level)", message: "must be a mapping (object)", line: 1 }]);
  assert.deepEqual(problemsOf("agent: {}\n"), [{ path: "cages", message: "is required", line: 1 }]);
});

void test("a missing file is a ConfigError naming the file", () => {
  let caught: ConfigError | undefined;
  try {
    loadConfigFile("/nonexistent/cages.yaml");
  } catch (err) {
    if (isConfigError(err)) caught = err;
  }
  assert.ok(caught);
  assert.equal(caught.fileName, "/nonexistent/cages.yaml");
  assert.deepEqual(caught.problems, [{ path: "", message: "cannot read config file: no such file" }]);
  assert.match(caught.message, /^\/nonexistent\/cages\.yaml: 1 problem:/);
});

void test("sizes: integers and unit strings", () => {
  assert.equal(parseSize(0), 0);
  assert.equal(parseSize(4096), 4096);
  assert.equal(parseSize("4096"), 4096);
  assert.equal(parseSize("10B"), 10);
  assert.equal(parseSize("1KiB"), 1024);
  assert.equal(parseSize("1K"), 1024);
  assert.equal(parseSize("1KB"), 1000);
  assert.equal(parseSize("256MiB"), 256 * 1024 ** 2);
  assert.equal(parseSize("1.5 GiB"), 1.5 * 1024 ** 3);
  assert.equal(parseSize("2GB"), 2e9);
  assert.equal(parseSize("1T"), 1024 ** 4);
  for (const bad of ["1mb", "-1", "1 GiBs", "GiB", "", -5, 1.5, "1e3"]) assert.equal(parseSize(bad), null, String(bad));
});

// agent.influx (history)

void test("agent.influx: true means every default, a mapping overrides some, a trailing slash is dropped", () => {
  const on = parseConfigText(`agent: { influx: true }\n${minimal}`, "a.yaml").agent.influx;
  assert.deepEqual(on, {
    url: "http://127.0.0.1:8086",
    username: null,
    passwordFile: null,
    database: "offloadcage",
    retention: "7d",
    downsampleEvery: "1m",
    downsampledRetention: "90d",
    batchPoints: 1000,
    flushMs: 1000,
    bufferPoints: 200000,
    bufferBytes: 256 * 1024 * 1024,
    fsyncMs: 1000,
    retryMinMs: 250,
    retryMaxMs: 10000,
    timeoutMs: 10000,
  });
  const some = parseConfigText(`agent: { influx: { url: "http://db:8086/", database: cages, retention: 2w, bufferPoints: 10, bufferSize: 2MiB, fsyncMs: 200 } }\n${minimal}`, "b.yaml").agent.influx;
  assert.equal(some?.url, "http://db:8086");
  assert.equal(some?.database, "cages");
  assert.equal(some?.retention, "2w");
  assert.equal(some?.bufferPoints, 10);
  assert.equal(some?.bufferBytes, 2 * 1024 * 1024);
  assert.equal(some?.fsyncMs, 200);
  assert.equal(some !== null && "bufferSize" in some, false, "the size is given in bytes as bufferBytes");
  assert.equal(some?.flushMs, 1000);
  assert.equal(parseConfigText(`agent: { influx: false }\n${minimal}`, "c.yaml").agent.influx, null);
});

void test("agent.influx: bad values are named with their path", () => {
  const text = `agent:
  influx:
    url: ftp://db
    database: 1bad
    retention: 30m
    downsampleEvery: 2x
    retryMinMs: 5000
    retryMaxMs: 1000
    colour: red
    bufferSize: 512KiB
${minimal}`;
  const lines = problemsOf(text).map((p) => `${p.line}: ${p.path}: ${p.message}`);
  assert.deepEqual(lines, [
    "3: agent.influx.url: must be an http:// or https:// URL with no path, e.g. http://127.0.0.1:8086",
    "4: agent.influx.database: must be 1-64 letters, digits or '_', not starting with a digit",
    "5: agent.influx.retention: must be at least 1h (InfluxDB's shortest retention), got 30m",
    "6: agent.influx.downsampleEvery: must be an InfluxQL duration: a whole number and m, h, d or w (e.g. 30m, 7d, 52w)",
    "8: agent.influx.retryMaxMs: retryMinMs must be <= retryMaxMs (5000 > 1000)",
    "9: agent.influx.colour: unknown field (allowed: url, username, passwordFile, database, retention, downsampleEvery, downsampledRetention, batchPoints, flushMs, bufferPoints, bufferSize, fsyncMs, retryMinMs, retryMaxMs, timeoutMs)",
    "10: agent.influx.bufferSize: must be at least 1MiB, got 512KiB",
  ]);
  const long = problemsOf(`agent: { influx: { downsampleEvery: 2h, downsampledRetention: 1h } }\n${minimal}`).map((p) => `${p.path}: ${p.message}`);
  assert.deepEqual(long, ["agent.influx.downsampleEvery: must be shorter than downsampledRetention (2h >= 1h)"]);
});

void test("identity: an IDS matcher names root unless allowNonRoot; an unknown user is an error on its line", () => {
  const text = `cages:
  - name: a
    vm: { kind: process, match: [{ comm: qemu }] }
    ids:
      - { comm: aide }
      - { cmdline: "aide --check", user: nobody }
      - { comm: aide, user: no-such-user-here }
      - { exe: /usr/sbin/aide, user: nobody, allowNonRoot: true }
    cpu: { cap: 50 }
`;
  const got = problemsOf(text, "cages.yaml").map((p) => formatConfigProblem("cages.yaml", p));
  assert.deepEqual(got, [
    "cages.yaml:5: cages[0].ids[0]: an IDS matcher without uid or user also selects other users' processes, so any user could pose as the IDS (and get the VM capped); add uid: 0 (or user: root), or the IDS's own user with allowNonRoot: true",
    'cages.yaml:6: cages[0].ids[1].user: user "nobody" (uid 65534) is not root, so a process of that user could pose as the IDS; set allowNonRoot: true on this matcher if that user runs the IDS',
    'cages.yaml:7: cages[0].ids[2].user: user "no-such-user-here" does not exist in /etc/passwd',
  ]);
  const ok = parseConfigText(text.replace(/ +- \{ comm: aide \}\n/, "").replace(/, user: nobody \}/, ", uid: 0 }").replace(/user: no-such-user-here/, "user: root"), "ok.yaml");
  assert.deepEqual(ok.cages[0]?.ids.map((m) => m.uids), [[0], [0], [65534]]);
  assert.equal(ok.cages[0]?.vm.kind === "process" && ok.cages[0].vm.match[0]?.uids, undefined);
});

void test("ids entries { vm: ... } become cage.idsVms (any vm kind, normalised like cage.vm); matchers stay in ids", () => {
  const config = parseConfigText(`
cages:
  - name: web1
    vm: { kind: process, match: [{ comm: nginx }] }
    ids:
      - { comm: aide, uid: 0 }
      - vm: { kind: qemu, qmpSocket: /run/ids.qmp, match: [{ cmdline: "guest=ids1", uid: 0 }] }
    cpu: { cap: 100, idsCap: 40 }
  - name: web2
    vm: { kind: process, match: [{ comm: nginx2 }] }
    ids: [{ vm: { kind: libvirt, domain: ids2 } }]
    cpu: { cap: 100, idsCap: 40 }
  - name: web3
    vm: { kind: xen, domain: web3 }
    ids: [{ vm: { kind: xen, domain: 7 } }]
    cpu: { cap: 100, idsCap: 40 }
`, "test.yaml");
  const [web1, web2, web3] = config.cages;
  assert.deepEqual(web1?.ids, [{ comm: "aide", uids: [0], descendants: true }]);
  assert.deepEqual(web1?.idsVms, [{ kind: "qemu", qmpSocket: "/run/ids.qmp", match: [{ cmdline: "guest=ids1", uids: [0], descendants: true }] }]);
  assert.deepEqual(web2?.ids, []);
  assert.deepEqual(web2?.idsVms, [{ kind: "libvirt", domain: "ids2", uri: "qemu:///system" }]);
  assert.deepEqual(web3?.idsVms, [{ kind: "xen", domain: 7 }]);
  assert.equal(parseConfigText(minimal, "test.yaml").cages[0]?.idsVms, undefined);
});

void test("an IDS-VM's vm is checked by the cage vm's schema, errors naming the field", () => {
  const got = problemsOf(`
cages:
  - name: web1
    vm: { kind: process, match: [{ comm: nginx }] }
    ids:
      - vm: { kind: libvirt, domain: "-bad" }
      - vm: { kind: hyperv, domain: x }
      - vm: { kind: xen }
    cpu: { cap: 100, idsCap: 40 }
`).map((p) => `${p.path}: ${p.message}`);
  assert.ok(got.includes("cages[0].ids[0].vm.domain: must be a libvirt domain name or UUID: letters, digits, '.', '_', ':', '+', '-', not starting with '-'"), got.join("\n"));
  assert.ok(got.includes('cages[0].ids[1].vm.kind: unknown kind "hyperv" (must be one of: process, cgroup, qemu, xen, libvirt)'), got.join("\n"));
  assert.ok(got.includes("cages[0].ids[2].vm.domain: is required"), got.join("\n"));
});

void test("ids entry { vm: { kind: xen }, cr3From: helper } becomes cage.idsCr3 beside cage.idsVms; bad values name the field", () => {
  const config = parseConfigText(`
cages:
  - name: web
    vm: { kind: xen, domain: web }
    ids: [{ vm: { kind: xen, domain: ids-vm }, cr3From: helper }]
    cpu: { cap: 50, idsCap: 25 }
`, "test.yaml");
  assert.deepEqual(config.cages[0]?.idsVms, [{ kind: "xen", domain: "ids-vm" }]);
  assert.deepEqual(config.cages[0]?.idsCr3, [{ domain: "ids-vm", from: "helper" }]);
  assert.equal(parseConfigText(minimal, "test.yaml").cages[0]?.idsCr3, undefined);
  const got = problemsOf(`
cages:
  - name: web
    vm: { kind: xen, domain: web }
    ids: [{ vm: { kind: xen, domain: ids-vm }, cr3From: hypercall }]
    cpu: { cap: 50, idsCap: 25 }
  - name: q
    vm: { kind: xen, domain: q }
    ids: [{ vm: { kind: cgroup, path: /sys/fs/cgroup/ids }, cr3From: helper }]
    cpu: { cap: 50, idsCap: 25 }
`).map((p) => `${p.path}: ${p.message}`);
  assert.ok(got.includes("cages[0].ids[0].cr3From: must be one of: helper"), got.join("\n"));
  assert.ok(got.includes("cages[1].ids[0].cr3From: cr3From needs vm.kind xen (CR3s come from xentrace); this IDS-VM is cgroup"), got.join("\n"));
});
