/**
 * Where the cgroup hierarchies are mounted, from /proc/self/mountinfo, and small pure helpers
 * around cgroup files. Hybrid hosts (this one) have v2 at /sys/fs/cgroup/unified and v1 memory
 * at /sys/fs/cgroup/memory; pure v2 hosts have v2 at /sys/fs/cgroup.
 */

export interface CgroupMounts {
  /** Mount point of the cgroup2 hierarchy, or null. */
  v2: string | null;
  /** v1 controller name → mount point. */
  v1: Map<string, string>;
}

/** Parses /proc/self/mountinfo text (proc(5) format). */
export function parseCgroupMounts(mountinfo: string): CgroupMounts {
  const out: CgroupMounts = { v2: null, v1: new Map() };
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const before = line.slice(0, sep).split(" ");
    const after = line.slice(sep + 3).split(" ");
    const mountPoint = unescapeMountPath(before[4] ?? "");
    const fsType = after[0];
    if (fsType === "cgroup2" && out.v2 === null) out.v2 = mountPoint;
    if (fsType === "cgroup") {
      for (const opt of (after[2] ?? "").split(",")) {
        if (/^[a-z_]+$/.test(opt) && !["rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "clone_children", "noprefix", "xattr"].includes(opt)) {
          out.v1.set(opt, mountPoint);
        }
      }
    }
  }
  return out;
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The cgroup v2 path of a process, from /proc/PID/cgroup text (the `0::` line), or null. */
export function parseV2CgroupOfProcess(procCgroup: string): string | null {
  for (const line of procCgroup.split("\n")) {
    if (line.startsWith("0::")) return line.slice(3);
  }
  return null;
}

/** memory.stat text → key → value (bytes or counts). Looked up by key, never by position. */
export function parseMemoryStat(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\S+) (\d+)$/.exec(line.trim());
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/**
 * argv that enters cgroups and then execs the command, so the command is tracked from its
 * first instruction (moving it after spawn would miss what it reads first). The PID stays
 * the same: the shell execs.
 */
export function enterCgroupsArgv(procsFiles: string[], argv: string[]): string[] {
  if (argv.length === 0) throw new Error("enterCgroupsArgv: the command is empty");
  for (const f of procsFiles) {
    if (!f.startsWith("/") || !f.endsWith("/cgroup.procs")) throw new Error(`enterCgroupsArgv: not a cgroup.procs path: ${JSON.stringify(f)}`);
  }
  const script = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"';
  return ["/bin/sh", "-c", script, "offloadcage-enter", ...procsFiles, "--", ...argv];
}
