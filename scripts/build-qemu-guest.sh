#!/usr/bin/env bash
# Builds the small QEMU test guest the balloon actuator's tests and `cage lab memory` drive, and prints
# the directory holding it (vmlinuz, initrd.gz). Cached in .cache/qemu-guest: a second run only prints.
#
#   kernel:    Debian bookworm's linux-image-*-amd64 (the one linux-image-amd64 depends on), whose
#              virtio_balloon is a module (CONFIG_VIRTIO_BALLOON=m)
#   initramfs: busybox-static + the six virtio modules, loaded in dependency order by /init;
#              /init then prints the guest's own /proc/meminfo on the serial console twice a second:
#                OCGUEST-MEM <seq> <MemTotal kB> <MemFree kB> <MemAvailable kB>
#
# Both packages are fetched with `apt-get download` and unpacked with `dpkg -x` into .cache; nothing is
# installed on the host (qemu-system-x86 and cpio come from scripts/ensure-test-tools.sh).
# Start it with lab/common/qemuGuest.ts (startQemuGuest), or by hand:
#   qemu-system-x86_64 -accel tcg -cpu max -m 512 -smp 1 -nodefaults -display none -no-reboot \
#     -serial file:/tmp/g.log -monitor none -qmp unix:/tmp/g.qmp,server=on,wait=off \
#     -kernel DIR/vmlinuz -initrd DIR/initrd.gz -append "console=ttyS0 rdinit=/init quiet panic=-1" \
#     -device virtio-balloon-pci,id=balloon0 -nic none
# Override the whole thing with OFFLOADCAGE_QEMU_GUEST=/dir/with/vmlinuz+initrd.gz.
set -euo pipefail

if [[ -n "${OFFLOADCAGE_QEMU_GUEST:-}" ]]; then
  echo "$OFFLOADCAGE_QEMU_GUEST"
  exit 0
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache"
dest="$cache/qemu-guest"
debs="$cache/debs"
# The /init below is part of the guest: a change to this script rebuilds the initramfs.
recipe="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"

die() { echo "build-qemu-guest: $*" >&2; exit 1; }

# The virtio modules in dependency order (each module's `depends=` in its .modinfo, checked below).
modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_balloon)

download() { # package-name -> path of the .deb in $debs
  local pkg="$1"
  local found
  found="$(ls "$debs"/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)"
  if [[ -z "$found" ]]; then
    (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2) \
      || die "apt-get download $pkg failed (no network or no Debian bookworm sources?)"
    found="$(ls "$debs"/"${pkg}"_*.deb | head -n1)"
  fi
  echo "$found"
}

build() {
  if [[ -f "$dest/stamp" && "$(cat "$dest/stamp")" == "$recipe" && -f "$dest/vmlinuz" && -f "$dest/initrd.gz" ]]; then
    return 0
  fi
  command -v cpio >/dev/null || die "cpio is missing (scripts/ensure-test-tools.sh installs it)"
  mkdir -p "$debs"
  local kpkg
  kpkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')"
  [[ -n "$kpkg" ]] || die "cannot resolve linux-image-amd64 to a kernel package (apt-cache depends)"
  local kdeb bdeb
  kdeb="$(download "$kpkg")"
  bdeb="$(download busybox-static)"

  local work="$dest.work"
  rm -rf "$work"
  mkdir -p "$work/kernel" "$work/busybox" "$work/root"
  dpkg -x "$kdeb" "$work/kernel"
  dpkg -x "$bdeb" "$work/busybox"

  local vmlinuz kver moddir
  vmlinuz="$(ls "$work"/kernel/boot/vmlinuz-* | head -n1)"
  [[ -f "$vmlinuz" ]] || die "no /boot/vmlinuz-* in $kdeb"
  kver="${vmlinuz##*/vmlinuz-}"
  moddir="$work/kernel/lib/modules/$kver"
  [[ -d "$moddir" ]] || die "no lib/modules/$kver in $kdeb"

  local r="$work/root"
  mkdir -p "$r"/{bin,sbin,proc,sys,dev,tmp,lib/modules}
  cp "$work/busybox/bin/busybox" "$r/bin/busybox"
  for a in sh mount insmod cat grep sleep echo poweroff; do ln -s busybox "$r/bin/$a"; done

  local m f prev=""
  for m in "${modules[@]}"; do
    f="$(find "$moddir" -name "$m.ko*" | head -n1)"
    [[ -n "$f" ]] || die "module $m not found under lib/modules/$kver"
    case "$f" in
      *.ko) cp "$f" "$r/lib/modules/$m.ko" ;;
      *.ko.xz) xz -dc "$f" >"$r/lib/modules/$m.ko" ;;
      *.ko.zst) zstd -qdc "$f" >"$r/lib/modules/$m.ko" ;;
      *) die "unknown module compression: $f" ;;
    esac
    # Dependencies must already be in the list before $m.
    # (Read from the .modinfo strings: Debian's kmod/modinfo need not be on the host.)
    local dep
    for dep in $(tr '\0' '\n' <"$r/lib/modules/$m.ko" | sed -n 's/^depends=//p' | head -n1 | tr ',' ' '); do
      [[ " $prev " == *" $dep "* ]] || die "module order: $m needs $dep first"
    done
    prev="$prev $m"
  done

  # The guest's /init. Runs as PID 1 under busybox sh.
  cat >"$r/init" <<EOF
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in ${modules[*]}; do
  insmod /lib/modules/\$m.ko || echo "OCGUEST-ERROR insmod \$m failed"
done
echo "OCGUEST-READY kernel=$kver"
n=0
while true; do
  t=0; f=0; a=0
  while read -r k v u; do
    case "\$k" in
      MemTotal:) t=\$v ;;
      MemFree:) f=\$v ;;
      MemAvailable:) a=\$v ;;
    esac
  done </proc/meminfo
  echo "OCGUEST-MEM \$n \$t \$f \$a"
  n=\$((n+1))
  sleep 0.5
done
EOF
  chmod +x "$r/init"

  (cd "$r" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -9 >"$work/initrd.gz")
  cp "$vmlinuz" "$work/vmlinuz"
  rm -rf "$dest"
  mkdir -p "$dest"
  mv "$work/vmlinuz" "$work/initrd.gz" "$dest/"
  echo "$kver" >"$dest/kernel-version"
  rm -rf "$work"
  echo "$recipe" >"$dest/stamp"
}

mkdir -p "$cache"
# Tests may call this concurrently: serialise the build.
exec 9>"$cache/build-qemu-guest.lock"
if command -v flock >/dev/null; then flock 9; fi
build
echo "$dest"
