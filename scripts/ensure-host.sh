#!/usr/bin/env bash
# Makes this machine able to run the agent and its tests: installs the Debian packages the
# project needs when they are missing, mounts tracefs for bpftrace, and installs npm deps.
# Idempotent and quiet when everything is already there. Needs root (bpftrace does anyway).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v bpftrace >/dev/null 2>&1 || need_pkgs+=(bpftrace)
command -v perf >/dev/null 2>&1 || need_pkgs+=(linux-perf)
# --- issue 7 (history, dashboards, alerts): InfluxDB 1.x and Prometheus servers and promtool.
# The tests start their own influxd/prometheus on loopback ports with temporary data
# directories; the packages' system services are not used (and not started here).
command -v influxd >/dev/null 2>&1 || need_pkgs+=(influxdb)
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || need_pkgs+=(prometheus)
# --- end issue 7

# --- balloon actuator / QEMU test guest (issue 5) ---
# qemu-system-x86_64 runs the small test guest (scripts/build-qemu-guest.sh); cpio packs its
# initramfs. The guest's kernel and busybox are downloaded into .cache/ by that script, not installed.
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_pkgs+=(qemu-system-x86)
command -v cpio >/dev/null 2>&1 || need_pkgs+=(cpio)
# --- end balloon block ---
# CPU actuators (issue 4): Debian's cpulimit, the limiter precision benchmark's comparison.
command -v cpulimit >/dev/null 2>&1 || need_pkgs+=(cpulimit)
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
