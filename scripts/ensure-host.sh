#!/usr/bin/env bash
# What the agent itself needs on this machine (`npm start`, `cage demo`, `cage run`): bpftrace,
# the toolchain of the libbpf CPU program, tracefs mounted for bpftrace, and the npm dependencies.
# Lab and test tools are installed by scripts/ensure-test-tools.sh instead. Starts, stops and
# reconfigures no service.
# Idempotent and quiet when everything is already there. Needs root (bpftrace does anyway).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/apt-install.sh
. scripts/apt-install.sh

command -v bpftrace >/dev/null 2>&1 || apt_install_without_services ensure-host bpftrace

# The toolchain of the libbpf CPU program (scripts/build.sh builds dist/bpf/cpuTime with it; about
# 25 MB: clang-14's driver, its headers, libbpf-dev, bpftool). LLVM 14 itself comes with bpftrace.
pkgs=()
command -v clang-14 >/dev/null 2>&1 || pkgs+=(clang-14)
[ -e /usr/include/bpf/bpf_helpers.h ] || pkgs+=(libbpf-dev)
command -v bpftool >/dev/null 2>&1 || [ -x /usr/sbin/bpftool ] || pkgs+=(bpftool)
[ ${#pkgs[@]} -eq 0 ] || apt_install_without_services ensure-host "${pkgs[@]}"

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
