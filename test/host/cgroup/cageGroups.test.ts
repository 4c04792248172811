// Creating the agent's own groups and checking groups before use. The v2 cases run on a temporary
// directory tree that mimics cgroupfs (fakeCgroupfs below: plain files, so a write replaces the
// file's text and mkdir makes no control files; the test lays out what the kernel would show).
// The last test does for real what this hybrid host's v2 mount allows (no controllers there).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupLayout, ownGroup, type CgroupTarget } from "../../../host/cgroup/cagePlan.js";
import { checkGroup, ensureOwnGroup, readHostMounts, readOwnV2Cgroup } from "../../../host/cgroup/cageGroups.js";
import { parseV2CgroupOfProcess } from "../../../host/cgroup/cgroupMounts.js";
import { rmdirWithRetry } from "../../../host/cgroup/trackingCgroup.js";

/** A v2 hierarchy in a temporary folder: each group a folder with the files given. */
function fakeCgroupfs(groups: Record<string, Record<string, string>>): { root: string; remove(): void } {
  const root = mkdtempSync(join(tmpdir(), "oc-fake-cgroupfs-"));
  for (const [group, files] of Object.entries(groups)) {
    const dir = join(root, group);
    mkdirSync(dir, { recursive: true });
    for (const [name, text] of Object.entries({ "cgroup.procs": "", ...files })) writeFileSync(join(dir, name), text);
  }
  return { root, remove: () => rmSync(root, { recursive: true, force: true }) };
}

const read = (p: string): string => readFileSync(p, "utf8");
const SERVICE = "system.slice/offloadcage.service";

void test("v2 subtree: the agent's processes move into its leaf, then cpu is enabled from the service down to the cage", () => {
  const fs = fakeCgroupfs({
    [SERVICE]: { "cgroup.controllers": "cpu memory pids", "cgroup.subtree_control": "", "cgroup.procs": "4242\n" },
    [`${SERVICE}/cages`]: { "cgroup.controllers": "cpu memory pids", "cgroup.subtree_control": "" },
    [`${SERVICE}/cages/web`]: { "cgroup.controllers": "cpu", "cgroup.subtree_control": "cpu" },
  });
  try {
    const layout = cgroupLayout({ v2: fs.root, v1: new Map() }, `/${SERVICE}`);
    const ids = ownGroup(layout, "web", "ids", "cpu");
    assert.equal(ids.dir, join(fs.root, SERVICE, "cages/web/ids"));
    ensureOwnGroup(layout, ids, ["cpu"]);
    assert.equal(read(join(fs.root, SERVICE, "agent/cgroup.procs")), "4242", "the agent's process went to its leaf");
    assert.equal(read(join(fs.root, SERVICE, "cgroup.subtree_control")), "+cpu");
    assert.equal(read(join(fs.root, SERVICE, "cages/cgroup.subtree_control")), "+cpu");
    assert.equal(read(join(fs.root, SERVICE, "cages/web/cgroup.subtree_control")), "cpu", "already enabled: not written");
    assert.ok(existsSync(ids.dir));
  } finally {
    fs.remove();
  }
});

void test("v2 subtree: a controller the service was not delegated is named, and nothing is created or moved", () => {
  const fs = fakeCgroupfs({ [SERVICE]: { "cgroup.controllers": "memory pids", "cgroup.subtree_control": "", "cgroup.procs": "4242\n" } });
  try {
    const layout = cgroupLayout({ v2: fs.root, v1: new Map() }, `/${SERVICE}/agent`);
    const ids = ownGroup(layout, "web", "ids", "cpu");
    assert.throws(
      () => ensureOwnGroup(layout, ids, ["cpu"]),
      new RegExp(`^CgroupAccessError: the cpu controller is not enabled in the agent's subtree ${join(fs.root, SERVICE)} \\(its cgroup.controllers: "memory pids"; the parent's cgroup.subtree_control lacks "cpu"; under systemd set Delegate=yes on the service\\)$`),
    );
    assert.equal(existsSync(join(fs.root, SERVICE, "agent")), false);
    assert.equal(existsSync(join(fs.root, SERVICE, "cages")), false);
  } finally {
    fs.remove();
  }
});

void test("a login session's scope is not the agent's to rearrange: refused, nothing moved", () => {
  const session = "user.slice/user-0.slice/session-4.scope";
  const fs = fakeCgroupfs({ [session]: { "cgroup.controllers": "cpu memory pids", "cgroup.subtree_control": "", "cgroup.procs": "777\n" } });
  try {
    const layout = cgroupLayout({ v2: fs.root, v1: new Map() }, `/${session}`);
    assert.throws(() => ensureOwnGroup(layout, ownGroup(layout, "web", "ids", "cpu"), ["cpu"]), new RegExp(`refusing to create groups under ${join(fs.root, session)}: it is a login session's scope, not delegated to the agent`));
    assert.equal(existsSync(join(fs.root, session, "agent")), false);
  } finally {
    fs.remove();
  }
});

