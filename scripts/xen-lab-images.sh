#!/usr/bin/env bash
# Builds (or reuses) the Xen lab's boot artefacts and prints the directory that holds them:
#   xen               Xen 4.17 hypervisor, ELF multiboot image for QEMU -kernel
#   vmlinuz           Debian 6.1 kernel, dom0 and domU
#   dom0-initrd.gz    stage 1 (lab/xen/dom0/stage1.sh): loads virtio/ext4 modules, mounts dom0-root.ext2, switch_root
#   dom0-root.ext2    dom0 root (ext2): busybox, Xen tools, node, bpftrace, aide, the project's runtime
#                     node_modules, kernel modules, lab/xen/dom0/init.sh as /sbin/lab-init
#   domu-initrd.gz    domU: busybox and an init that burns CPU
#   domu-disk.ext2    the domU's disk image (its files plus data), scanned read-only by the IDS in dom0
# Xen, the kernel and busybox come from Debian's archive (`apt-get download` + `dpkg -x`, nothing
# installed); node, bpftrace and aide are the host's own (scripts/ensure-host.sh and scripts/ensure-test-tools.sh install them) with
# their shared libraries. The output directory is named by a hash of every input, so a second run
# with the same inputs rebuilds nothing. What the two labs' image scripts share is in
# scripts/lab-images-lib.sh. docs/xen-lab.md explains the lab.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAB=xen-lab
# shellcheck source=scripts/lab-images-lib.sh
. "$root/scripts/lab-images-lib.sh"
lab_images_begin

# --- Debian packages -------------------------------------------------------------------------
kernel_pkg="$(lab_kernel_package xen-utils-4.17)"
lab_package_versions xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common libxencall1 libxenevtchn1 \
  libxenforeignmemory1 libxengnttab1 libxenmisc4.17 libxenstore4 libxentoollog1 libyajl2 \
  libxendevicemodel1 libxentoolcore1 libxenhypfs1 xenstore-utils busybox-static "$kernel_pkg"

# --- cache key ---------------------------------------------------------------------------------
key="$(lab_cache_key "${BASH_SOURCE[0]}" "$root/lab/xen/dom0/init.sh" "$root/lab/xen/dom0/stage1.sh" "$root/lab/xen/domu/init.sh" "$root/lab/xen/dom0/cr3-monitor.c" \
  "$root/lab/xen/domu/ids-helper.sh" "$root/lab/xen/domu/ids-loop" "$root/lab/xen/domu/ids-mm-trace.sh" "$root/lab/xen/domu/ids-aide")"
lab_images_build_or_reuse "$key"
for pv in "${versions[@]}"; do lab_unpack_deb "$debs" "$pv" "$pkg"; done
lab_kernel_unpacked

gunzip -c "$pkg/boot/xen-4.17-amd64.gz" >"$out.tmp/xen"

# Xen's libraries come from the packages, the rest from the host.
lab_ldd_path="$pkg/usr/lib/x86_64-linux-gnu"
lab_ldd_own="$pkg"

# --- domU --------------------------------------------------------------------------------------
domu="$work/domu"
install_busybox "$busybox" "$domu" /bin/busybox
mkdir -p "$domu/proc" "$domu/sys" "$domu/dev" "$domu/etc"
cp "$root/lab/xen/domu/init.sh" "$domu/init"; chmod 755 "$domu/init"
# The cr3 phases' IDS-VM: the IDS helper, the IDS process, the address-space tracer, AIDE (the
# cr3-paper phase's IDS), and Xen's xenstore client (one binary, named by its link) with its
# libraries, beside libc where the loader looks without a cache.
install -m 755 "$root/lab/xen/domu/ids-helper.sh" "$root/lab/xen/domu/ids-loop" "$root/lab/xen/domu/ids-mm-trace.sh" "$root/lab/xen/domu/ids-aide" "$domu/bin/"
copy_with_libs "$domu" "$(command -v aide)"
mkdir -p "$domu/usr/bin" "$domu/lib/x86_64-linux-gnu"
cp "$pkg/usr/bin/xenstore" "$domu/usr/bin/xenstore"
for a in write rm read ls watch; do ln -sf xenstore "$domu/usr/bin/xenstore-$a"; done
cp -L "$pkg/usr/lib/x86_64-linux-gnu/libxenstore.so.4" "$pkg/usr/lib/x86_64-linux-gnu/libxentoolcore.so.1" "$domu/lib/x86_64-linux-gnu/"
copy_libs_of "$domu" "$pkg/usr/bin/xenstore"
(cd "$domu" && find . | cpio -o -H newc --quiet | gzip -6) >"$out.tmp/domu-initrd.gz"

