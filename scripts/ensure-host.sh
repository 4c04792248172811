#!/usr/bin/env bash
# Makes this machine able to run the agent and its tests: installs the Debian packages the
# project needs when they are missing, mounts tracefs for bpftrace, and installs npm deps.
# Idempotent and quiet when everything is already there. Needs root (bpftrace does anyway).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v bpftrace >/dev/null 2>&1 || need_pkgs+=(bpftrace)
command -v perf >/dev/null 2>&1 || need_pkgs+=(linux-perf)
# History, dashboards and alerts (docs/grafana.md): InfluxDB 1.x, Prometheus and promtool.
# The tests start their own influxd/prometheus on loopback ports with temporary data
# directories; the packages' system services are not used (and not started here).
command -v influxd >/dev/null 2>&1 || need_pkgs+=(influxdb)
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || need_pkgs+=(prometheus)

# Balloon actuator tests (docs/balloon.md): qemu-system-x86_64 runs the small test guest
# (scripts/build-qemu-guest.sh); cpio packs its initramfs. The guest's kernel and busybox are
# downloaded into .cache/ by that script, not installed.
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_pkgs+=(qemu-system-x86)
command -v cpio >/dev/null 2>&1 || need_pkgs+=(cpio)

# Xen lab (scripts/xen-lab.sh, docs/xen-lab.md):
# QEMU boots Xen under TCG; cpio packs the dom0/domU initramfs; mke2fs -d builds the dom0 root
# image; depmod (kmod) indexes the dom0 kernel's modules. Xen, the dom0 kernel and busybox are
# downloaded into .cache/ by scripts/xen-lab-images.sh, not installed.
# (qemu-system-x86 and cpio: see the balloon actuator's packages above)
command -v depmod >/dev/null 2>&1 || [ -x /usr/sbin/depmod ] || need_pkgs+=(kmod)
command -v mke2fs >/dev/null 2>&1 || [ -x /usr/sbin/mke2fs ] || need_pkgs+=(e2fsprogs)
command -v aide >/dev/null 2>&1 || [ -x /usr/bin/aide ] || need_pkgs+=(aide)

# CPU actuators: Debian's cpulimit, the limiter precision benchmark's comparison.
command -v cpulimit >/dev/null 2>&1 || need_pkgs+=(cpulimit)
# cage top: its terminal test (test/cli/topCommand.e2e.test.ts) drives it in a real tmux pane.
command -v tmux >/dev/null 2>&1 || need_pkgs+=(tmux)
if ((${#need_pkgs[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-host: missing ${need_pkgs[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "ensure-host: installing ${need_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# cage lab memory (lab/memory/): AIDE is the file-integrity IDS of the Figure 5 experiment, gcc
# compiles the Figure 4 malloc/free program (lab/memory/memoryLoad.c) at run time.
lab_memory_pkgs=()
command -v aide >/dev/null 2>&1 || [ -x /usr/sbin/aide ] || lab_memory_pkgs+=(aide)
command -v gcc >/dev/null 2>&1 || lab_memory_pkgs+=(gcc libc6-dev)
if ((${#lab_memory_pkgs[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-host: missing ${lab_memory_pkgs[*]} (cage lab memory); run as root (or install them) first" >&2
    exit 1
  fi
  echo "ensure-host: installing ${lab_memory_pkgs[*]} (cage lab memory)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${lab_memory_pkgs[@]}" >/dev/null
fi

# bpftrace finds tracepoints under tracefs, which a fresh machine may not have mounted.
if [ ! -d /sys/kernel/tracing/events/sched ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null \
    || { mountpoint -q /sys/kernel/debug || mount -t debugfs nodev /sys/kernel/debug; } \
    || { echo "ensure-host: cannot mount tracefs at /sys/kernel/tracing" >&2; exit 1; }
fi

# A worktree whose node_modules is a symlink to a shared install must not run `npm ci`: it empties the
# symlink's target (the shared install) before reinstalling, breaking every other worktree using it.
if [ -L node_modules ]; then
  [ -d node_modules/zeromq ] || echo "ensure-host: node_modules is a symlink to an incomplete install; run npm ci in $(readlink -f node_modules)/.." >&2
elif [ ! -d node_modules/zeromq ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund >&2
fi

# cage lab cpu (lab/cpu/): the VM's web server and its load generator, the IDSes it runs
# (tshark: packet dissection; aide: file scanning), Debian's cpulimit for the limiter comparison,
# and iproute2 for the VM's network namespace and veth pair.
lab_cpu_pkgs=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || lab_cpu_pkgs+=(nginx)
command -v wrk >/dev/null 2>&1 || lab_cpu_pkgs+=(wrk)
command -v tshark >/dev/null 2>&1 || lab_cpu_pkgs+=(tshark)
command -v aide >/dev/null 2>&1 || lab_cpu_pkgs+=(aide)
command -v cpulimit >/dev/null 2>&1 || lab_cpu_pkgs+=(cpulimit)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || lab_cpu_pkgs+=(iproute2)
if ((${#lab_cpu_pkgs[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-host: missing ${lab_cpu_pkgs[*]} (cage lab cpu); run as root (or install them) first" >&2
    exit 1
  fi
  echo "ensure-host: installing ${lab_cpu_pkgs[*]} (cage lab cpu)" >&2
  export DEBIAN_FRONTEND=noninteractive
  # tshark's package asks whether non-root users may capture; root runs the lab, so: no.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${lab_cpu_pkgs[@]}" >/dev/null
fi
# Debian's nginx package enables and starts the system service; the lab runs its own nginx
# with a generated config, so the service must not hold port 80 or burn CPU on its own.
if [ -e /lib/systemd/system/nginx.service ] && command -v systemctl >/dev/null 2>&1 \
  && systemctl is-enabled nginx >/dev/null 2>&1; then
  systemctl disable --now nginx >/dev/null 2>&1 || true
fi
