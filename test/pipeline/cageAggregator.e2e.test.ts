/**
 * A QEMU VM's host CPU by thread kind, for real: the project's test guest under TCG, as a `qemu`
 * kind VM (started directly, named threads, a user-mode virtio-net NIC) and as a `libvirt` kind VM
 * (the private libvirtd of scripts/libvirt-lab.sh, a virtio-net NIC on a tap moved into a test
 * network namespace), with the real CPU collector (bpftrace), the pipeline's real membership
 * resolver (/proc, thread names, libvirt events) and the aggregator. The split is checked against
 * the threads' own /proc/PID/task/TID/schedstat.
 *
 * This host has no /dev/vhost-net, so the NIC is QEMU's userspace virtio-net: the UDP load sent
 * into the guest's NIC is emulator (main loop) work, and vhost stays 0 here (vhost classification
 * is tested on thread names in test/host/libvirt/qemuThreads.test.ts). The project's test guest
 * has no network driver, and QEMU does not even read packets for a NIC whose driver is not up, so
 * both guests get a second initramfs appended with virtio_net (from the same kernel package) and
 * an /init that runs the guest's own and brings eth0 up with an address.
 *
 * Needs root, bpftrace and qemu-system-x86_64; run under flock /tmp/oc-e2e.lock (and /tmp/oc-qemu.lock).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { readdirSync, readFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { startCpuTimeSource } from "../../collectors/cpu/cpuTimeSource.js";
import type { CageSpec } from "../../config/cageConfig.js";
import { findQemuByUuid } from "../../host/libvirt/libvirtDomain.js";
import { readQemuThreads, readThreadSchedstatNs, type QemuThreadKind } from "../../host/libvirt/qemuThreads.js";
import { LibvirtLab } from "../../lab/common/libvirtLab.js";
import { buildQemuGuest, QemuGuest } from "../../lab/common/qemuGuest.js";
import { CageAggregator } from "../../pipeline/cageAggregator.js";
import { procMembershipResolver } from "../../pipeline/procMembership.js";
import { VM_CPU_KINDS, type CageAggregate } from "../../protocol/cageAggregate.js";

const INTERVAL_MS = 100;
const PHASE_MS = 4000;

type ByKind = Record<QemuThreadKind, number>;
const zero = (): ByKind => ({ vcpu: 0, emulator: 0, vhost: 0 });

/**
 * Seconds by kind from the threads' schedstat, cumulative from the first sample. A thread that
 * ends between two samples keeps what it had at the last one, so samples are taken often.
 */
class SchedstatByKind {
  private readonly lastNs = new Map<number, number>();
  readonly seconds = zero();
  constructor(private readonly pid: number) {}

  sample(): void {
    for (const t of readQemuThreads(this.pid, "/proc", [])) {
      const ns = readThreadSchedstatNs(this.pid, t.tid);
      if (ns === null) continue;
      const before = this.lastNs.get(t.tid);
      this.seconds[t.kind] += (before === undefined ? ns : ns - before) / 1e9;
      this.lastNs.set(t.tid, ns);
    }
  }

  snapshot(): ByKind {
    return { ...this.seconds };
  }
}

function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket("udp4");
    s.once("error", reject);
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A separate process sending 1 KiB datagrams to host:port, 100 every 5 ms (~20 000 a second); `prefix` runs it elsewhere (ip netns exec). */
function startUdpLoad(host: string, port: number, prefix: string[] = []): ChildProcess {
  const script = `
    const s = require("node:dgram").createSocket("udp4");
    const b = Buffer.alloc(1024, 7);
    setInterval(() => { for (let i = 0; i < 100; i++) s.send(b, ${port}, "${host}"); }, 5);`;
  const argv = [...prefix, process.execPath, "-e", script];
  return spawn(argv[0]!, argv.slice(1), { stdio: "ignore" });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGKILL");
  await exited;
}

const minus = (a: ByKind, b: ByKind): ByKind => ({ vcpu: a.vcpu - b.vcpu, emulator: a.emulator - b.emulator, vhost: a.vhost - b.vhost });
const total = (k: ByKind): number => k.vcpu + k.emulator + k.vhost;
const show = (k: ByKind): string => VM_CPU_KINDS.map((kind) => `${kind} ${k[kind].toFixed(4)} s`).join(", ");


