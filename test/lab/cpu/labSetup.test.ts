import { test } from "node:test";
import assert from "node:assert/strict";
import { isUsageError } from "../../../runtime/usageError.js";
import { parseLabCpuArgs, SCENARIOS, TRIPWIRE_DEFAULT_FILES, TRIPWIRE_ROOT } from "../../../lab/cpu/labCpuOptions.js";
import { aideConfig, labCageFile, labNames, nginxConfig, parseWrkRequestsPerSecond, pidOfLabNetns, LAB_VM_FLOOR_PCT } from "../../../lab/cpu/labSetup.js";

void test("the two scenarios are the paper's: packet cap 50; file scanning (AIDE or Tripwire) cap 70 with IDS cap 30", () => {
  assert.equal(SCENARIOS.packet.capPct, 50);
  assert.equal(SCENARIOS.packet.idsCapPct, null);
  assert.equal(SCENARIOS.file.capPct, 70);
  assert.equal(SCENARIOS.file.idsCapPct, 30);
  assert.equal(SCENARIOS.tripwire.capPct, 70);
  assert.equal(SCENARIOS.tripwire.idsCapPct, 30);
});

void test("parseLabCpuArgs --ids tripwire: the files Tripwire checks (the paper's 27,752 by default), the options of an IDS with an idsCap", () => {
  const t = parseLabCpuArgs(["--ids", "tripwire", "--actuators", "on"]);
  assert.equal(t.ids, "tripwire");
  assert.equal(t.tripwireFiles, TRIPWIRE_DEFAULT_FILES);
  assert.equal(TRIPWIRE_DEFAULT_FILES, 27_752);
  assert.equal(TRIPWIRE_ROOT, "/usr");
  const small = parseLabCpuArgs(["--ids", "tripwire", "--actuators", "on", "--files", "2000", "--limiter-mode", "sigstop", "--idle-after", "10", "--duration", "20"]);
  assert.equal(small.tripwireFiles, 2000);
  assert.equal(small.limiterMode, "sigstop");
  assert.equal(small.idleAfterS, 10);
  assert.equal(parseLabCpuArgs(["--ids", "tripwire", "--vm", "libvirt", "--actuators", "off"]).vm, "libvirt");
  // Only Tripwire has a file count; AIDE keeps scanning the whole of /usr.
  assert.equal(parseLabCpuArgs(["--ids", "file", "--actuators", "on"]).tripwireFiles, null);
  const bad: [string[], RegExp][] = [
    [["--ids", "file", "--actuators", "on", "--files", "2000"], /^cage lab cpu: --files needs --ids tripwire$/],
    [["--ids", "packet", "--actuators", "on", "--files", "2000"], /^cage lab cpu: --files needs --ids tripwire$/],
    [["--ids", "tripwire", "--actuators", "on", "--files", "99"], /--files must be an integer from 100 to 10000000, got "99"/],
    [["--ids", "tripwire", "--actuators", "on", "--files", "many"], /--files must be an integer from 100 to 10000000, got "many"/],
    [["--ids", "tripwire", "--actuators", "on", "--compare-cpulimit"], /--compare-cpulimit needs --ids file \(a second AIDE runs under cpulimit\)/],
    [["--ids", "tripwire", "--actuators", "off", "--limiter-mode", "cgroup"], /--limiter-mode needs --actuators on and --ids file or tripwire/],
    [["--ids", "packet", "--actuators", "on", "--limiter-mode", "cgroup"], /--limiter-mode needs --actuators on and --ids file or tripwire \(an IDS with an idsCap\)/],
  ];
  for (const [args, re] of bad) {
    assert.throws(() => parseLabCpuArgs(args), (err: unknown) => isUsageError(err) && re.test((err as Error).message), args.join(" "));
  }
});

