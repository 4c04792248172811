// scripts/ensure-host.sh (`npm start`'s set-up) and scripts/apt-install.sh (how both set-up
// scripts install packages): they leave the host's services as they are.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

// Compiled to dist/test/scripts/: the repository root is three levels up.
const root = fileURLToPath(new URL("../../../", import.meta.url));

/** A harmless unit of our own, enabled the way systemctl sees it on disk (a wants/ symlink). */
const DUMMY_UNIT = "oc-ensure-host-test-dummy.service";

/** Writes an executable that appends its name and arguments to `log`, then exits `code`. */
function writeLoggingFake(dir: string, name: string, log: string, code = 0, extra = ""): void {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\necho "${name} $*" >> "${log}"\n${extra}exit ${code}\n`);
  chmodSync(path, 0o755);
}

test("npm start's set-up (scripts/ensure-host.sh) leaves an enabled system service enabled and changes no service state", { timeout: 120_000 }, (t) => {
  const unitPath = join("/etc/systemd/system", DUMMY_UNIT);
  const wantsDir = "/etc/systemd/system/multi-user.target.wants";
  const wantsLink = join(wantsDir, DUMMY_UNIT);
  const scratch = mkdtempSync(join(tmpdir(), "oc-ensure-host-"));
  t.after(() => {
    rmSync(wantsLink, { force: true });
    rmSync(unitPath, { force: true });
    rmSync(scratch, { recursive: true, force: true });
  });
  writeFileSync(unitPath, "[Unit]\nDescription=OffloadCage test dummy (ensureHost.test.ts)\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n");
  mkdirSync(wantsDir, { recursive: true });
  symlinkSync(unitPath, wantsLink);
  assert.equal(execFileSync("systemctl", ["is-enabled", DUMMY_UNIT], { encoding: "utf8" }).trim(), "enabled", "the dummy unit is enabled before the script runs");

  // Fakes first in PATH: a fake systemctl (and service, invoke-rc.d) that only log their calls.
  const fakeBin = join(scratch, "bin");
  mkdirSync(fakeBin);
  const callLog = join(scratch, "calls.log");
  writeFileSync(callLog, "");
  for (const name of ["systemctl", "service", "invoke-rc.d", "deb-systemd-invoke"]) writeLoggingFake(fakeBin, name, callLog);
  const r = spawnSync("bash", [join(root, "scripts", "ensure-host.sh")], {
    cwd: root,
    encoding: "utf8",
    timeout: 100_000,
    env: { ...process.env, PATH: `${fakeBin}:${process.env.PATH ?? ""}` },
  });
  assert.equal(r.status, 0, `ensure-host.sh failed: ${r.stdout}${r.stderr}`);

  const calls = readFileSync(callLog, "utf8").split("\n").filter((l) => l !== "");
  const changing = calls.filter((l) => /\b(disable|stop|mask|kill|restart|reload|start|enable|daemon-reload|set-property|edit)\b/.test(l));
  assert.deepEqual(changing, [], "no call that changes a service's state");
  assert.ok(lstatSync(wantsLink).isSymbolicLink(), "the wants/ symlink is still there");
  assert.equal(execFileSync("systemctl", ["is-enabled", DUMMY_UNIT], { encoding: "utf8" }).trim(), "enabled", "still enabled afterwards");
});

test("no project script disables, stops or masks a service", () => {
  const scripts = readdirSync(join(root, "scripts")).filter((f) => f.endsWith(".sh"));
  assert.ok(scripts.includes("ensure-host.sh") && scripts.includes("ensure-test-tools.sh"));
  const texts = [...scripts.map((f) => ({ name: `scripts/${f}`, text: readFileSync(join(root, "scripts", f), "utf8") })), { name: "package.json", text: readFileSync(join(root, "package.json"), "utf8") }];
  for (const { name, text } of texts) {
    const lines = text.split("\n").filter((l) => !l.trimStart().startsWith("#") && /\bsystemctl\b.*\b(disable|stop|mask)\b|\bservice\s+\S+\s+stop\b|update-rc\.d\s+\S+\s+(disable|remove)/.test(l));
    assert.deepEqual(lines, [], `${name} changes a service it did not create`);
  }
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> };
  assert.match(pkg.scripts.prestart ?? "", /scripts\/ensure-host\.sh/);
  assert.doesNotMatch(pkg.scripts.prestart ?? "", /ensure-test-tools/, "npm start installs only what the agent needs");
  assert.match(pkg.scripts.pretest ?? "", /scripts\/ensure-test-tools\.sh/);
  assert.match(pkg.scripts["test:xen"] ?? "", /scripts\/ensure-test-tools\.sh/);
  // What the agent does not need is not in npm start's set-up.
  const agentSetUp = readFileSync(join(root, "scripts", "ensure-host.sh"), "utf8");
  for (const labTool of ["nginx", "wrk", "tshark", "influxdb", "prometheus", "qemu"]) assert.doesNotMatch(agentSetUp, new RegExp(`\\b${labTool}\\b`), `ensure-host.sh installs ${labTool}`);
});

/** Runs apt_install_without_services with a fake apt-get (first in PATH) and a scratch policy-rc.d path. */
function runAptInstall(scratch: string, aptExit: number): { status: number | null; output: string; calls: string[] } {
  const fakeBin = join(scratch, "bin");
  mkdirSync(fakeBin, { recursive: true });
  const callLog = join(scratch, "apt.log");
  writeFileSync(callLog, "");
  const policy = join(scratch, "policy-rc.d");
  // The fake apt-get records what a maintainer script would get from policy-rc.d at that moment.
  writeLoggingFake(fakeBin, "apt-get", callLog, aptExit, `if [ -x "${policy}" ]; then "${policy}" nginx start; echo "policy-rc.d says $?" >> "${callLog}"; else echo "no policy-rc.d" >> "${callLog}"; fi\n`);
  const r = spawnSync("bash", ["-c", `. "${join(root, "scripts", "apt-install.sh")}" && apt_install_without_services oc-test nginx wrk`], {
    encoding: "utf8",
    env: { ...process.env, PATH: `${fakeBin}:${process.env.PATH ?? ""}`, OFFLOADCAGE_POLICY_RC_D: policy },
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}`, calls: readFileSync(callLog, "utf8").split("\n").filter((l) => l !== "") };
}