/**
 * Runs the collector and the aggregator on one cage whose VM is QEMU `pid`: an idle phase, then a
 * phase under `startLoad`, each between two moments when QEMU is stopped (SIGSTOP), so the
 * aggregator's and schedstat's figures are both final. Checks the split against schedstat.
 */
async function checkSplit(pid: number, cage: CageSpec, startLoad: () => ChildProcess): Promise<void> {
  const aggregator = new CageAggregator([cage]);
  const resolve = procMembershipResolver([cage], pino({ level: "silent" }));
  const aggregates: CageAggregate[] = [];
  const source = await startCpuTimeSource({ intervalMs: INTERVAL_MS, onBatch: (b) => aggregates.push(...aggregator.ingestCpu(b, 0)) });
  const schedstat = new SchedstatByKind(pid);
  let load: ChildProcess | null = null;
  // Membership (and so the thread list) refreshed as the pipeline does, with schedstat sampled alongside.
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      aggregator.setMembership(await resolve());
      schedstat.sample();
      await sleep(200);
    }
  })();
  const frozen = async (): Promise<{ agg: ByKind; vmSeconds: number; truth: ByKind }> => {
    process.kill(pid, "SIGSTOP");
    await sleep(4 * INTERVAL_MS); // every thread switched out, its time in a window the collector has sent
    schedstat.sample();
    const out = { agg: aggregator.vmCpuSecondsByKind(cage.name)!, vmSeconds: aggregator.cpuSeconds(cage.name, "vm"), truth: schedstat.snapshot() };
    process.kill(pid, "SIGCONT");
    return out;
  };
  try {
    await sleep(1000); // a resolution has run: the cage holds the QEMU and its named threads
    assert.deepEqual(aggregator.pids(cage.name, "vm"), [pid]);
    const threads = readQemuThreads(pid, "/proc", []);
    assert.ok(threads.some((t) => t.kind === "vcpu" && t.comm === "CPU 0/TCG"), `a named vCPU thread: ${threads.map((t) => t.comm).join(", ")}`);

    const start = await frozen();
    await sleep(PHASE_MS);
    const idle = await frozen();
    load = startLoad();
    await sleep(PHASE_MS);
    await stopChild(load);
    const loaded = await frozen();

    const aggIdle = minus(idle.agg, start.agg);
    const aggLoad = minus(loaded.agg, idle.agg);
    const truthIdle = minus(idle.truth, start.truth);
    const truthLoad = minus(loaded.truth, idle.truth);
    console.log(`${cage.vm.kind}: idle ${PHASE_MS} ms: aggregator ${show(aggIdle)}; schedstat ${show(truthIdle)}`);
    console.log(`${cage.vm.kind}: UDP load ${PHASE_MS} ms: aggregator ${show(aggLoad)}; schedstat ${show(truthLoad)}`);

    // The split sums to the VM's total, over the whole run and in every aggregate.
    assert.ok(Math.abs(total(loaded.agg) - loaded.vmSeconds) < 1e-6, `kinds ${total(loaded.agg)} s, VM ${loaded.vmSeconds} s`);
    assert.ok(aggregates.length > 0);
    for (const a of aggregates) {
      assert.ok(a.vm.cpuPctByKind !== undefined, "every aggregate of a QEMU VM has its kinds");
      assert.ok(Math.abs(total(a.vm.cpuPctByKind) - a.vm.cpuPct) < 1e-6, `aggregate at ${a.timeMs}: ${JSON.stringify(a.vm)}`);
    }

    // Each kind, in each phase, agrees with the threads' own schedstat.
    for (const [phase, agg, truth] of [["idle", aggIdle, truthIdle], ["load", aggLoad, truthLoad]] as const) {
      assert.ok(total(truth) > 0.05, `${phase}: QEMU ran only ${total(truth)} s`);
      const error = Math.abs(total(agg) - total(truth)) / total(truth);
      assert.ok(error < 0.02, `${phase}: total ${total(agg)} s vs schedstat ${total(truth)} s (${(error * 100).toFixed(2)}%)`);
      for (const kind of VM_CPU_KINDS) {
        // A kind near zero is compared against the phase's total: 2% of a few microseconds is noise.
        const scale = Math.max(truth[kind], total(truth));
        const kindError = Math.abs(agg[kind] - truth[kind]) / scale;
        assert.ok(kindError < 0.02, `${phase}: ${kind} ${agg[kind]} s vs schedstat ${truth[kind]} s (${(kindError * 100).toFixed(2)}% of ${scale} s)`);
      }
    }
    assert.ok(aggLoad.vcpu > 0, "the vCPU thread ran");
    assert.equal(aggLoad.vhost, 0, "no vhost without /dev/vhost-net");
    // The load into the guest's NIC is QEMU's main loop at work: more emulator CPU than idle.
    assert.ok(aggLoad.emulator > aggIdle.emulator * 1.5, `emulator under load ${aggLoad.emulator} s vs idle ${aggIdle.emulator} s`);
  } finally {
    sampling = false;
    await sampler.catch(() => undefined);
    if (load !== null) await stopChild(load);
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      // QEMU already gone
    }
    await source.stop();
    await resolve.stop();
  }
}