# The domU's disk: its own files plus data files for the IDS to hash (about 230 MB of kernel
# modules, so that one AIDE pass held at 25% of a CPU under TCG lasts about two minutes: every
# restart of the IDS loop is a gap in which the VM is given the whole cage, then a window or two of
# overrun as the IDS comes back; with 90 MB the loop restarted inside every 20-window phase).
disk="$work/domu-disk"
cp -a "$domu" "$disk"
mkdir -p "$disk/srv/data"
cp -a "$pkg/usr/lib/xen-4.17" "$disk/srv/data/xen-4.17"
for d in drivers/net drivers/gpu drivers/media fs sound; do
  mkdir -p "$disk/srv/data/modules/$d"
  cp -a "$pkg/lib/modules/$kver/kernel/$d/." "$disk/srv/data/modules/$d/"
done
mke2fs -q -t ext2 -d "$disk" -L domu-disk "$out.tmp/domu-disk.ext2" 320M >&2

# --- dom0 root ---------------------------------------------------------------------------------
r="$work/dom0"
lab_merged_usr "$r"
install_busybox "$busybox" "$r" /bin/busybox
mkdir -p "$r"/{proc,sys,dev,run,tmp,mnt/domu-disk,etc,var/lib,var/log,root,opt/offloadcage,lib/modules}
ln -s /run "$r/var/run"
cp -a "$pkg/usr/lib/xen-4.17" "$r/usr/lib/"
cp -a "$pkg/usr/lib/x86_64-linux-gnu" "$r/usr/lib/"
cp -a "$pkg/etc/xen" "$r/etc/"
for b in xl xentrace xentop xenstored xenconsoled xen-init-dom0 xenstore-control; do
  ln -sf "/usr/lib/xen-4.17/bin/$b" "$r/usr/sbin/$b"
done
# cr3-monitor (the cr3-trace phase): switches Xen's CR3-write monitor on for a PVH domU, so that
# its CR3 writes reach xentrace. Built against the package's libxenctrl; no development package.
if command -v cc >/dev/null; then
  cc -O2 -Wall -o "$r/usr/sbin/cr3-monitor" "$root/lab/xen/dom0/cr3-monitor.c" \
    "$pkg/usr/lib/x86_64-linux-gnu/libxenctrl.so.4.17" -Wl,-rpath-link="$pkg/usr/lib/x86_64-linux-gnu" >&2
else
  echo "xen-lab-images: no C compiler: the image has no cr3-monitor (the cr3-trace phase needs it)" >&2
fi
# xl's helpers (xen-utils-common) and the xenstore clients (xenstore-ls & co., xenstore-utils: the
# pipeline reads IDS-VM helpers' reports with xenstore-ls) are in the packages' /usr/bin.
cp -a "$pkg/usr/bin/." "$r/usr/bin/"
# libgcc_s: without it `xl create` aborts (pthread_cancel loads it at run time, ldd does not show it).
copy_libs_of "$r" $(find "$r/usr/lib/xen-4.17/bin" -type f -perm -u+x)
copy_with_libs "$r" /lib/x86_64-linux-gnu/libgcc_s.so.1 "$(command -v node)" "$(command -v bpftrace)" "$(command -v aide)"
printf '%s\n' /usr/lib/x86_64-linux-gnu /usr/lib/xen-4.17/lib/x86_64-linux-gnu >"$r/etc/ld.so.conf"
ldconfig -r "$r"
# The domU's kernel and initramfs, for `xl create` in dom0.
mkdir -p "$r/usr/share/xen-lab"
cp "$out.tmp/vmlinuz" "$out.tmp/domu-initrd.gz" "$r/usr/share/xen-lab/"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
printf 'root:x:0:\n' >"$r/etc/group"
echo dom0 >"$r/etc/hostname"
cp "$root/lab/xen/dom0/init.sh" "$r/sbin/lab-init"; chmod 755 "$r/sbin/lab-init"
lab_install_guest_lib "$r"

# Kernel modules: Xen backends/devices, block, virtio, file systems, and their dependencies.
lab_kernel_modules "$pkg" "$r" "$kver" drivers/xen drivers/block drivers/virtio drivers/char fs lib crypto arch
lab_production_node_modules "$r/opt/offloadcage/node_modules"
lab_ext2_of "$r" dom0-root "$out.tmp/dom0-root.ext2"

# --- dom0 stage 1 initramfs: just enough to mount the root image -------------------------------
lab_stage1_initrd "$busybox" "$r" "$kver" "$root/lab/xen/dom0/stage1.sh" "$out.tmp/dom0-initrd.gz" virtio_pci virtio_blk crc32c_generic ext4

lab_publish