void test("groups are created only inside the agent's subtree, and only its own", () => {
  const fs = fakeCgroupfs({ [SERVICE]: { "cgroup.controllers": "cpu", "cgroup.subtree_control": "" } });
  try {
    const layout = cgroupLayout({ v2: fs.root, v1: new Map() }, `/${SERVICE}`);
    const outside: CgroupTarget = { kind: "cgroup", dir: join(fs.root, "machine.slice/vm"), version: 2, own: true };
    assert.throws(() => ensureOwnGroup(layout, outside, []), new RegExp(`refusing to create ${outside.dir}: outside the agent's subtree ${join(fs.root, SERVICE)}`));
    assert.throws(() => ensureOwnGroup(layout, { ...outside, own: false }, []), /is not one of the agent's own groups: it is used as found, never created/);
    assert.equal(existsSync(outside.dir), false);
  } finally {
    fs.remove();
  }
});

void test("checkGroup: a group that does not exist, one whose controller is not enabled, and one fit for use", () => {
  const fs = fakeCgroupfs({
    "": { "cgroup.controllers": "cpu memory", "cgroup.subtree_control": "memory" },
    "vm1": { "memory.high": "max", "memory.max": "max" },
    "vm2": { "cpu.max": "max 100000", "cpu.weight": "100" },
  });
  try {
    const at = (dir: string): CgroupTarget => ({ kind: "cgroup", dir: join(fs.root, dir), version: 2, own: false });
    assert.throws(() => checkGroup(at("gone"), ["cpu.max"]), new RegExp(`^CgroupAccessError: cgroup ${join(fs.root, "gone")} does not exist$`));
    assert.throws(
      () => checkGroup(at("vm1"), ["cpu.max", "cpu.weight"]),
      new RegExp(`cgroup ${join(fs.root, "vm1")} has no cpu.max: the cpu controller is not enabled in its parent's subtree \\(${fs.root}/cgroup.subtree_control lacks "cpu"; ${fs.root}/cgroup.controllers: "cpu memory"\\)`),
    );
    checkGroup(at("vm1"), ["memory.high"]);
    checkGroup(at("vm2"), ["cpu.max", "cpu.weight"]);
  } finally {
    fs.remove();
  }
});

void test("checkGroup: a group the agent may not write (a read-only mount of it) is named with the file", (t) => {
  const fs = fakeCgroupfs({ "vm2": { "cpu.max": "max 100000", "cpu.weight": "100" } });
  const ro = mkdtempSync(join(tmpdir(), "oc-fake-cgroupfs-ro-"));
  try {
    try {
      execFileSync("mount", ["--bind", fs.root, ro]);
      execFileSync("mount", ["-o", "remount,bind,ro", ro]);
    } catch (err) {
      t.skip(`cannot make a read-only bind mount here: ${(err as Error).message}`);
      return;
    }
    const target: CgroupTarget = { kind: "cgroup", dir: join(ro, "vm2"), version: 2, own: false };
    assert.throws(() => checkGroup(target, ["cpu.max"]), new RegExp(`^CgroupAccessError: cgroup ${target.dir}: the agent may not write ${target.dir}/cpu.max \\(EROFS: read-only here; under systemd only the delegated subtree is writable\\)$`));
  } finally {
    try {
      execFileSync("umount", [ro]);
    } catch {
      /* not mounted */
    }
    rmSync(ro, { recursive: true, force: true });
    fs.remove();
  }
});

void test("real v2 mount: the agent's own IDS group is made in its subtree, a process moves in, its cgroup id is the directory's inode", async () => {
  const mounts = readHostMounts();
  if (mounts.v2 === null) return;
  const layout = cgroupLayout(mounts, readOwnV2Cgroup());
  const cage = `octest${process.pid}`;
  const ids = ownGroup(layout, cage, "ids", null);
  assert.equal(ids.version, 2);
  assert.ok(ids.dir.startsWith(`${layout.v2Subtree as string}/cages/`), ids.dir);
  const child = spawn("sleep", ["30"], { stdio: "ignore" });
  const pid = child.pid as number;
  const origin = parseV2CgroupOfProcess(read(`/proc/${pid}/cgroup`)) as string;
  try {
    ensureOwnGroup(layout, ids, []);
    writeFileSync(join(ids.dir, "cgroup.procs"), String(pid));
    const rel = ids.dir.slice(mounts.v2.length);
    assert.equal(parseV2CgroupOfProcess(read(`/proc/${pid}/cgroup`)), rel);
    // bpftrace's cgroupid(path) is the kernfs node id, which stat shows as the inode number.
    assert.ok(statSync(ids.dir).ino > 1);
    writeFileSync(join(mounts.v2, origin, "cgroup.procs"), String(pid));
  } finally {
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    for (const d of [ids.dir, join(ids.dir, ".."), join(ids.dir, "../..")]) {
      try {
        rmdirWithRetry(d);
      } catch {
        /* another cage's */
      }
    }
    if (layout.v2AgentLeaf === null) {
      try {
        rmdirWithRetry(layout.v2Subtree as string);
      } catch {
        /* in use */
      }
    }
  }
  assert.equal(existsSync(join(layout.v2Subtree as string, "cages", cage)), false);
});