/** What the guest's /init prints on the serial console once eth0 is up. */
const NET_UP = "OCGUEST-NET eth0 up";

/** Waits until the guest's serial console log has a line starting with `marker`. */
async function waitForSerial(path: string, marker: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let text = "";
    try {
      text = readFileSync(path, "latin1");
    } catch {
      // not created yet
    }
    if (text.split(/\r?\n/).some((l) => l.startsWith(marker))) return;
    if (Date.now() > deadline) throw new Error(`no "${marker}" on the guest's console (${path}) within ${timeoutMs} ms; last: ${JSON.stringify(text.slice(-300))}`);
    await sleep(200);
  }
}

/** The guest's address on QEMU's user-mode network (slirp's default 10.0.2.0/24). */
const SLIRP_GUEST_IP = "10.0.2.15";

/**
 * The test guest's initramfs with a second archive appended (the kernel unpacks both, the second
 * over the first): virtio_net and its dependencies from the guest's own kernel package, the
 * guest's /init as /init-guest, and an /init that runs it, loads the driver once it has loaded
 * virtio_pci, and brings eth0 up with `guestIp`/24.
 */
async function initrdWithNet(dir: string, guestIp: string): Promise<string> {
  const image = await buildQemuGuest();
  const debs = join(image.dir, "..", "debs");
  const deb = readdirSync(debs).find((f) => /^linux-image-.*\.deb$/.test(f));
  assert.ok(deb !== undefined, `no kernel package in ${debs}`);
  const unpacked = join(dir, "kernel");
  mkdirSync(unpacked);
  execFileSync("bash", ["-c", `dpkg --fsys-tarfile "$1" | tar -x -C "$2" --wildcards '*/virtio_net.ko' '*/net_failover.ko' '*/failover.ko'`, "_", join(debs, deb), unpacked]);
  const root = join(dir, "overlay");
  mkdirSync(join(root, "lib", "modules"), { recursive: true });
  for (const m of ["failover", "net_failover", "virtio_net"]) {
    const found = execFileSync("find", [unpacked, "-name", `${m}.ko`], { encoding: "utf8" }).trim().split("\n")[0];
    assert.ok(found, `${m}.ko in ${deb}`);
    execFileSync("cp", [found, join(root, "lib", "modules", `${m}.ko`)]);
  }
  execFileSync("bash", ["-c", `zcat "$1" | (cd "$2" && cpio -i --quiet init) && mv "$2/init" "$2/init-guest"`, "_", image.initrd, root]);
  writeFileSync(
    join(root, "init"),
    // The shell opens /dev/null for a background job: /dev first (the guest's /init mounts it again, harmlessly).
    `#!/bin/sh
mount -t devtmpfs dev /dev
/init-guest &
while ! grep -q '^virtio_pci ' /proc/modules 2>/dev/null; do sleep 1; done
for m in failover net_failover virtio_net; do insmod /lib/modules/$m.ko || echo "OCGUEST-ERROR insmod $m failed"; done
/bin/busybox ip addr add ${guestIp}/24 dev eth0 || echo "OCGUEST-ERROR eth0 address failed"
/bin/busybox ip link set eth0 up || echo "OCGUEST-ERROR eth0 up failed"
echo "${NET_UP}"
wait
`,
  );
  chmodSync(join(root, "init"), 0o755);
  const combined = join(dir, "initrd-net.gz");
  execFileSync("bash", ["-c", `cp "$1" "$3" && cd "$2" && find . | cpio -o -H newc --quiet | gzip >> "$3"`, "_", image.initrd, root, combined]);
  return combined;
}

