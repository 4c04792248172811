/**
 * The files a Xen lab scenario writes in dom0: the domU's xl config, the cage file, AIDE's config
 * and the IDS loop. Pure text generators, unit-tested on the host (labFiles.test.ts).
 */
import type { Cr3DomuSpec, LabScenarioSpec } from "../labScenario.js";

export const LAB_DOMU = "domu1";
export const LAB_CAGE = "lab";
export const LAB_RUNTIME_DIR = "/run/offloadcage";
/**
 * Every IDS process's command line carries this tag (the loop script's file name, the memory
 * grower's argument): the cage's `ids` matcher selects them, and their children, by it.
 */
export const IDS_TAG = "lab-ids";

/** A PV domU (PVH/HVM are unreliable under TCG, docs/xen-lab.md): busybox initramfs, 1 vCPU. */
export function domuConfig(spec: Pick<LabScenarioSpec, "domuMemMiB">): string {
  return xlConfig({ name: LAB_DOMU, type: "pv", extra: "console=hvc0 quiet", memMiB: spec.domuMemMiB, options: [], onCrash: "destroy" });
}

/** An xl domain config booting the lab's kernel and domU initramfs with one vCPU; `options` go before on_crash. */
function xlConfig(d: { name: string; type: "pv" | "pvh"; extra: string; memMiB: number; options: string[]; onCrash: "destroy" | "preserve" }): string {
  return [
    `name = "${d.name}"`,
    `type = "${d.type}"`,
    `kernel = "/usr/share/xen-lab/vmlinuz"`,
    `ramdisk = "/usr/share/xen-lab/domu-initrd.gz"`,
    `extra = "${d.extra}"`,
    `memory = ${d.memMiB}`,
    `maxmem = ${d.memMiB}`,
    `vcpus = 1`,
    ...d.options,
    `on_crash = "${d.onCrash}"`,
    "",
  ].join("\n");
}

/** The paging mode and CPUID lines of a CR3-traced PVH domU. */
function cr3Options(cr3: Cr3DomuSpec): string[] {
  return [`hap = ${cr3.hap ? 1 : 0}`, ...(cr3.cpuid !== "" ? [`cpuid = "${cr3.cpuid}"`] : [])];
}

/**
 * The cr3-trace phase's domU: PVH (no device model: the same kernel booted directly), the paging
 * mode and CPUID under test, and `lab=cr3` so its init forks short-lived processes beside its busy
 * loop (lab/xen/domu/init.sh): several address spaces, so several CR3 values.
 */
export function cr3DomuConfig(spec: Pick<LabScenarioSpec, "domuMemMiB">, cr3: Cr3DomuSpec): string {
  return xlConfig({ name: LAB_DOMU, type: "pvh", extra: "console=hvc0 lab=cr3", memMiB: spec.domuMemMiB, options: cr3Options(cr3), onCrash: "preserve" });
}

/** The cr3-ids phase's IDS-VM (a PVH domU charged by CR3, lab/xen/domu/init.sh `lab=cr3ids`). */
export const LAB_IDS_VM = "idsvm";

/**
 * Kernel parameters that keep the IDS-VM's kernel threads from waking beside the IDS: each wakeup
 * that preempts `ids-loop` runs under its page table (lazy TLB), CR3 time its schedstat lacks.
 * `nowatchdog`: no soft-lockup check every 4 s (a stop-machine work on `migration/0`).
 * `rcutree.jiffies_till_*_fqs=25`: the RCU grace-period kthread (`rcu_preempt`, the largest such
 * task) forces quiescent states every 100 ms instead of every tick while a grace period is open;
 * with one vCPU a grace period ends on the CPU's own report, which wakes the kthread anyway.
 */
export const IDS_VM_QUIET_KERNEL = "nowatchdog rcutree.jiffies_till_first_fqs=25 rcutree.jiffies_till_next_fqs=25";

