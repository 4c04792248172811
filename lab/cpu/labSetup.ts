/**
 * What `cage lab cpu` sets up, as data: names of its network namespace, veth pair and cgroups,
 * the addresses, and the text of the files it generates (nginx.conf, aide.conf, the cage file).
 * Pure, so the shapes are unit-tested; lab/cpu/labHost.ts creates them.
 */
import { join } from "node:path";

export interface LabNames {
  /** Unique per lab process (its PID), so concurrent runs and leftovers never collide. */
  tag: string;
  netns: string;
  /** Host-side and VM-side veth ends; ≤ 15 bytes (IFNAMSIZ). */
  vethHost: string;
  vethVm: string;
  hostAddress: string;
  vmAddress: string;
  /** cgroup folder under each v1 hierarchy (cpu, cpuacct). */
  cgroupParent: string;
  cageName: string;
}

/** Parent folder of every lab cgroup, under /sys/fs/cgroup/cpu and /sys/fs/cgroup/cpuacct. */
export const LAB_CGROUP_ROOT = "offloadcage-lab";

/**
 * Names and a /30 subnet from the lab's PID: 10.16.0.0/10 holds 2^20 /30s, one per PID modulo
 * 2^20, so two labs alive at once get different addresses.
 */
export function labNames(pid: number): LabNames {
  if (!Number.isInteger(pid) || pid <= 0 || pid > 4_194_304) throw new RangeError(`labNames: not a PID: ${pid}`);
  const idx = pid % (1 << 20);
  const base = `10.${16 + (idx >> 14)}.${(idx >> 6) & 255}.${(idx & 63) << 2}`;
  const [a, b, c, d] = base.split(".").map(Number) as [number, number, number, number];
  const tag = `ocl${pid}`;
  return {
    tag,
    netns: `offloadcage-lab-${pid}`,
    vethHost: `${tag}h`,
    vethVm: `${tag}v`,
    hostAddress: `${a}.${b}.${c}.${d + 1}`,
    vmAddress: `${a}.${b}.${c}.${d + 2}`,
    cgroupParent: `${LAB_CGROUP_ROOT}/${pid}`,
    cageName: `lab-${pid}`,
  };
}

/** The PID a lab name belongs to (for sweeping leftovers of a lab that was SIGKILLed), or null. */
export function pidOfLabNetns(netns: string): number | null {
  const m = /^offloadcage-lab-(\d+)$/.exec(netns);
  return m ? Number(m[1]) : null;
}

export const NGINX_PORT = 80;
/** The CPU actuator's floor for the lab VM, % of one CPU (see labCpuRun.ts CFS_PERIOD_US). */
export const LAB_VM_FLOOR_PCT = 20;

/**
 * nginx as the VM's web server: two workers (a two-vCPU server, as big as this host), foreground, every path
 * in the lab's temp dir. gzip level 9 on a text page makes each request CPU-heavy and its
 * response small, so the server's CPU dominates the packet rate the IDS sees (as a dynamic web
 * application does), rather than the other way round.
 */
export function nginxConfig(dir: string, listenAddress: string): string {
  const p = (f: string): string => join(dir, f);
  return [
    "daemon off;",
    "master_process on;",
    "worker_processes 2;",
    `pid ${p("nginx.pid")};`,
    `error_log ${p("nginx-error.log")} warn;`,
    "events { worker_connections 512; }",
    "http {",
    "  access_log off;",
    `  client_body_temp_path ${p("nginx-body")};`,
    `  proxy_temp_path ${p("nginx-proxy")};`,
    `  fastcgi_temp_path ${p("nginx-fastcgi")};`,
    `  uwsgi_temp_path ${p("nginx-uwsgi")};`,
    `  scgi_temp_path ${p("nginx-scgi")};`,
    "  default_type text/html;",
    "  gzip on;",
    "  gzip_comp_level 9;",
    "  gzip_min_length 0;",
    "  server {",
    `    listen ${listenAddress}:${NGINX_PORT} reuseport;`,
    `    root ${p("www")};`,
    "  }",
    "}",
    "",
  ].join("\n");
}

