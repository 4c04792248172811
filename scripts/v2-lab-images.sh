#!/usr/bin/env bash
# Builds (or reuses) the v2 lab's boot artefacts and prints the directory that holds them:
#   vmlinuz        Debian's 6.1 kernel
#   initrd.gz      stage 1 (lab/v2/guest/stage1.sh): loads virtio/ext4/overlay, mounts root.ext2
#                  read-only under a tmpfs overlay, execs systemd as PID 1
#   root.ext2      the guest's root: Debian's systemd (+ systemd-sysv) and the host's libraries it
#                  links, busybox, the host's node, npm, bpftrace and aide with their libraries, the
#                  project's production node_modules, the lab's units (vm-workload.service,
#                  aide.service, v2-lab.service) and kernel modules
#   vm-disk.ext2   the "VM's disk image" the IDS (AIDE) scans read-only
# The kernel, systemd and busybox come from Debian's archive (`apt-get download` + `dpkg -x`,
# nothing installed); a .deb already in .cache/debs or .cache/xen-lab/debs is reused. The output
# directory is named by a hash of every input, so a second run rebuilds nothing; flock serialises
# concurrent builders. What the two labs' image scripts share is in scripts/lab-images-lib.sh.
# docs/v2-lab.md explains the lab.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAB=v2-lab
# shellcheck source=scripts/lab-images-lib.sh
. "$root/scripts/lab-images-lib.sh"
guest="$root/lab/v2/guest"
lab_images_begin
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
[ -f "$npm_dir/package.json" ] || die "cannot find npm's own folder (from $(command -v npm))"

# --- Debian packages -------------------------------------------------------------------------
kernel_pkg="$(lab_kernel_package systemd)"
lab_package_versions systemd systemd-sysv libsystemd-shared libsystemd0 busybox-static "$kernel_pkg"

# --- cache key ---------------------------------------------------------------------------------
key="$(lab_cache_key "${BASH_SOURCE[0]}" "$guest"/*.sh "$guest"/aide.conf "$guest"/units/*)"
lab_images_build_or_reuse "$key"
r="$work/root"
lab_merged_usr "$r"
# The kernel and busybox to the side, systemd into the root.
for pv in "${versions[@]}"; do
  case "$pv" in linux-image-*|busybox-static=*) lab_unpack_deb "$debs" "$pv" "$pkg" ;;
    *) lab_unpack_deb "$debs" "$pv" "$r" ;;
  esac
done
lab_kernel_unpacked

# systemd's libraries come with it, the rest from the host.
lab_ldd_path="$r/usr/lib/x86_64-linux-gnu/systemd:$r/usr/lib/x86_64-linux-gnu"
lab_ldd_own="$r"

# systemd's executables and libraries, then everything they link from the host.
mapfile -t elf < <(find "$r/usr/lib/systemd" "$r/usr/bin" "$r/usr/lib/x86_64-linux-gnu" -type f \( -perm -u+x -o -name '*.so*' \) 2>/dev/null)
copy_libs_of "$r" "${elf[@]}"
copy_with_libs "$r" /lib/x86_64-linux-gnu/libgcc_s.so.1 "$(command -v node)" "$(command -v bpftrace)" "$(command -v aide)"
# npm (its own JavaScript): `cage install` asks it for the production packages.
mkdir -p "$r/usr/lib/node_modules"
cp -a "$npm_dir" "$r/usr/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$r/usr/bin/npm"
# busybox for the shell tools systemd does not bring.
install_busybox "$busybox" "$r" /usr/bin/busybox
printf '%s\n' /usr/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/systemd >"$r/etc/ld.so.conf"
ldconfig -r "$r"
# --- /etc and the lab's units ------------------------------------------------------------------
mkdir -p "$r"/{proc,sys,dev,run,tmp,root,srv/vm-disk,var/lib,var/log,var/tmp,etc/v2-lab,usr/lib/v2-lab,etc/systemd/system}
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$r/etc/passwd"
printf '%s\n' 'root:x:0:' 'systemd-journal:x:101:' 'nogroup:x:65534:' >"$r/etc/group"
printf '%s\n' 'passwd: files' 'group: files' 'shadow: files' 'hosts: files' >"$r/etc/nsswitch.conf"
echo v2lab >"$r/etc/hostname"
cp /usr/lib/os-release "$r/usr/lib/os-release"
ln -sf ../usr/lib/os-release "$r/etc/os-release"
# A fixed machine id: an empty one would make this every boot's "first boot" (presets applied).
echo 0c0ffee0ffload0cage0v2lab0000001 | tr -c '0-9a-f\n' 0 >"$r/etc/machine-id"
touch "$r/etc/fstab"
ln -sf /usr/lib/systemd/system/multi-user.target "$r/etc/systemd/system/default.target"
# Units this guest has no use for, or whose programs it lacks (agetty, kmod, dbus for logind): masked,
# so the boot neither waits on them nor fills the console with their failures.
for u in getty@.service serial-getty@.service console-getty.service systemd-logind.service \
  systemd-firstboot.service systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
  systemd-homed.service systemd-userdbd.service systemd-hwdb-update.service systemd-pstore.service \
  dev-hugepages.mount dev-mqueue.mount sys-fs-fuse-connections.mount systemd-networkd-wait-online.service \
  getty-static.service kmod-static-nodes.service; do
  ln -sf /dev/null "$r/etc/systemd/system/$u"
done
cp "$guest/units/"*.service "$r/etc/systemd/system/"
mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
ln -sf ../v2-lab.service "$r/etc/systemd/system/multi-user.target.wants/v2-lab.service"
install -m 755 "$guest/lab-run.sh" "$r/usr/lib/v2-lab/lab-run"
lab_install_guest_lib "$r"
install -m 755 "$guest/vm-workload.sh" "$r/usr/lib/v2-lab/vm-workload"
install -m 755 "$guest/ids-loop.sh" "$r/usr/lib/v2-lab/ids-loop"
cp "$guest/aide.conf" "$r/etc/v2-lab/aide.conf"

# Kernel modules: block, virtio, file systems and their dependencies.
lab_kernel_modules "$pkg" "$r" "$kver" drivers/block drivers/virtio drivers/char fs lib crypto arch
lab_production_node_modules "$r/usr/lib/v2-lab/node_modules"
lab_ext2_of "$r" v2-root "$out.tmp/root.ext2"

# --- the VM's disk, scanned by the IDS: kernel modules as data (a pass lasts minutes under TCG) --
disk="$work/vm-disk"
mkdir -p "$disk/data"
for d in drivers/net drivers/gpu drivers/media fs sound; do
  mkdir -p "$disk/data/$d"
  cp -a "$pkg/lib/modules/$kver/kernel/$d/." "$disk/data/$d/"
done
mke2fs -q -t ext2 -d "$disk" -L vm-disk "$out.tmp/vm-disk.ext2" 320M >&2

# --- stage 1 initramfs ---------------------------------------------------------------------------
lab_stage1_initrd "$busybox" "$r" "$kver" "$guest/stage1.sh" "$out.tmp/initrd.gz" virtio_pci virtio_blk crc32c_generic ext4 overlay

lab_publish