void test("parseLabCpuArgs: defaults, and every bad option named", () => {
  assert.deepEqual(parseLabCpuArgs(["--ids", "packet", "--actuators", "off"]), {
    ids: "packet",
    vm: "cgroup",
    restartAtS: null,
    actuators: false,
    durationS: 60,
    json: false,
    plotPath: null,
    idleAfterS: null,
    compareCpulimit: false,
    agentLogPath: null,
    actuatorPeriodMs: null,
    limiterMode: null,
    tripwireFiles: null,
  });
  const o = parseLabCpuArgs(["--ids=file", "--actuators=on", "--duration", "20", "--json", "--plot", "/tmp/x.svg", "--idle-after", "10", "--compare-cpulimit", "--limiter-mode", "sigstop"]);
  assert.equal(o.durationS, 20);
  assert.equal(o.idleAfterS, 10);
  assert.equal(o.compareCpulimit, true);
  assert.equal(o.limiterMode, "sigstop");
  const l = parseLabCpuArgs(["--ids", "file", "--vm", "libvirt", "--actuators", "on", "--duration", "40", "--restart-at", "20"]);
  assert.equal(l.vm, "libvirt");
  assert.equal(l.restartAtS, 20);
  const bad: [string[], RegExp][] = [
    [["--actuators", "on"], /^cage lab cpu: --ids packet\|file\|tripwire is required$/],
    [["--ids", "disk", "--actuators", "on"], /--ids must be packet, file or tripwire, got "disk"/],
    [["--ids", "file", "--actuators", "yes"], /--actuators must be on or off, got "yes"/],
    [["--ids", "file", "--actuators", "on", "--duration", "2"], /--duration must be an integer from 5 to 3600, got "2"/],
    [["--ids", "file", "--actuators", "on", "--duration", "20", "--idle-after", "16"], /leaves no idle windows/],
    [["--ids", "file", "--actuators", "on", "--plot", "x.png"], /--plot must name an \.svg file/],
    [["--ids", "packet", "--actuators", "on", "--compare-cpulimit"], /--compare-cpulimit needs --ids file/],
    [["--ids", "file", "--actuators", "off", "--period-ms", "100"], /--period-ms needs --actuators on/],
    [["--ids", "file", "--actuators", "on", "--limiter-mode", "fast"], /--limiter-mode must be cgroup or sigstop/],
    [["--ids", "file", "--actuators", "on", "--vm", "xen"], /--vm must be cgroup or libvirt, got "xen"/],
    [["--ids", "packet", "--vm", "libvirt", "--actuators", "on"], /--vm libvirt needs --ids file or tripwire/],
    [["--ids", "file", "--vm", "libvirt", "--actuators", "on", "--compare-cpulimit"], /--compare-cpulimit needs --vm cgroup/],
    [["--ids", "file", "--actuators", "on", "--restart-at", "10"], /--restart-at needs --vm libvirt and --actuators on/],
    [["--ids", "file", "--vm", "libvirt", "--actuators", "off", "--restart-at", "10"], /--restart-at needs --vm libvirt and --actuators on/],
    [["--ids", "file", "--vm", "libvirt", "--actuators", "on", "--restart-at", "2"], /--restart-at 2 falls in the 3 s warm-up/],
    [["--ids", "file", "--vm", "libvirt", "--actuators", "on", "--duration", "20", "--restart-at", "16"], /--restart-at 16 leaves under 5 s/],
    [["--ids", "file", "--vm", "libvirt", "--actuators", "on", "--duration", "40", "--restart-at", "10", "--idle-after", "20"], /--restart-at and --idle-after are separate runs/],
    [["--ids", "file", "--actuators", "on", "--bogus"], /unknown option "--bogus"/],
    [["--ids", "file", "--actuators", "on", "extra"], /unexpected argument "extra"/],
  ];
  for (const [args, re] of bad) {
    assert.throws(() => parseLabCpuArgs(args), (err: unknown) => isUsageError(err) && re.test((err as Error).message), args.join(" "));
  }
});

void test("labNames: interface names fit IFNAMSIZ, the /30 is derived from the PID, and the netns maps back to it", () => {
  const n = labNames(4_194_304);
  assert.ok(n.vethHost.length <= 15 && n.vethVm.length <= 15, `${n.vethHost} ${n.vethVm}`);
  const a = labNames(1234);
  assert.equal(a.hostAddress, "10.16.19.73");
  assert.equal(a.vmAddress, "10.16.19.74");
  assert.notEqual(labNames(1235).hostAddress, a.hostAddress);
  assert.equal(pidOfLabNetns(a.netns), 1234);
  assert.equal(pidOfLabNetns("offloadcage-lab-x"), null);
  assert.throws(() => labNames(0), /not a PID/);
});

