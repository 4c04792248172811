/**
 * The built `cage` CLI as a new user meets it: every command answers --help with its usage,
 * --version, the command list, and a bad command line exits 2 before anything starts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { CAGE_JS, pidsMatching, runCage } from "./cliHarness.js";
import { DEFAULT_CONFIG_PATH } from "../../cli/runOptions.js";
import { fixturePath, FIXTURE_CPU_HZ_ARG } from "../collectors/xentrace/fixtures.js";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const distRoot = fileURLToPath(new URL("../../", import.meta.url));

const COMMANDS: [string[], RegExp][] = [
  [["run"], /^usage: cage run \[--config FILE\]/],
  [["demo"], /^usage: cage demo /],
  [["top"], /^usage: cage top /],
  [["validate"], /^usage: cage validate FILE /],
  [["measure"], /^usage: cage measure /],
  [["install"], /^usage: cage install \[--root DIR\] \[--prefix DIR\]/],
  [["uninstall"], /^usage: cage uninstall \[--root DIR\] \[--prefix DIR\] \[--purge\]/],
  [["lab"], /^usage: cage lab cpu\|memory\|chaos\|fleet /],
  [["lab", "fleet"], /^usage: cage lab fleet --hosts N --cages M /],
  [["lab", "chaos"], /^usage: cage lab chaos --mode short\|long /],
  [["lab", "cpu"], /^usage: cage lab cpu --ids packet\|file\|tripwire --actuators on\|off /],
  [["lab", "memory"], /^usage: cage lab memory --ids malloc\|file\|tripwire /],
  [["xentrace"], /^usage: cage xentrace summarize /],
  [["xentrace", "summarize"], /^usage: cage xentrace summarize FILE /],
  [["collector"], /^usage: cage collector cpu\|memory\|pagecache\|xentrace /],
  [["collector", "cpu"], /^usage: cage collector cpu --interval-ms N --endpoint EP/],
  [["collector", "memory"], /^usage: cage collector memory --config FILE --endpoint EP/],
  [["collector", "pagecache"], /^usage: cage collector pagecache \[--cgroup PATH\] \[--config FILE\] --endpoint EP/],
  [["collector", "xentrace"], /^usage: cage collector xentrace --endpoint EP/],
  [["actuator"], /^usage: cage actuator cpu\|limiter\|balloon /],
  [["actuator", "cpu"], /^usage: cage actuator cpu --config FILE/],
  [["actuator", "limiter"], /^usage: cage actuator limiter --config FILE/],
  [["actuator", "balloon"], /^usage: cage actuator balloon --config FILE/],
];

void test("every command and subcommand: --help and -h print its usage on stdout, exit 0", async () => {
  for (const [words, usage] of COMMANDS) {
    for (const flag of ["--help", "-h"]) {
      const r = await runCage([...words, flag], process.env, 30_000);
      assert.equal(r.code, 0, `cage ${words.join(" ")} ${flag}: ${r.stderr}`);
      assert.match(r.stdout, usage, `cage ${words.join(" ")} ${flag}`);
      assert.equal(r.stderr, "", `cage ${words.join(" ")} ${flag}`);
    }
  }
});

void test("cage, cage --help, cage --version", async () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string };
  const version = await runCage(["--version"]);
  assert.deepEqual(version, { code: 0, stdout: `${pkg.version}\n`, stderr: "" });
  const help = await runCage(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: cage <command>/);
  for (const name of ["run", "demo", "top", "validate", "measure", "lab", "xentrace", "collector", "actuator", "--version"]) {
    assert.match(help.stdout, new RegExp(`^  ${name} `, "m"), name);
  }
  const bare = await runCage([]);
  assert.equal(bare.code, 2);
  assert.equal(bare.stdout, help.stdout);
  const unknown = await runCage(["nope"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^cage: unknown command "nope"\n/);
  const noSub = await runCage(["lab"]);
  assert.equal(noSub.code, 2);
  assert.match(noSub.stderr, /^cage lab: needs a subcommand; expected cpu, memory, chaos or fleet\n/);
});

/** The agent's processes a `cage run`/`cage demo` of this tree would start. */
async function agentProcesses(): Promise<number[]> {
  const found = await Promise.all(["cli/demo/demoWorkload.js", "collectors/", "pipeline/main.js", "actuators/"].map((p) => pidsMatching(join(distRoot, p))));
  return found.flat();
}

