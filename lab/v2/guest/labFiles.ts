/**
 * The v2 lab's cage file (pure): what the scenario writes to /etc/offloadcage/cages.yaml before
 * `cage install`, which keeps an existing cage file. JSON is YAML, so it is written as JSON.
 */
import type { V2ScenarioSpec } from "../labScenario.js";

export const LAB_CAGE = "vm1";
/** The units the image provides (lab/v2/guest/units/). */
export const VM_UNIT = "vm-workload.service";
export const IDS_UNIT = "aide.service";
/** Where systemd puts a system service's processes on the unified hierarchy. */
export const unitCgroup = (unit: string): string => `/sys/fs/cgroup/system.slice/${unit}`;
/** `cage install`'s defaults (cli/installCommand.ts): the service's runtime directory and metrics port. */
export const SERVICE_RUNTIME_DIR = "/run/offloadcage";
export const METRICS_URL = "http://127.0.0.1:9464/metrics";
export const CAGE_FILE = "/etc/offloadcage/cages.yaml";
/** The VM and IDS units idle until this file exists (lab/v2/guest/vm-workload.sh, ids-loop.sh). */
export const WORKLOAD_GO_FILE = "/run/v2-lab/go";

/** The cage's memory: base and floor, MiB. The VM holds vmMemMiB; the IDS's page cache is what moves. */
export function cageMemoryMiB(spec: Pick<V2ScenarioSpec, "vmMemMiB">): { base: number; floor: number } {
  return { base: spec.vmMemMiB + 384, floor: spec.vmMemMiB + 32 };
}

/**
 * The VM is its unit's cgroup (the cgroup CPU and balloon back ends); the IDS is AIDE by process
 * matcher in its own unit, named so the limiter sets aide.service's CPUQuota and page cache is
 * tracked in its cgroup: each AIDE pass is a new process, born capped and charged there, where
 * moving every new one into the agent's group lagged by seconds under TCG.
 */
export function cageDocument(spec: V2ScenarioSpec): Record<string, unknown> {
  const mem = cageMemoryMiB(spec);
  // Periods of 1 s, staleness 5 s and a long guardian start: node and bpftrace are slow under TCG
  // (the Xen lab's settings, docs/xen-lab.md).
  const common = { periodMs: 1000, staleAfterMs: 5000, guardianStartTimeoutMs: 600_000 };
  return {
    agent: {
      runtimeDir: SERVICE_RUNTIME_DIR,
      cpuIntervalMs: 1000,
      memorySampleMs: 1000,
      resolveMs: 1000,
      prometheus: { host: "127.0.0.1", port: 9464 },
      logLevel: "info",
      pageCache: { intervalMs: 1000 },
      actuators: {
        cpu: { ...common, hostCapacityPct: 200, idsHoldMs: 3000 },
        limiter: { ...common, mode: "cgroup" },
        balloon: { periodMs: 1000, staleAfterMs: 10_000, stuckAfterMs: 60_000, guardianStartTimeoutMs: common.guardianStartTimeoutMs },
      },
    },
    cages: [
      {
        name: LAB_CAGE,
        vm: { kind: "cgroup", path: unitCgroup(VM_UNIT) },
        ids: [{ comm: "aide", uid: 0 }],
        units: { ids: IDS_UNIT },
        // While aggregates are stale the limiter holds the IDS at idsCap: the VM's fail-safe is the rest.
        cpu: { cap: spec.capPct, idsCap: spec.idsCapPct, failsafeCap: spec.capPct - spec.idsCapPct },
        memory: { base: `${mem.base}MiB`, floor: `${mem.floor}MiB`, backend: "cgroup", cgroupV2File: "memory.high" },
      },
    ],
  };
}
