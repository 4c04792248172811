#!/usr/bin/env bash
# A private libvirt for the tests and labs: its own virtlogd + libvirtd (Debian's libvirt 9.0, QEMU
# driver) with every state, runtime, log and socket path inside one temporary directory, and test
# domains built from the project's small QEMU guest (scripts/build-qemu-guest.sh). A system
# libvirtd, running or not, is never touched: the daemons run in their own mount namespace where
# /run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt and /etc/libvirt are bind
# mounts of that directory, and clients reach them through the socket in DIR/sock.
#
#   scripts/libvirt-lab.sh start DIR           starts the daemons; prints the URI for virsh -c
#   scripts/libvirt-lab.sh define DIR NAME [MEMORY_MIB] [net] [noballoon]
#                                              defines (does not start) a test domain; prints its UUID
#   scripts/libvirt-lab.sh stop DIR            destroys its domains, stops its daemons, removes DIR
#   scripts/libvirt-lab.sh run [-- CMD ARGS]   start + define + start domain "oc-lab" in a new temp
#                                              dir, runs CMD with OC_LIBVIRT_URI/OC_LIBVIRT_DOMAIN
#                                              (default: an interactive shell), then stop, on every exit
#
# `run` holds /tmp/oc-qemu.lock while its guest runs (one TCG guest at a time on a shared host);
# callers of start/define/stop take it themselves. Needs root; libvirt comes from
# scripts/ensure-test-tools.sh (installed without starting its services).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { echo "libvirt-lab: $*" >&2; exit 1; }

uri_for() { echo "qemu:///system?socket=$1/sock/libvirt-sock"; }

need_tools() {
  [ "$(id -u)" = 0 ] || die "needs root (libvirtd's QEMU driver runs privileged)"
  command -v virsh >/dev/null || die "virsh is missing (scripts/ensure-test-tools.sh installs libvirt-clients)"
  command -v libvirtd >/dev/null || [ -x /usr/sbin/libvirtd ] || die "libvirtd is missing (scripts/ensure-test-tools.sh installs libvirt-daemon)"
  command -v unshare >/dev/null || die "unshare (util-linux) is missing"
}

# The QEMU driver refuses to start without this user (docs/libvirt.md); created only when missing.
ensure_qemu_user() {
  getent group kvm >/dev/null || groupadd -r kvm
  getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
  id libvirt-qemu >/dev/null 2>&1 || useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
}

cmd_start() {
  local dir=$1
  need_tools
  ensure_qemu_user
  [ -e "$dir/libvirtd.pid" ] && die "$dir already holds a libvirtd (stop it first)"
  mkdir -p "$dir"/{run,lib,cache,log,etc,sock}
  # The guest's kernel and initramfs are read by QEMU as libvirt-qemu (dynamic_ownership relabels them).
  chmod 755 "$dir"
  cat >"$dir/libvirtd.conf" <<EOF
unix_sock_dir = "$dir/sock"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:$dir/log/libvirtd.log"
EOF
  # Running as root in the namespace: the QEMU processes of this daemon only, cgroups under machine/.
  : >"$dir/etc/qemu.conf"
  local libvirtd virtlogd
  libvirtd="$(command -v libvirtd || echo /usr/sbin/libvirtd)"
  virtlogd="$(command -v virtlogd || echo /usr/sbin/virtlogd)"
  # The namespace lives as long as libvirtd (exec'd last); virtlogd is started in it first.
  setsid unshare -m --propagation private -- bash -c '
    set -e
    d=$1
    mount --bind "$d/run" /run/libvirt 2>/dev/null || { mkdir -p /run/libvirt && mount --bind "$d/run" /run/libvirt; }
    for p in lib:/var/lib/libvirt cache:/var/cache/libvirt log:/var/log/libvirt etc:/etc/libvirt; do
      mkdir -p "${p#*:}"
      mount --bind "$d/${p%%:*}" "${p#*:}"
    done
    "$3" -d -p "$d/run/virtlogd.pid"
    exec "$2" -f "$d/libvirtd.conf" -p "$d/libvirtd.pid"
  ' libvirt-lab "$dir" "$libvirtd" "$virtlogd" >"$dir/log/libvirtd.out" 2>&1 </dev/null &
  echo $! >"$dir/namespace.pid"
  local uri i
  uri="$(uri_for "$dir")"
  for i in $(seq 1 100); do
    if [ -S "$dir/sock/libvirt-sock" ] && virsh -q -c "$uri" version >/dev/null 2>&1; then
      echo "$uri"
      return 0
    fi
    kill -0 "$(cat "$dir/namespace.pid")" 2>/dev/null || break
    sleep 0.2
  done
  echo "libvirt-lab: libvirtd did not answer on $dir/sock/libvirt-sock; its log:" >&2
  tail -n 20 "$dir/log/libvirtd.out" "$dir/log/libvirtd.log" >&2 2>/dev/null || true
  cmd_stop "$dir"
  return 1
}