void test("unknown flags and stray positionals: exit 2 naming them, and nothing started", async () => {
  const runtimeDir = mkdtempSync(join(tmpdir(), "cage-cli-"));
  try {
    const env = { ...process.env, OFFLOADCAGE_RUNTIME_DIR: runtimeDir };
    const before = await agentProcesses();
    const cases: [string[], string][] = [
      [["run", "--no-such-flag"], 'cage run: unknown option "--no-such-flag"'],
      [["run", "cages.yaml"], 'cage run: unexpected argument "cages.yaml"'],
      [["run", "--influx", "http://127.0.0.1:8086"], 'cage run: unknown option "--influx"'],
      [["demo", "--no-such-flag"], 'cage demo: unknown option "--no-such-flag"'],
      [["demo", "cages.yaml"], 'cage demo: unexpected argument "cages.yaml"'],
      [["top", "--no-such-flag"], 'cage top: unknown option "--no-such-flag"'],
      [["measure", "--no-such-flag", "--", "true"], 'cage measure: unknown option "--no-such-flag"'],
      [["collector", "memory", "--config", "c.yaml", "--endpoint", "ipc:///x", "stray"], 'cage collector memory: unexpected argument "stray"'],
      [["actuator", "limiter", "--config", "c.yaml", "--no-such-flag"], 'cage actuator limiter: unknown option "--no-such-flag"'],
      [["lab", "cpu", "--ids", "file", "--actuators", "off", "stray"], 'cage lab cpu: unexpected argument "stray"'],
    ];
    for (const [args, message] of cases) {
      const r = await runCage(args, env, 30_000);
      assert.equal(r.code, 2, `cage ${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stderr.split("\n")[0], message);
      assert.match(r.stderr, /\nusage: cage /, args.join(" "));
      assert.equal(r.stdout, "");
      // Children of a started agent would outlive an exit 2 (no supervisor stop ran): none may exist.
      assert.deepEqual((await agentProcesses()).filter((pid) => !before.includes(pid)), [], `cage ${args.join(" ")} started a process`);
    }
    assert.deepEqual(readdirSync(runtimeDir), [], "nothing was written to the runtime dir");
  } finally {
    rmSync(runtimeDir, { recursive: true, force: true });
  }
});

void test("cage run without --config reads the default cage file, and says how to go on when there is none", { skip: existsSync(DEFAULT_CONFIG_PATH) ? `${DEFAULT_CONFIG_PATH} exists on this host` : false }, async () => {
  const r = await runCage(["run"], process.env, 30_000);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`^cage run: no cage file at ${DEFAULT_CONFIG_PATH.replace(/\./g, "\\.")}; .*--config FILE.*\`cage demo\``));
});

void test("cage validate --json: one JSON object on stdout, exit 0 or 2", async () => {
  const good = join(repoRoot, "examples", "cages.yaml");
  const ok = await runCage(["validate", "--json", good]);
  assert.equal(ok.code, 0);
  assert.deepEqual(JSON.parse(ok.stdout), { file: good, valid: true, cages: 4, problems: [] });
  const dir = mkdtempSync(join(tmpdir(), "cage-cli-"));
  try {
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "cages:\n  - name: a\n    vm: { kind: xen, domain: 1 }\n    cpu: { cap: 0 }\n");
    const r = await runCage(["validate", bad, "--json"]);
    assert.equal(r.code, 2);
    assert.deepEqual(JSON.parse(r.stdout), { file: bad, valid: false, cages: null, problems: [{ file: bad, line: 4, path: "cages[0].cpu.cap", message: "must be > 0" }] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test("cage --help and cage xentrace summarize load neither ZeroMQ nor OpenTelemetry", () => {
  const dir = mkdtempSync(join(tmpdir(), "cage-cli-"));
  try {
    // A module hook that refuses the heavy packages: a command that needs them fails.
    writeFileSync(
      join(dir, "hooks.mjs"),
      'export async function resolve(specifier, context, next) {\n  if (/^(zeromq|@opentelemetry\\/)/.test(specifier)) throw new Error(`refused ${specifier}`);\n  return next(specifier, context);\n}\n',
    );
    writeFileSync(join(dir, "register.mjs"), `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(join(dir, "hooks.mjs")).href)});\n`);
    const cage = (args: string[]) => spawnSync(process.execPath, ["--import", pathToFileURL(join(dir, "register.mjs")).href, CAGE_JS, ...args], { encoding: "utf8", timeout: 30_000 });
    const help = cage(["--help"]);
    assert.equal(help.status, 0, help.stderr);
    const summary = cage(["xentrace", "summarize", fixturePath("trace-sched-2dom.bin"), "--cpu-hz", FIXTURE_CPU_HZ_ARG, "--json"]);
    assert.equal(summary.status, 0, summary.stderr);
    assert.ok((JSON.parse(summary.stdout) as { records: number }).records > 0);
    // The hook does refuse: `cage top` needs ZeroMQ.
    const top = cage(["top", "--help"]);
    assert.equal(top.status, 1);
    assert.match(top.stderr, /refused zeromq/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