void test("qemu kind: CPU by thread kind sums to the VM's, agrees with schedstat within 2%, a UDP load shows as emulator CPU", { timeout: 600_000 }, async () => {
  const port = await freeUdpPort();
  const dir = mkdtempSync(join(tmpdir(), "oc-threads-"));
  let guest: QemuGuest | null = null;
  try {
    const initrd = await initrdWithNet(dir, SLIRP_GUEST_IP);
    guest = await QemuGuest.start({
      // Other engineers' TCG guests may share the two CPUs: a slow boot is no failure here.
      bootTimeoutMs: 300_000,
      memoryMiB: 256,
      balloon: false,
      // A later -initrd overrides the guest's own.
      extraArgs: [
        "-name", "guest=oc-threads,debug-threads=on",
        "-netdev", `user,id=net0,hostfwd=udp:127.0.0.1:${port}-${SLIRP_GUEST_IP}:5000`, "-device", "virtio-net-pci,netdev=net0",
        "-initrd", initrd,
      ],
    });
    await waitForSerial(guest.serialLog, NET_UP, 180_000);
    const cage: CageSpec = {
      name: "qemu",
      vm: { kind: "qemu", match: [{ pid: guest.pid, descendants: false }], qmpSocket: guest.qmpSocket },
      ids: [],
      cpu: { cap: 100, idsCap: null, weight: null },
      memory: null,
    };
    await checkSplit(guest.pid, cage, () => startUdpLoad("127.0.0.1", port));
  } finally {
    await guest?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

const DOMAIN = "oc-threads";
const NETNS = `oc-threads-${process.pid}`;
const GUEST_IP = "10.213.7.2";

void test("libvirt kind: the same split for a domain of a private libvirtd, a UDP load through its tap in a test netns", { timeout: 400_000 }, async () => {
  const lab = await LibvirtLab.start();
  const dir = mkdtempSync(join(tmpdir(), "oc-threads-"));
  let netns = false;
  try {
    const uuid = await lab.define(DOMAIN, { memoryMiB: 256, net: true, balloon: false });
    // libvirt-lab.sh copied the guest next to its daemon (QEMU runs as libvirt-qemu): the copy gets the network driver.
    execFileSync("cp", [await initrdWithNet(dir, GUEST_IP), join(lab.dir, "guest", "initrd.gz")]);
    chmodSync(join(lab.dir, "guest", "initrd.gz"), 0o644);
    await lab.virsh("start", DOMAIN);
    await waitForSerial(join(lab.dir, "log", `${DOMAIN}.serial`), NET_UP, 180_000);
    // domiflist: "vnet0  ethernet  -  virtio  52:54:00:..": the tap and the guest's MAC.
    const row = (await lab.virsh("domiflist", DOMAIN)).split("\n").find((l) => /([0-9a-f]{2}:){5}[0-9a-f]{2}/.test(l));
    assert.ok(row !== undefined, "the domain has a NIC");
    const [tap, , , , mac] = row.trim().split(/\s+/);
    assert.ok(tap !== undefined && mac !== undefined);
    // The tap leaves the host's namespace: the load's address and neighbour entry touch nothing else.
    const ip = (...args: string[]): void => {
      execFileSync("ip", args, { stdio: "pipe" });
    };
    ip("netns", "add", NETNS);
    netns = true;
    ip("link", "set", tap, "netns", NETNS);
    ip("-n", NETNS, "addr", "add", "10.213.7.1/24", "dev", tap);
    ip("-n", NETNS, "link", "set", tap, "up");
    // The guest has no NIC driver and answers no ARP: a permanent entry sends the datagrams straight to its MAC.
    ip("-n", NETNS, "neigh", "replace", GUEST_IP, "lladdr", mac, "dev", tap, "nud", "permanent");
    const qemu = findQemuByUuid(uuid);
    assert.ok(qemu !== null, "the domain's QEMU");
    const pid = qemu.pid;
    const cage: CageSpec = {
      name: "libvirt",
      vm: { kind: "libvirt", domain: DOMAIN, uri: lab.uri },
      ids: [],
      cpu: { cap: 100, idsCap: null, weight: null },
      memory: null,
    };
    await checkSplit(pid, cage, () => startUdpLoad(GUEST_IP, 5000, ["ip", "netns", "exec", NETNS]));
    console.log(`tap ${tap} in ${NETNS}:\n${execFileSync("ip", ["-n", NETNS, "-s", "link", "show", tap], { encoding: "utf8" })}`);
  } finally {
    await lab.stop();
    if (netns) execFileSync("ip", ["netns", "del", NETNS], { stdio: "pipe" });
    rmSync(dir, { recursive: true, force: true });
  }
});