void test("nginxConfig keeps every path in the lab's dir and runs in the foreground", () => {
  const c = nginxConfig("/tmp/lab", "10.0.0.2");
  assert.match(c, /^daemon off;$/m);
  assert.match(c, /listen 10\.0\.0\.2:80 reuseport;/);
  const paths = [...c.matchAll(/ (\/[^\s;]+)/g)].map((m) => m[1] ?? "");
  assert.equal(paths.length, 8, paths.join(" "));
  for (const p of paths) assert.ok(p.startsWith("/tmp/lab/"), p);
});

void test("aideConfig writes its database in the lab's dir and refuses a tree it cannot express", () => {
  assert.match(aideConfig("/tmp/lab", "cage", "/usr"), /^database_out=file:\/tmp\/lab\/aide-cage\.db\.new$/m);
  assert.match(aideConfig("/tmp/lab", "cage", "/usr"), /^\/usr LabRule$/m);
  assert.throws(() => aideConfig("/tmp/lab", "cage", "usr"), /absolute path without spaces/);
  assert.throws(() => aideConfig("/tmp/lab", "cage", "/a b"), /absolute path without spaces/);
});

void test("labCageFile: actuator sections only with actuators on, the limiter only with an idsCap", () => {
  const names = labNames(4242);
  const base = {
    names,
    runtimeDir: "/tmp/lab/run",
    vm: { kind: "cgroup" as const, path: "/sys/fs/cgroup/cpu/offloadcage-lab/4242/vm" },
    idsCgroupDir: "/sys/fs/cgroup/cpuacct/offloadcage-lab/4242/ids",
    capPct: 70,
    idsCapPct: 30,
    actuatorPeriodMs: null,
    limiterMode: null,
    cpulimitCage: null,
  };
  const off = labCageFile({ ...base, actuators: false });
  assert.equal((off.agent as Record<string, unknown>).actuators, undefined);
  assert.deepEqual((off.cages as Record<string, unknown>[])[0], {
    name: "lab-4242",
    vm: { kind: "cgroup", path: "/sys/fs/cgroup/cpu/offloadcage-lab/4242/vm" },
    ids: [{ cgroup: base.idsCgroupDir, uid: 0 }],
    cpu: { cap: 70, idsCap: 30 },
  });
  const on = labCageFile({ ...base, actuators: true, actuatorPeriodMs: 200, limiterMode: "sigstop" });
  assert.deepEqual((on.agent as Record<string, unknown>).actuators, { cpu: { periodMs: 200 }, limiter: { periodMs: 200, mode: "sigstop" } });
  assert.deepEqual(((on.cages as Record<string, unknown>[])[0] as { cpu: unknown }).cpu, { cap: 70, idsCap: 30, vmFloor: LAB_VM_FLOOR_PCT });
  const packet = labCageFile({ ...base, idsCapPct: null, capPct: 50, actuators: true });
  assert.deepEqual((packet.agent as Record<string, unknown>).actuators, { cpu: {} });
  const cmp = labCageFile({ ...base, actuators: true, cpulimitCage: { name: "lab-4242-cpulimit", vmCgroupDir: "/sys/fs/cgroup/cpu/x", idsCgroupDir: "/sys/fs/cgroup/cpuacct/y" } });
  const second = (cmp.cages as Record<string, unknown>[])[1] as { cpu: unknown; ids: unknown };
  assert.deepEqual(second.cpu, { cap: 70 }, "the cpulimit cage has no idsCap: our limiter leaves it to cpulimit");
  assert.deepEqual(second.ids, [{ cgroup: "/sys/fs/cgroup/cpuacct/y", uid: 0 }]);
  const uri = "qemu:///system?socket=/tmp/oc-libvirt.x/sock/libvirt-sock";
  const libvirt = labCageFile({ ...base, vm: { kind: "libvirt", domain: "oc-labcpu-4242", uri }, actuators: true });
  assert.deepEqual(((libvirt.cages as Record<string, unknown>[])[0] as { vm: unknown }).vm, { kind: "libvirt", domain: "oc-labcpu-4242", uri });
});

void test("parseWrkRequestsPerSecond reads wrk's summary line", () => {
  const out = "Running 10s test @ http://10.0.0.2/\n  1 threads and 16 connections\nRequests/sec:    419.24\nTransfer/sec:      4.95MB\n";
  assert.equal(parseWrkRequestsPerSecond(out), 419.24);
  assert.equal(parseWrkRequestsPerSecond("nothing"), null);
});
