// cage install / cage uninstall into a scratch --root: real files, the real CLI, real systemctl
// (--root, offline) and systemd-analyze verify on the unit install wrote.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { unitText, type InstallManifest } from "../../cli/installCommand.js";
import { AGENT_NODE_FLAGS } from "../../runtime/agentNodeFlags.js";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const cageJs = join(repoRoot, "dist", "cli", "cage.js");

function cage(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cageJs, ...args], { encoding: "utf8", timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every file and symlink below `dir`, relative to it, sorted. */
function filesBelow(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

test("cage install puts the agent, the unit and the example cage file in place; systemd-analyze verify passes; uninstall removes them", { timeout: 300_000 }, (t) => {
  const root = mkdtempSync(join(tmpdir(), "oc-install-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));

  const installed = cage(["install", "--root", root]);
  assert.equal(installed.status, 0, installed.stderr);
  const prefix = join(root, "opt", "offloadcage");
  for (const f of ["dist/cli/cage.js", "dist/cli/runCommand.js", "bpf", "package.json", "node_modules/zeromq/package.json", "node_modules/yaml/package.json", "docs/service.md"]) {
    assert.ok(existsSync(join(prefix, f)), `${f} installed`);
  }
  assert.equal(existsSync(join(prefix, "node_modules", "typescript")), false, "no dev dependency installed");
  assert.equal(existsSync(join(prefix, "node_modules", "eslint")), false, "no dev dependency installed");
  assert.equal(existsSync(join(prefix, "dist", "test")), false, "the tests are not installed");
  // The libbpf CPU program (built by scripts/build.sh, whose toolchain npm test installs) runs from the install too.
  assert.ok(statSync(join(prefix, "dist", "bpf", "cpuTime")).mode & 0o100, "dist/bpf/cpuTime installed, executable");
  assert.equal(spawnSync(join(prefix, "dist", "bpf", "cpuTime"), []).status, 2, "the installed loader runs (usage, exit 2)");
  assert.equal(existsSync(join(prefix, "dist", "bpf", "cpuTime.bpf.o")), false, "no build intermediates");

  const unitPath = join(root, "etc", "systemd", "system", "offloadcage.service");
  const unit = readFileSync(unitPath, "utf8");
  assert.match(unit, new RegExp(`^ExecStart=${process.execPath} --max-semi-space-size=2 --optimize-for-size /opt/offloadcage/dist/cli/cage\\.js run --config /etc/offloadcage/cages\\.yaml$`, "m"));
  assert.equal(AGENT_NODE_FLAGS.join(" "), "--max-semi-space-size=2 --optimize-for-size", "the unit's flags are the children's");
  assert.doesNotMatch(unit, /@[A-Z_]+@/);
  const config = join(root, "etc", "offloadcage", "cages.yaml");
  assert.equal(readFileSync(config, "utf8"), readFileSync(join(repoRoot, "examples", "cages.yaml"), "utf8"));

  // systemd-analyze exits 0 even on unknown keys or bad values: an empty report is the pass.
  const verify = spawnSync("systemd-analyze", ["verify", unitPath], { encoding: "utf8" });
  assert.equal(verify.error, undefined, "systemd-analyze runs on this machine");
  assert.equal(verify.status, 0, verify.stderr);
  assert.equal(`${verify.stdout}${verify.stderr}`.trim(), "", "systemd-analyze verify reports nothing");

  // The installed copy runs on its own files and production dependencies.
  const validate = spawnSync(process.execPath, [join(prefix, "dist", "cli", "cage.js"), "validate", config], { encoding: "utf8" });
  assert.equal(validate.status, 0, validate.stderr);

  const again = cage(["install", "--root", root]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /offloadcage\.service already exists; run cage uninstall first/);

  // Enabled the way `systemctl enable` leaves it on disk; uninstall must take that away too.
  execFileSync("systemctl", [`--root=${root}`, "enable", "offloadcage.service"], { stdio: "ignore" });
  const wants = join(root, "etc", "systemd", "system", "multi-user.target.wants", "offloadcage.service");
  assert.ok(lstatSync(wants).isSymbolicLink());

  const manifest = JSON.parse(readFileSync(join(prefix, "install-manifest.json"), "utf8")) as InstallManifest;
  assert.deepEqual(manifest.entries.filter((e) => e.kind !== "dir"), [
    { path: "/opt/offloadcage", kind: "tree" },
    { path: "/etc/systemd/system/offloadcage.service", kind: "file" },
    { path: "/etc/offloadcage/cages.yaml", kind: "config" },
  ]);

  const removed = cage(["uninstall", "--root", root]);
  assert.equal(removed.status, 0, removed.stderr);
  assert.deepEqual(filesBelow(root), ["etc/offloadcage/cages.yaml"], "only the operator's cage file is left");
  assert.equal(existsSync(join(root, "opt")), false, "the folders install created are gone");

  // --purge on a fresh root: the cage file install created goes too, and nothing at all is left.
  rmSync(join(root, "etc"), { recursive: true });
  assert.equal(cage(["install", "--root", root]).status, 0);
  const purged = cage(["uninstall", "--root", root, "--purge"]);
  assert.equal(purged.status, 0, purged.stderr);
  assert.deepEqual(readdirSync(root), [], "the root is empty again");

  const none = cage(["uninstall", "--root", root]);
  assert.equal(none.status, 1);
  assert.match(none.stderr, /no install manifest at .*install-manifest\.json/);
});

test("cage install never overwrites an operator's cage file, and uninstall --purge leaves it", { timeout: 300_000 }, (t) => {
  const root = mkdtempSync(join(tmpdir(), "oc-install-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, "etc", "offloadcage"), { recursive: true });
  const config = join(root, "etc", "offloadcage", "cages.yaml");
  writeFileSync(config, "# the operator's own\n");
  const installed = cage(["install", "--root", root, "--prefix", "/srv/oc"]);
  assert.equal(installed.status, 0, installed.stderr);
  assert.match(installed.stdout, /kept the existing cage file/);
  assert.match(readFileSync(join(root, "etc", "systemd", "system", "offloadcage.service"), "utf8"), /^ExecStart=\S+ (--\S+ )*\/srv\/oc\/dist\/cli\/cage\.js run /m);
  const purged = cage(["uninstall", "--root", root, "--prefix", "/srv/oc", "--purge"]);
  assert.equal(purged.status, 0, purged.stderr);
  assert.deepEqual(filesBelow(root), ["etc/offloadcage/cages.yaml"]);
  assert.equal(readFileSync(config, "utf8"), "# the operator's own\n");
});

test("bad command lines and paths are refused with a message naming them", () => {
  const rel = cage(["install", "--root", "relative/dir"]);
  assert.equal(rel.status, 2);
  assert.match(rel.stderr, /cage install: --root must be an absolute path, got "relative\/dir"/);
  const slash = cage(["uninstall", "--prefix", "/"]);
  assert.equal(slash.status, 2);
  assert.match(slash.stderr, /cage uninstall: --prefix must be an absolute path below \/, got "\/"/);
  assert.throws(() => unitText("ExecStart=@NODE@ @PREFIX@ @CONFIG@ @OTHER@", "/usr/bin/node", "/opt/oc", "/etc/oc.yaml"), /placeholder @OTHER@ left unfilled/);
  assert.throws(() => unitText("ExecStart=@NODE@", "node", "/opt/oc", "/etc/oc.yaml"), /the node path must be absolute and without spaces, got "node"/);
});
