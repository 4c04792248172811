#!/usr/bin/env bash
# Makes this machine able to run the agent and its tests: installs the Debian packages the
# project needs when they are missing, mounts tracefs for bpftrace, and installs npm deps.
# Idempotent and quiet when everything is already there. Needs root (bpftrace does anyway).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v bpftrace >/dev/null 2>&1 || need_pkgs+=(bpftrace)
command -v perf >/dev/null 2>&1 || need_pkgs+=(linux-perf)
# --- Xen lab (issue 8, scripts/xen-lab.sh) ---
# QEMU boots Xen under TCG; cpio packs the dom0/domU initramfs; mke2fs -d builds the dom0 root
# image; depmod (kmod) indexes the dom0 kernel's modules. Xen, the dom0 kernel and busybox are
# downloaded into .cache/ by scripts/xen-lab-images.sh, not installed.
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_pkgs+=(qemu-system-x86)
command -v cpio >/dev/null 2>&1 || need_pkgs+=(cpio)
command -v depmod >/dev/null 2>&1 || [ -x /usr/sbin/depmod ] || need_pkgs+=(kmod)
command -v mke2fs >/dev/null 2>&1 || [ -x /usr/sbin/mke2fs ] || need_pkgs+=(e2fsprogs)
command -v aide >/dev/null 2>&1 || [ -x /usr/bin/aide ] || need_pkgs+=(aide)
# --- end Xen lab block ---
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

# bpftrace finds tracepoints under tracefs, which a fresh machine may not have mounted.
if [ ! -d /sys/kernel/tracing/events/sched ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null \
    || { mountpoint -q /sys/kernel/debug || mount -t debugfs nodev /sys/kernel/debug; } \
    || { echo "ensure-host: cannot mount tracefs at /sys/kernel/tracing" >&2; exit 1; }
fi

if [ ! -d node_modules/zeromq ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund >&2
fi
