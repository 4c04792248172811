// Bad input to the limiter's cgroup mode on a v2-only host under systemd, mimicked by a temporary
// directory tree that looks like cgroupfs (fakeCgroupfs: plain files, so a write replaces the
// file's text) and a fake systemctl: a unit that does not exist, a cgroup that does not exist,
// one the agent may not write (a read-only bind mount), one whose cpu controller is not enabled,
// and a subtree the cpu controller was not delegated to. Each cage names its own problem and is
// left unlimited while a good cage next to it is limited. The fake tree is not under /sys/fs/cgroup,
// where the real restore guardian accepts writes, so a recording stand-in takes the restore actions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CageSpec } from "../../../config/cageConfig.js";
import { cgroupLayout } from "../../../host/cgroup/cagePlan.js";
import { systemctlClient } from "../../../host/systemd/unitProperties.js";
import { CgroupLimiter } from "../../../actuators/limiter/cgroupLimiter.js";
import type { GuardianClient } from "../../../actuators/common/guardianClient.js";
import { parseGuardianLine, type RestoreAction } from "../../../actuators/common/guardianProtocol.js";
import { capturingLogger, waitFor } from "../actuatorHarness.js";
import { fakeSystemctl } from "../../host/systemd/fakeSystemctl.js";
import { OriginalSettings, originalSettingsFiles } from "../../../actuators/common/originalSettings.js";
import { readStartTime } from "../../../host/proc/processIdentity.js";

const SERVICE = "system.slice/offloadcage.service";

function fakeCgroupfs(root: string, groups: Record<string, Record<string, string>>): void {
  for (const [group, files] of Object.entries(groups)) {
    const dir = join(root, group);
    mkdirSync(dir, { recursive: true });
    for (const [name, text] of Object.entries({ "cgroup.procs": "", ...files })) writeFileSync(join(dir, name), text);
  }
}

/** Records the restore actions the limiter hands over, checked as the guardian would (bar the path prefix). */
function recordingGuardian(): { guardian: GuardianClient; actions: RestoreAction[] } {
  const actions: RestoreAction[] = [];
  const register = (a: RestoreAction): Promise<void> => {
    if (a.op === "exec") parseGuardianLine(JSON.stringify(a));
    actions.push(a);
    return Promise.resolve();
  };
  return { guardian: { register } as unknown as GuardianClient, actions };
}

const cpuFiles = { "cpu.max": "max 100000", "cpu.weight": "100" };

function ids(name: string, over: Partial<CageSpec> = {}): CageSpec {
  return { name, vm: { kind: "process", match: [{ pid: 1, descendants: false }] }, ids: [{ comm: "aide", descendants: true }], cpu: { cap: 100, idsCap: 20, weight: null }, memory: null, ...over };
}

