import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseCgroupProcs, readCgroupProcs } from "../../../host/cgroup/cgroupProcs.js";
import { parseV2CgroupOfProcess } from "../../../host/cgroup/cgroupMounts.js";
import { cgroupV2Root } from "../../../host/cgroup/trackingCgroup.js";

const execFileP = promisify(execFile);

test("cgroup.procs: one PID a line, kernel order kept; a bad line is named", () => {
  assert.deepEqual(parseCgroupProcs("12\n7\n300\n"), [12, 7, 300]);
  assert.deepEqual(parseCgroupProcs(""), []);
  assert.throws(() => parseCgroupProcs("12\nx1\n", "/g/cgroup.procs"), /^Error: \/g\/cgroup.procs: not a PID: "x1"$/);
});

test("readCgroupProcs reads a directory's cgroup.procs and names a missing one", () => {
  const dir = mkdtempSync(join(tmpdir(), "oc-procs-"));
  try {
    writeFileSync(join(dir, "cgroup.procs"), "5\n6\n");
    assert.deepEqual(readCgroupProcs(dir), [5, 6]);
    assert.throws(() => readCgroupProcs(join(dir, "nope")), new RegExp(`cannot read ${join(dir, "nope", "cgroup.procs")}: no such file`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("this process is listed in its own cgroup v2 group", { skip: !existsSync("/proc/self/cgroup") }, () => {
  const group = parseV2CgroupOfProcess(readFileSync("/proc/self/cgroup", "utf8"));
  assert.ok(group !== null, "no 0:: line in /proc/self/cgroup");
  assert.ok(readCgroupProcs(join(cgroupV2Root(), group)).includes(process.pid));
});

// The kernel's own refusal, for real: moving a root process (every capability) between cpuset
// groups from a process whose bounding set lacks CAP_SYS_NICE. This host has cpuset on v1; a
// systemd v2 host with Delegate=yes has it on v2 (the v2 lab's guest showed the same EPERM).
const CPUSET = "/sys/fs/cgroup/cpuset";
test("moveIntoCgroup: EPERM from the cpuset check names the group, the PID and CAP_SYS_NICE; with it the move passes", { skip: !existsSync(join(CPUSET, "cgroup.procs")) && "no v1 cpuset hierarchy here" }, async () => {
  const dir = join(CPUSET, `oc-move-${process.pid}`);
  mkdirSync(dir);
  const sleeper = spawn("sleep", ["60"], { stdio: "ignore" });
  try {
    for (const f of ["cpuset.cpus", "cpuset.mems"]) writeFileSync(join(dir, f), readFileSync(join(CPUSET, f), "utf8"));
    const pid = sleeper.pid as number;
    const moveAs = async (caps: string): Promise<string> => {
      const script = `import { moveIntoCgroup } from ${JSON.stringify(new URL("../../../host/cgroup/cgroupProcs.js", import.meta.url).href)};
        try { moveIntoCgroup(${JSON.stringify(join(dir, "cgroup.procs"))}, ${pid}); console.log("moved"); } catch (e) { console.log(e.code + " " + e.message); }`;
      const { stdout } = await execFileP("setpriv", ["--bounding-set", caps, "--inh-caps", "-all", process.execPath, "--input-type=module", "-e", script]);
      return stdout.trim();
    };
    const refused = await moveAs("-all,+kill");
    assert.match(refused, new RegExp(`^EPERM .*\\(${dir}/cgroup.procs: the kernel refused to move PID ${pid}; .*CAP_SYS_NICE`));
    assert.deepEqual(readCgroupProcs(dir), [], "nothing moved");
    assert.equal(await moveAs("-all,+kill,+sys_nice"), "moved");
    assert.deepEqual(readCgroupProcs(dir), [pid]);
  } finally {
    sleeper.kill("SIGKILL");
    await new Promise((r) => sleeper.once("exit", r));
    rmdirSync(dir);
  }
});