# define DIR NAME [MEMORY_MIB] [net] [noballoon]: the test guest as a domain: TCG, 1 vCPU,
# virtio-balloon with a 1 s stats period (none with "noballoon"); with "net", a virtio-net NIC on a
# tap named after the domain, with vhost where /dev/vhost-net exists (else QEMU's userspace virtio-net).
cmd_define() {
  local dir=$1 name=$2 mem=${3:-256} net="" balloon="<memballoon model='virtio'><stats period='1'/></memballoon>" opt
  for opt in "${@:4}"; do
    case "$opt" in
      net) net=net ;;
      noballoon) balloon="<memballoon model='none'/>" ;;
      *) die "define: unknown option $opt (net, noballoon)" ;;
    esac
  done
  [[ "$name" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}$ ]] || die "domain name $name: letters, digits, '.', '_', '-' only"
  [[ "$mem" =~ ^[0-9]+$ ]] || die "memory $mem: MiB as an integer"
  local guest
  guest="$(bash "$root/scripts/build-qemu-guest.sh" | tail -n1)"
  # The guest files are copied next to the daemon: QEMU runs as libvirt-qemu, which may not read .cache.
  mkdir -p "$dir/guest"
  cp "$guest/vmlinuz" "$guest/initrd.gz" "$dir/guest/"
  chmod 644 "$dir/guest/"*
  local nic=""
  if [ "$net" = net ]; then
    local driver=qemu
    [ -c /dev/vhost-net ] && driver=vhost
    local tap="oct${name:0:10}"
    nic="<interface type='ethernet'><target dev='${tap//[^A-Za-z0-9]/}' managed='yes'/><model type='virtio'/><driver name='$driver'/></interface>"
  fi
  cat >"$dir/$name.xml" <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>$mem</memory>
  <currentMemory unit='MiB'>$mem</currentMemory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$dir/guest/vmlinuz</kernel>
    <initrd>$dir/guest/initrd.gz</initrd>
    <cmdline>console=ttyS0 rdinit=/init quiet panic=-1</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <serial type='file'><source path='$dir/log/$name.serial'/></serial>
    $balloon
    $nic
  </devices>
</domain>
EOF
  virsh -q -c "$(uri_for "$dir")" define "$dir/$name.xml" >/dev/null
  virsh -q -c "$(uri_for "$dir")" domuuid "$name"
}

cmd_stop() {
  local dir=$1
  [ -d "$dir" ] || return 0
  local uri dom pid
  uri="$(uri_for "$dir")"
  if [ -S "$dir/sock/libvirt-sock" ]; then
    for dom in $(virsh -q -c "$uri" list --all --name 2>/dev/null); do
      virsh -q -c "$uri" destroy "$dom" >/dev/null 2>&1 || true
      virsh -q -c "$uri" undefine "$dom" >/dev/null 2>&1 || true
    done
  fi
  # A QEMU that outlived its daemon (libvirtd killed first) is found by its pid file in DIR.
  for pid in $(cat "$dir"/run/qemu/*.pid 2>/dev/null); do
    grep -qs "$dir" "/proc/$pid/cmdline" && kill -KILL "$pid" 2>/dev/null || true
  done
  for f in "$dir/libvirtd.pid" "$dir/run/virtlogd.pid" "$dir/namespace.pid"; do
    pid="$(cat "$f" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
  done
  local i
  for i in $(seq 1 50); do
    local alive=0
    for f in "$dir/libvirtd.pid" "$dir/run/virtlogd.pid" "$dir/namespace.pid"; do
      pid="$(cat "$f" 2>/dev/null || true)"
      [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1
    done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for f in "$dir/libvirtd.pid" "$dir/run/virtlogd.pid" "$dir/namespace.pid"; do
    pid="$(cat "$f" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
}

run_dir=""
cmd_run() {
  if [ "${1:-}" = "--" ]; then shift; fi
  # Do not call `run` under an outer flock of the same file: flock(1) would wait on itself.
  exec 8>/tmp/oc-qemu.lock
  flock 8
  run_dir="$(mktemp -d /tmp/oc-libvirt.XXXXXX)"
  local dir=$run_dir
  trap 'cmd_stop "$run_dir"' EXIT
  trap 'exit 130' INT TERM
  local uri
  uri="$(cmd_start "$dir")"
  cmd_define "$dir" oc-lab 256 net >/dev/null
  virsh -q -c "$uri" start oc-lab >/dev/null
  echo "libvirt-lab: domain oc-lab running on $uri" >&2
  if [ $# -eq 0 ]; then set -- "${SHELL:-bash}"; fi
  OC_LIBVIRT_URI="$uri" OC_LIBVIRT_DOMAIN=oc-lab "$@"
}

sub=${1:-}
shift || true
case "$sub" in
  start) [ $# = 1 ] || die "usage: start DIR"; cmd_start "$1" ;;
  define) [ $# -ge 2 ] || die "usage: define DIR NAME [MEMORY_MIB] [net] [noballoon]"; cmd_define "$@" ;;
  stop) [ $# = 1 ] || die "usage: stop DIR"; cmd_stop "$1" ;;
  run) cmd_run "$@" ;;
  *) die "usage: libvirt-lab.sh start DIR | define DIR NAME [MEMORY_MIB] [net] [noballoon] | stop DIR | run [-- CMD...]" ;;
esac