void test("bad input: each bad cage's error names the unit, group, file or controller; the good cage is limited all the same", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "oc-fake-cgroupfs-"));
  const roSource = mkdtempSync(join(tmpdir(), "oc-fake-cgroupfs-rosrc-"));
  const roMount = join(root, "system.slice/ro.service");
  fakeCgroupfs(root, {
    "": { "cgroup.controllers": "cpu memory", "cgroup.subtree_control": "cpu memory" },
    "system.slice": { "cgroup.controllers": "cpu memory", "cgroup.subtree_control": "" },
    [SERVICE]: { "cgroup.controllers": "cpu memory", "cgroup.subtree_control": "", "cgroup.procs": `${process.pid}\n` },
    [`${SERVICE}/cages`]: { "cgroup.controllers": "cpu memory", "cgroup.subtree_control": "" },
    [`${SERVICE}/cages/good`]: { "cgroup.controllers": "cpu memory", "cgroup.subtree_control": "" },
    [`${SERVICE}/cages/good/ids`]: { "cgroup.controllers": "cpu", ...cpuFiles },
    "system.slice/nocpu.service": { "cgroup.controllers": "memory" },
    "system.slice/ro.service": {},
  });
  fakeCgroupfs(roSource, { "": { "cgroup.controllers": "cpu", ...cpuFiles } });
  const systemctl = fakeSystemctl({ "aide.service": { CPUQuotaPerSecUSec: "infinity", CPUWeight: "[not set]" } });
  let mounted = false;
  try {
    try {
      execFileSync("mount", ["--bind", roSource, roMount]);
      mounted = true;
      execFileSync("mount", ["-o", "remount,bind,ro", roMount]);
    } catch (err) {
      t.skip(`cannot make a read-only bind mount here: ${(err as Error).message}`);
      return;
    }
    const { guardian: g, actions } = recordingGuardian();
    const { logger, records } = capturingLogger();
    const layout = cgroupLayout({ v2: root, v1: new Map() }, `/${SERVICE}`);
    const cages = [
      ids("good"),
      ids("ghostunit", { units: { ids: "nosuch.service", vm: null } }),
      ids("gone", { ids: [{ cgroup: join(root, "system.slice/gone.service"), descendants: true }] }),
      ids("readonly", { ids: [{ cgroup: roMount, descendants: true }] }),
      ids("nocpu", { ids: [{ cgroup: join(root, "system.slice/nocpu.service"), descendants: true }] }),
      ids("unit", { units: { ids: "aide.service", vm: null } }),
    ];
    const limiter = new CgroupLimiter({ logger, dryRun: false, mounts: layout.mounts, guardian: () => g, cages, layout, units: () => systemctlClient(systemctl.program) });
    for (const c of cages) limiter.setCage(c.name, 20, new Map([[process.pid, readStartTime(process.pid) ?? 0]]));

    const goodIds = join(root, SERVICE, "cages/good/ids");
    await waitFor("the good cage limited", () => readFileSync(join(goodIds, "cpu.max"), "utf8") === "20000").catch((err: Error) => {
      throw new Error(`${err.message}: ${String(limiter.errorOf("good"))}`);
    });
    await waitFor("every bad cage failed", () => ["ghostunit", "gone", "readonly", "nocpu"].every((c) => limiter.errorOf(c) !== null));
    assert.equal(readFileSync(join(goodIds, "cgroup.procs"), "utf8"), String(process.pid), "the good cage's IDS moved into its group");
    assert.equal(readFileSync(join(root, SERVICE, "agent/cgroup.procs"), "utf8"), String(process.pid), "the agent moved into its leaf first");
    assert.equal(readFileSync(join(root, SERVICE, "cgroup.subtree_control"), "utf8"), "+cpu");
    assert.equal(limiter.errorOf("good"), null);
    assert.equal(limiter.errorOf("ghostunit"), "unit nosuch.service does not exist (LoadState=not-found)");
    assert.equal(limiter.errorOf("gone"), `cgroup ${join(root, "system.slice/gone.service")} does not exist`);
    assert.equal(limiter.errorOf("readonly"), `cgroup ${roMount}: the agent may not write ${roMount}/cpu.max (EROFS: read-only here; under systemd only the delegated subtree is writable)`);
    assert.match(limiter.errorOf("nocpu") ?? "", new RegExp(`^cgroup ${join(root, "system.slice/nocpu.service")} has no cpu.max: the cpu controller is not enabled in its parent's subtree \\(${join(root, "system.slice")}/cgroup.subtree_control lacks "cpu"`));
    // A unit: its CPUQuota is set, its processes stay in it.
    await waitFor("the unit's quota", () => systemctl.props("aide.service").get("CPUQuota") === "20%");
    assert.equal(limiter.errorOf("unit"), null);
    assert.deepEqual(
      actions.filter((a) => a.op === "exec"),
      [{ op: "exec", key: "systemd:cpu:aide.service", argv: ["systemctl", "set-property", "--runtime", "aide.service", "CPUQuota=", "CPUWeight="] }],
    );
    assert.ok(actions.some((a) => a.op === "write" && a.path === join(goodIds, "cpu.max") && a.value === "max"), "the good group's cap is lifted if we die");
    assert.ok(records.some((r) => JSON.stringify(r).includes("IDS cgroup limit failed") && JSON.stringify(r).includes("nosuch.service")), "the failure is logged with the unit named");

    // The service without the cpu controller delegated: the cage says so, nothing is created.
    const bare = mkdtempSync(join(tmpdir(), "oc-fake-cgroupfs-bare-"));
    try {
      fakeCgroupfs(bare, { [SERVICE]: { "cgroup.controllers": "memory pids", "cgroup.subtree_control": "" } });
      const bareLayout = cgroupLayout({ v2: bare, v1: new Map() }, `/${SERVICE}`);
      const l2 = new CgroupLimiter({ logger, dryRun: false, mounts: bareLayout.mounts, guardian: () => g, cages: [ids("web")], layout: bareLayout });
      l2.setCage("web", 20, new Map([[process.pid, readStartTime(process.pid) ?? 0]]));
      await waitFor("the delegation error", () => l2.errorOf("web") !== null);
      assert.match(l2.errorOf("web") ?? "", /^the cpu controller is not enabled in the agent's subtree .*offloadcage.service \(its cgroup.controllers: "memory pids"; .*Delegate=yes on the service\)$/);
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  } finally {
    if (mounted) execFileSync("umount", [roMount]);
    systemctl.remove();
    rmSync(root, { recursive: true, force: true });
    rmSync(roSource, { recursive: true, force: true });
  }
});

void test("a unit left at the fail-safe hold by a killed run: stop puts the recorded original back, not what prepare read", async () => {
  const root = mkdtempSync(join(tmpdir(), "oc-fake-cgroupfs-"));
  const state = mkdtempSync(join(tmpdir(), "oc-originals-"));
  // The killed run's guardian held aide.service at idsCap 25%; its record says the unit had no quota.
  const systemctl = fakeSystemctl({ "aide.service": { CPUQuotaPerSecUSec: "250ms", CPUWeight: "[not set]" } });
  try {
    fakeCgroupfs(root, { "": { "cgroup.controllers": "cpu memory", "cgroup.subtree_control": "cpu memory" } });
    const files = originalSettingsFiles("limiter", join(state, "run"), join(state, "lib"));
    new OriginalSettings("limiter", files).keep("unit", [{ op: "exec", key: "systemd:cpu:aide.service", argv: [systemctl.program, "set-property", "--runtime", "aide.service", "CPUQuota=", "CPUWeight="] }]);
    const originals = new OriginalSettings("limiter", files);
    const { guardian: g } = recordingGuardian();
    const { logger } = capturingLogger();
    const layout = cgroupLayout({ v2: root, v1: new Map() }, `/${SERVICE}`);
    const cages = [ids("unit", { units: { ids: "aide.service", vm: null } })];
    const limiter = new CgroupLimiter({ logger, dryRun: false, mounts: layout.mounts, guardian: () => g, cages, layout, units: () => systemctlClient(systemctl.program), originals: () => originals });
    limiter.setCage("unit", 20, new Map());
    await waitFor("the unit's quota", () => systemctl.props("aide.service").get("CPUQuota") === "20%");
    assert.equal(await limiter.stop(), true);
    assert.equal(systemctl.props("aide.service").get("CPUQuota"), "", "the recorded original (no quota), not the 25% found at start");
    assert.deepEqual(originals.cageNames, [], "the record is dropped once carried out");
  } finally {
    systemctl.remove();
    rmSync(root, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  }
});