test("packages are installed with a policy-rc.d that forbids starting services, removed afterwards", (t) => {
  const scratch = mkdtempSync(join(tmpdir(), "oc-apt-install-"));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  const ok = runAptInstall(scratch, 0);
  assert.equal(ok.status, 0, ok.output);
  assert.deepEqual(ok.calls, ["apt-get update -qq", "policy-rc.d says 101", "apt-get install -y -qq --no-install-recommends nginx wrk", "policy-rc.d says 101"]);
  assert.equal(existsSync(join(scratch, "policy-rc.d")), false, "removed after the install");

  const failed = runAptInstall(scratch, 100);
  assert.equal(failed.status, 100, "a failed apt-get fails the install");
  assert.deepEqual(failed.calls, ["apt-get update -qq", "policy-rc.d says 101"], "install is not tried after a failed update");
  assert.equal(existsSync(join(scratch, "policy-rc.d")), false, "removed after a failed install too");
});

test("an operator's own policy-rc.d is used as it is and left in place", (t) => {
  const scratch = mkdtempSync(join(tmpdir(), "oc-apt-install-"));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  const policy = join(scratch, "policy-rc.d");
  const theirs = "#!/bin/sh\n# the operator's\nexit 0\n";
  writeFileSync(policy, theirs);
  chmodSync(policy, 0o755);
  const r = runAptInstall(scratch, 0);
  assert.equal(r.status, 0, r.output);
  assert.deepEqual(r.calls, ["apt-get update -qq", "policy-rc.d says 0", "apt-get install -y -qq --no-install-recommends nginx wrk", "policy-rc.d says 0"]);
  assert.equal(readFileSync(policy, "utf8"), theirs, "not overwritten");
});