/** AIDE building a database of a tree: every file's metadata and sha512 (CPU-bound on a warm cache). */
export function aideConfig(dir: string, instance: string, tree: string): string {
  if (!tree.startsWith("/") || /\s/.test(tree)) throw new Error(`aideConfig: tree must be an absolute path without spaces, got ${JSON.stringify(tree)}`);
  return [
    `database_out=file:${join(dir, `aide-${instance}.db.new`)}`,
    "gzip_dbout=no",
    "report_url=stdout",
    "LabRule = p+i+n+u+g+s+m+c+sha512",
    `${tree} LabRule`,
    "",
  ].join("\n");
}

export type LabCageVm = { kind: "cgroup"; path: string } | { kind: "libvirt"; domain: string; uri: string };

export interface CageFileInputs {
  names: LabNames;
  runtimeDir: string;
  /** The VM: processes in a cgroup v1 cpu directory, or a libvirt domain (capped through virsh). */
  vm: LabCageVm;
  /**
   * The IDS = every process in this cgroup (the lab starts each IDS process inside its own
   * cpuacct group, which is also the kernel's count for the cross-check).
   */
  idsCgroupDir: string;
  capPct: number;
  idsCapPct: number | null;
  actuators: boolean;
  /** The actuators' periodMs, or null for their default. */
  actuatorPeriodMs: number | null;
  limiterMode: "cgroup" | "sigstop" | null;
  /** --compare-cpulimit: the second IDS and the empty cgroup standing for its cage's VM. */
  cpulimitCage: { name: string; vmCgroupDir: string; idsCgroupDir: string } | null;
}

/**
 * The cage file the lab's agent runs with: the agent's real collectors and pipeline, and with
 * `actuators` the cage CPU actuator (and the IDS limiter when there is an idsCap).
 */
export function labCageFile(i: CageFileInputs): Record<string, unknown> {
  const agent: Record<string, unknown> = {
    runtimeDir: i.runtimeDir,
    cpuIntervalMs: 100,
    memorySampleMs: 1000,
    // New AIDE processes (one per scan) must join the cage quickly.
    resolveMs: 200,
    prometheus: false,
    logLevel: "info",
  };
  if (i.actuators) {
    const section = (): Record<string, unknown> => (i.actuatorPeriodMs === null ? {} : { periodMs: i.actuatorPeriodMs });
    const actuators: Record<string, unknown> = { cpu: section() };
    if (i.idsCapPct !== null) actuators.limiter = i.limiterMode === null ? section() : { ...section(), mode: i.limiterMode };
    agent.actuators = actuators;
  }
  const cages: Record<string, unknown>[] = [
    {
      name: i.names.cageName,
      vm: i.vm.kind === "cgroup" ? { kind: "cgroup", path: i.vm.path } : { kind: "libvirt", domain: i.vm.domain, uri: i.vm.uri },
      ids: [{ cgroup: i.idsCgroupDir, uid: 0 }],
      cpu: {
        cap: i.capPct,
        ...(i.idsCapPct === null ? {} : { idsCap: i.idsCapPct }),
        // The kernel's smallest quota is 1 ms: 10% of a CPU on the lab VM's 10 ms CFS period.
        ...(i.actuators ? { vmFloor: LAB_VM_FLOOR_PCT } : {}),
      },
    },
  ];
  if (i.cpulimitCage !== null) {
    // No idsCap here: this IDS is held by cpulimit, not by our limiter; the cage only measures it.
    cages.push({
      name: i.cpulimitCage.name,
      vm: { kind: "cgroup", path: i.cpulimitCage.vmCgroupDir },
      ids: [{ cgroup: i.cpulimitCage.idsCgroupDir, uid: 0 }],
      cpu: { cap: i.capPct },
    });
  }
  return { agent, cages };
}

/** "Requests/sec:  419.24" from wrk's report, or null. */
export function parseWrkRequestsPerSecond(output: string): number | null {
  const m = /^Requests\/sec:\s+([0-9.]+)\s*$/m.exec(output);
  return m ? Number(m[1]) : null;
}