/**
 * The cr3-ids phase's IDS-VM: PVH like the cr3-trace domU (HAP, the CR3 monitor switched on from
 * dom0), `lab=cr3ids` for its init, the kernel's struct offsets for its IDS helper, and pinned to
 * pCPU 1 (dom0 is pinned to pCPU 0 meanwhile): the guest counts time Xen takes from its vCPU as its
 * processes' (no steal-time accounting in this kernel), so its schedstat is comparable with dom0's
 * figure only when nothing else runs on its pCPU.
 */
export function idsVmConfig(spec: Pick<LabScenarioSpec, "domuMemMiB">, cr3: Cr3DomuSpec, offsets: { pgd: number; pid: number; comm: number }): string {
  const extra = `console=hvc0 ${IDS_VM_QUIET_KERNEL} lab=cr3ids oc_offsets=${offsets.pgd},${offsets.pid},${offsets.comm}`;
  return xlConfig({ name: LAB_IDS_VM, type: "pvh", extra, memMiB: spec.domuMemMiB, options: [`cpus = "1"`, ...cr3Options(cr3)], onCrash: "preserve" });
}

/** AIDE computing a fresh database of the domU's disk: hashing every file is the CPU load. */
export function aideConfig(tree: string, databaseOut: string): string {
  return [
    `database_out=file:${databaseOut}`,
    "gzip_dbout=no",
    "LabRule = p+i+n+u+g+s+m+c+sha256+sha512",
    `${tree} LabRule`,
    "",
  ].join("\n");
}

/**
 * The IDS in dom0: AIDE rescanning the domU's disk in a loop, or a shell busy loop standing in.
 * With several AIDE configs (each its own database_out) one loop runs per config, started 20 s
 * apart: the scenario has the IDS busy throughout. With one loop every pass end is a gap in which
 * the VM gets the whole cage, then (credit1 banks credit while capped) up to five windows over
 * the cap as AIDE comes back.
 */
export function idsScript(kind: LabScenarioSpec["ids"], aideConfs: readonly string[]): string {
  if (kind !== "aide") return ["#!/bin/sh", "# Xen lab IDS: runs until its process group is killed.", "while :; do", "  :", "done", ""].join("\n");
  if (aideConfs.length === 0) throw new Error("idsScript: aide needs at least one config");
  const lines = [
    "#!/bin/sh",
    "# Xen lab IDS: AIDE loops, staggered; runs until its process group is killed. Each pass's start",
    "# and end go to the log (dom0's uptime, s), to tell an IDS pause from a measurement gap.",
    'scan() { while :; do echo "$(cut -d" " -f1 /proc/uptime) start $1"; aide --config="$1" --init >/dev/null 2>&1; echo "$(cut -d" " -f1 /proc/uptime) end $1 exit $?"; done; }',
  ];
  aideConfs.forEach((conf, i) => {
    const last = i === aideConfs.length - 1;
    lines.push(last ? `scan ${conf}` : `scan ${conf} &`);
    if (!last) lines.push("sleep 20");
  });
  lines.push("");
  return lines.join("\n");
}

/**
 * The cage file in dom0: the domU as a Xen VM, the tagged processes as its IDS. `actuator` adds
 * that actuator's `agent.actuators` sections ("cpu": the CPU actuator and the IDS limiter) (for
 * `cage actuator NAME --config`; `cage run` gets
 * the file without one, so the phases can switch actuators on and off under one running agent).
 */
/** The actuators' guardianStartTimeoutMs in dom0 (see cageDocument). */
export const GUARDIAN_START_MS = 600_000;

/** The CPU actuator's idsHoldMs in the lab's cages (cageDocument's default). */
export const LAB_IDS_HOLD_MS = 3000;

