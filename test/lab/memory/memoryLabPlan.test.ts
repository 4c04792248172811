import { test } from "node:test";
import assert from "node:assert/strict";
import { escapeRegExp, FILE_PARTS, fileIdsStep, filePartSizes, labCageConfig, labSizes, tripwireTreeSizes } from "../../../lab/memory/memoryLabPlan.js";
import { parseMemoryLabOptions } from "../../../lab/memory/memoryLabOptions.js";
import { UsageError } from "../../../runtime/usageError.js";

const MiB = 1024 * 1024;

void test("sizes drive the IDS past base − floor, for every VM kind", () => {
  for (const [vm, guest] of [["qemu", 512], ["libvirt", 512], ["cgroup", 0]] as const) {
    const s = labSizes(vm, guest);
    const movable = (s.baseBytes - s.floorBytes) / MiB;
    assert.ok(s.floorBytes < s.baseBytes);
    assert.ok(s.mallocMaxMiB > movable, `${vm}: malloc max ${s.mallocMaxMiB} > ${movable}`);
    assert.ok(3 * s.filePartMiB > movable, "three cached parts exceed base − floor");
    assert.ok(s.vmHoldMiB * MiB < s.floorBytes);
  }
  assert.equal(labSizes("qemu", 512).baseBytes, 512 * MiB);
  assert.equal(labSizes("libvirt", 384).baseBytes, 384 * MiB);
});

void test("file part sizes are 1-8 MiB files summing to the part", () => {
  let x = 0;
  const sizes = filePartSizes(101, () => ((x = (x + 0.37) % 1), x));
  assert.equal(sizes.reduce((a, b) => a + b, 0), 101);
  assert.ok(sizes.every((s) => s >= 1 && s <= 8));
});

void test("Tripwire tree sizes: one per file, 0.1 to 1.9 of the mean, summing near the total", () => {
  let x = 0;
  const sizes = tripwireTreeSizes(27_752, 407e6, () => ((x = (x + 0.6180339887) % 1), x));
  assert.equal(sizes.length, 27_752);
  const mean = 407e6 / 27_752;
  assert.ok(sizes.every((s) => Number.isInteger(s) && s >= Math.round(mean * 0.1) && s <= Math.round(mean * 1.9)));
  const total = sizes.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(total - 407e6) < 407e6 * 0.01, `total ${total}`);
  assert.deepEqual(tripwireTreeSizes(3, 3, () => 0), [1, 1, 1], "never an empty file");
  assert.throws(() => tripwireTreeSizes(0, 1, () => 0), /^Error: tripwireTreeSizes: files must be a positive integer, got 0$/);
});

void test("file steps: grow, shrink, grow to three parts, back to none, and again", () => {
  const steps = Array.from({ length: 10 }, (_, k) => fileIdsStep(k));
  assert.deepEqual(
    steps.map((s) => `${s.action}${s.part}`),
    ["scan0", "scan1", "evict0", "scan2", "scan3", "evict2", "evict1", "evict3", "scan0", "scan1"],
  );
  // Never more than three parts cached at once, and every scanned part is a real part.
  const cached = new Set<number>();
  for (let k = 0; k < 100; k++) {
    const s = fileIdsStep(k);
    assert.ok(s.part >= 0 && s.part < FILE_PARTS);
    if (s.action === "scan") cached.add(s.part);
    else cached.delete(s.part);
    assert.ok(cached.size <= 3);
  }
});

void test("cage config: one cage, IDS by the lab's memory group, balloon section, no Prometheus", () => {
  const sizes = labSizes("cgroup", 0);
  const doc = labCageConfig({
    cageName: "lab-memory-abc",
    runtimeDir: "/var/tmp/x/run",
    idsCgroup: "/sys/fs/cgroup/memory/offloadcage-lab-abc-ids",
    vm: { kind: "cgroup", path: "/sys/fs/cgroup/memory/vm" },
    sizes,
    balloon: { periodMs: 1000 },
  }) as { agent: Record<string, unknown>; cages: Array<Record<string, unknown>> };
  assert.equal(doc.agent.prometheus, false);
  assert.deepEqual(doc.agent.actuators, { balloon: { periodMs: 1000 } });
  const cage = doc.cages[0]!;
  assert.deepEqual(cage.vm, { kind: "cgroup", path: "/sys/fs/cgroup/memory/vm" });
  assert.deepEqual(cage.ids, [{ cgroup: "/sys/fs/cgroup/memory/offloadcage-lab-abc-ids", uid: 0 }]);
  assert.deepEqual(cage.memory, { base: sizes.baseBytes, floor: sizes.floorBytes });
  assert.equal(escapeRegExp("a+b"), "a\\+b");
  const uri = "qemu:///system?socket=/tmp/oc-libvirt.x/sock/libvirt-sock";
  const libvirt = labCageConfig({ cageName: "c", runtimeDir: "/r", idsCgroup: "/sys/fs/cgroup/memory/g", vm: { kind: "libvirt", domain: "oc-labmem-abc", uri }, sizes, balloon: {} }) as { cages: Array<Record<string, unknown>> };
  assert.deepEqual(libvirt.cages[0]!.vm, { kind: "libvirt", domain: "oc-labmem-abc", uri });
});

void test("options: defaults, validation with exact messages", () => {
  const o = parseMemoryLabOptions(["--ids", "malloc"], () => 7);
  assert.deepEqual(o, { ids: "malloc", vm: "qemu", durationS: 90, holdS: 15, settleS: 10, tripwireFiles: null, seed: 7, json: false, plot: null });
  assert.equal(parseMemoryLabOptions(["--ids", "tripwire"], () => 7).tripwireFiles, 27_752);
  assert.equal(parseMemoryLabOptions(["--ids", "tripwire"], () => 7).settleS, 4, "Tripwire's small jumps: the agent's own window, on the guest too");
  assert.equal(parseMemoryLabOptions(["--ids", "tripwire", "--files", "500"], () => 7).tripwireFiles, 500);
  assert.equal(parseMemoryLabOptions(["--ids=file", "--vm", "cgroup", "--json", "--plot", "f.svg"], () => 1).settleS, 4);
  assert.equal(parseMemoryLabOptions(["--ids=file", "--vm", "libvirt"], () => 1).settleS, 10);
  const bad: Array<[string[], RegExp]> = [
    [[], /^cage lab memory: --ids malloc\|file\|tripwire is required$/],
    [["--ids", "mmap"], /--ids must be malloc, file or tripwire, got "mmap"/],
    [["--ids", "file", "--vm", "xen"], /--vm must be qemu, libvirt or cgroup, got "xen"/],
    [["--ids", "file", "--duration", "5"], /--duration must be an integer from 10 to 3600, got "5"/],
    [["--ids", "file", "--hold", "4", "--settle", "4"], /--settle \(4 s\) must be shorter than --hold \(4 s\)/],
    [["--ids", "file", "--plot", "x.png"], /--plot must name an .svg file/],
    [["--ids", "file", "extra"], /unexpected argument "extra"/],
    [["--ids", "file", "--bogus"], /unknown option "--bogus"/],
    [["--ids", "file", "--files", "500"], /^cage lab memory: --files needs --ids tripwire$/],
    [["--ids", "tripwire", "--files", "99"], /--files must be an integer from 100 to 1000000, got "99"/],
  ];
  for (const [args, re] of bad) assert.throws(() => parseMemoryLabOptions(args, () => 1), (e: unknown) => e instanceof UsageError && re.test(e.message), args.join(" "));
});