export function cageDocument(spec: LabScenarioSpec, actuator: "cpu" | "balloon" | null, idsHoldMs = LAB_IDS_HOLD_MS): Record<string, unknown> {
  const agent: Record<string, unknown> = {
    runtimeDir: LAB_RUNTIME_DIR,
    cpuIntervalMs: 1000,
    memorySampleMs: 1000,
    resolveMs: 1000,
    prometheus: false,
    logLevel: "info",
    // dom0 has cgroup v2 only: the IDS limiter's group and the page cache collector's tracking
    // group would both claim the IDS (docs/cpu-actuators.md). The lab's IDSs are AIDE, whose CPU
    // is the point here, and a memory grower (RSS only) in the balloon phase.
    pageCache: false,
  };
  // The actuators' restore guardian is a second node process: in dom0 under TCG node takes tens
  // of seconds to start, past the default's 10 s, and an actuator whose guardian never started
  // gives up and never runs.
  // Periods of 1 s and a 5 s staleness bound: under TCG on a loaded host dom0 is slow, and the
  // aggregates arrive late; a 1 s bound would keep the cage in its fail-safe.
  if (actuator === "cpu") {
    agent.actuators = {
      // hostCapacityPct: nr_cpus × 100 of `xl info` (2 pCPUs), as docs/cpu-actuators.md says for dom0.
      // idsHoldMs: when AIDE pauses for one window the VM is given the whole cage, and credit1
      // (which banks credit) then runs it over its share for windows after the cap comes back
      // down (measured: 78% total against the cap of 50). A 3 s hold keeps room for the IDS.
      cpu: { periodMs: 1000, staleAfterMs: 5000, guardianStartTimeoutMs: GUARDIAN_START_MS, hostCapacityPct: 200, idsHoldMs },
      limiter: { periodMs: 1000, staleAfterMs: 5000, guardianStartTimeoutMs: GUARDIAN_START_MS, mode: "cgroup" },
    };
  } else if (actuator === "balloon") {
    // dom0 gets what the domU gives up (from its boot size, dom0_mem=1024M,max:1536M, xenLab.ts).
    agent.actuators = { balloon: { periodMs: 1000, staleAfterMs: 10000, stuckAfterMs: 60000, dom0: { base: "1024MiB", max: "1536MiB" } } };
  }
  const cage: Record<string, unknown> = {
    name: LAB_CAGE,
    vm: { kind: "xen", domain: LAB_DOMU },
    ids: [{ cmdline: IDS_TAG, uid: 0 }],
    // While aggregates are stale the limiter holds the IDS at idsCap, so the VM's fail-safe cap is
    // what is left of the cage: cap − idsCap (the default, the whole cap, would overrun it).
    cpu: { cap: spec.capPct, idsCap: spec.idsCapPct, failsafeCap: spec.capPct - spec.idsCapPct },
    memory: { base: `${spec.domuMemMiB}MiB`, floor: `${Math.floor(spec.domuMemMiB / 2)}MiB` },
  };
  return { agent, cages: [cage] };
}

/**
 * The cr3-ids cage's resolveMs: each resolution reads every helper's reports with `xenstore-ls -f
 * /local/domain`, a process and a walk of xenstore in dom0, which is held on one pCPU while the
 * IDS-VM is measured (once a second, xenstored and xenstore-ls took 3.7% of dom0's process time,
 * up to a third of it in some 2 s samples).
 */
export const CR3_RESOLVE_MS = 3000;

/**
 * The cr3-ids phase's cage file: the busy domU as the VM, the IDS-VM as the IDS charged by CR3
 * (`cr3From: helper`), no memory section (no balloon in this phase).
 */
export function cr3IdsCageDocument(spec: LabScenarioSpec, actuator: "cpu" | null): Record<string, unknown> {
  const doc = cageDocument(spec, actuator, CR3_IDS_HOLD_MS) as { agent: Record<string, unknown>; cages: Record<string, unknown>[] };
  const cage: Record<string, unknown> = { ...doc.cages[0], ids: [{ vm: { kind: "xen", domain: LAB_IDS_VM }, cr3From: "helper" }] };
  delete cage.memory;
  return { agent: { ...doc.agent, resolveMs: CR3_RESOLVE_MS }, cages: [cage] };
}

/**
 * The cr3-ids cage's idsHoldMs. Inside the IDS-VM the IDS shares its one capped vCPU with the
 * guest's shell in slices of 50–100 ms, so its share of a 1 s window swings (5–21% around a mean
 * of 6–12%): with a 3 s hold each swing above the last 3 s's peak ran the cage over its cap for a
 * window (34 and 16 of 40 and 20 windows within cap + 3). A longer hold reserves the swings' peak.
 */
export const CR3_IDS_HOLD_MS = 10_000;
