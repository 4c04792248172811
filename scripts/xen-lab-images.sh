#!/usr/bin/env bash
# Builds (or reuses) the Xen lab's boot artefacts and prints the directory that holds them:
#   xen               Xen 4.17 hypervisor, ELF multiboot image for QEMU -kernel
#   vmlinuz           Debian 6.1 kernel, dom0 and domU
#   dom0-initrd.gz    stage 1: loads virtio/ext4 modules, mounts dom0-root.ext2, switch_root
#   dom0-root.ext2    dom0 root (ext2: no journal and no metadata checksums, so the ext4 driver
#                     mounts it read-only without waiting for crc32c): busybox, Xen tools, node, bpftrace, aide, the project's runtime
#                     node_modules, kernel modules, lab/xen/dom0/init.sh as /sbin/lab-init
#   domu-initrd.gz    domU: busybox and an init that burns CPU
#   domu-disk.ext2    the domU's disk image (its files plus data), scanned read-only by the IDS in dom0
# Xen, the kernel and busybox come from Debian's archive (`apt-get download` + `dpkg -x`, nothing
# installed); node, bpftrace and aide are the host's own (scripts/ensure-host.sh and scripts/ensure-test-tools.sh install them) with
# their shared libraries. The output directory is named by a hash of every input, so a second run
# with the same inputs rebuilds nothing. docs/xen-lab.md explains the lab.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache/xen-lab"
debs="$cache/debs"
mkdir -p "$debs"

log() { echo "xen-lab-images: $*" >&2; }
die() { log "$*"; exit 1; }

for tool in apt-get dpkg cpio gzip mke2fs depmod ldd sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || die "$tool not found (run scripts/ensure-test-tools.sh as root)"
done
export PATH="$PATH:/usr/sbin:/sbin"
for tool in node bpftrace aide; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found on the host (run scripts/ensure-test-tools.sh as root)"
done

# Concurrent runs share the cache: one builder at a time.
exec 9>"$cache/.lock"
flock 9

# --- Debian packages -------------------------------------------------------------------------
# A fresh machine whose packages were all present may never have fetched the package lists.
if ! apt-cache policy xen-utils-4.17 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  apt-get update -qq >/dev/null || die "apt-get update failed (network?)"
fi
kernel_pkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[ -n "$kernel_pkg" ] || die "cannot find the kernel package behind linux-image-amd64 (apt-get update?)"
packages=(xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common libxencall1 libxenevtchn1
  libxenforeignmemory1 libxengnttab1 libxenmisc4.17 libxenstore4 libxentoollog1 libyajl2
  libxendevicemodel1 libxentoolcore1 libxenhypfs1 busybox-static "$kernel_pkg")
versions=()
# One apt-cache call for all (each call reads the whole package cache: about a second).
declare -A candidate=()
while read -r p v; do candidate[$p]="$v"; done < <(apt-cache policy "${packages[@]}" | awk '/^[^ ].*:$/ {sub(":$", ""); p = $0} /Candidate:/ {print p, $2}')
for p in "${packages[@]}"; do
  v="${candidate[$p]:-}"
  [ -n "$v" ] && [ "$v" != "(none)" ] || die "package $p has no candidate version (apt-get update?)"
  versions+=("$p=$v")
done

# --- cache key ---------------------------------------------------------------------------------
lock_hash="$(sha256sum "$root/package-lock.json" | cut -c1-16)"
key="$( {
  cat "${BASH_SOURCE[0]}" "$root/lab/xen/dom0/init.sh" "$root/lab/xen/dom0/stage1.sh" "$root/lab/xen/domu/init.sh"
  printf '%s\n' "${versions[@]}"
  node --version; sha256sum "$(command -v node)" "$(command -v bpftrace)" "$(command -v aide)"
  echo "$lock_hash"
} | sha256sum | cut -c1-16)"
out="$cache/images-$key"
if [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi
log "building images in $out"
started=$SECONDS

missing=()
for pv in "${versions[@]}"; do
  p="${pv%%=*}"; v="${pv#*=}"
  ls "$debs/${p}_"*.deb >/dev/null 2>&1 && ls "$debs/${p}_"*.deb | grep -qF "_${v//:/%3a}_" || missing+=("$pv")
done
if ((${#missing[@]})); then
  log "downloading ${#missing[@]} Debian packages"
  (cd "$debs" && apt-get download -q "${missing[@]}" >/dev/null 2>&1) || die "apt-get download ${missing[*]} failed (network, or no bookworm sources?)"
fi

work="$cache/build-$key.$$"
rm -rf "$work"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/pkg" "$out.tmp"
rm -rf "$out.tmp"; mkdir -p "$out.tmp"
for pv in "${versions[@]}"; do
  p="${pv%%=*}"; v="${pv#*=}"
  dpkg -x "$debs/${p}_${v//:/%3a}_"*.deb "$work/pkg"
done
pkg="$work/pkg"
kver="$(ls "$pkg/lib/modules")"

gunzip -c "$pkg/boot/xen-4.17-amd64.gz" >"$out.tmp/xen"
cp "$pkg/boot/vmlinuz-$kver" "$out.tmp/vmlinuz"

# Copies into a staging root the host's shared libraries that the given executables link.
copy_libs_of() {
  local dest="$1"; shift
  local f lib
  for f in "$@"; do
    { LD_LIBRARY_PATH="$pkg/usr/lib/x86_64-linux-gnu" ldd "$f" 2>/dev/null || true; } \
      | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | while read -r lib; do
      case "$lib" in "$pkg"/*) continue ;; esac
      [ -e "$dest$lib" ] && continue
      mkdir -p "$dest$(dirname "$lib")"
      cp -L "$lib" "$dest$lib"
    done
  done
}

# Copies host executables (same path) and their shared libraries into a staging root.
copy_with_libs() {
  local dest="$1"; shift
  local f
  for f in "$@"; do
    mkdir -p "$dest$(dirname "$f")"
    cp -L "$f" "$dest$f"
  done
  copy_libs_of "$dest" "$@"
}

# busybox with its applets as symlinks.
install_busybox() {
  local dest="$1" a
  mkdir -p "$dest/bin" "$dest/sbin" "$dest/usr/bin" "$dest/usr/sbin"
  cp "$pkg/bin/busybox" "$dest/bin/busybox"
  for a in $("$pkg/bin/busybox" --list-full); do
    [ -e "$dest/$a" ] || ln -s /bin/busybox "$dest/$a"
  done
}

# --- domU --------------------------------------------------------------------------------------
domu="$work/domu"
install_busybox "$domu"
mkdir -p "$domu/proc" "$domu/sys" "$domu/dev" "$domu/etc"
cp "$root/lab/xen/domu/init.sh" "$domu/init"; chmod 755 "$domu/init"
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
# Merged /usr, as on the host, so the libraries copied from it land where its loader looks.
mkdir -p "$r/usr/bin" "$r/usr/sbin" "$r/usr/lib" "$r/usr/lib64"
for d in bin sbin lib lib64; do ln -s "usr/$d" "$r/$d"; done
install_busybox "$r"
mkdir -p "$r"/{proc,sys,dev,run,tmp,mnt/domu-disk,etc,var/lib,var/log,root,opt/offloadcage,lib/modules}
ln -s /run "$r/var/run"
cp -a "$pkg/usr/lib/xen-4.17" "$r/usr/lib/"
cp -a "$pkg/usr/lib/x86_64-linux-gnu" "$r/usr/lib/"
cp -a "$pkg/etc/xen" "$r/etc/"
for b in xl xentrace xentop xenstored xenconsoled xen-init-dom0 xenstore-control; do
  ln -sf "/usr/lib/xen-4.17/bin/$b" "$r/usr/sbin/$b"
done
# xl's helpers and xenstore clients (xenstore-read & co.) live in xen-utils-common's /usr/bin.
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

# Kernel modules: Xen backends/devices, block, virtio, file systems, and their dependencies.
m="$r/lib/modules/$kver"
mkdir -p "$m/kernel"
for d in drivers/xen drivers/block drivers/virtio drivers/char fs lib crypto arch; do
  mkdir -p "$m/kernel/$(dirname "$d")"
  cp -a "$pkg/lib/modules/$kver/kernel/$d" "$m/kernel/$d"
done
cp "$pkg/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$m/"
depmod -b "$r" "$kver"

# The project's runtime dependencies (not its dev tools): the packages `npm ls --omit=dev` lists.
nm="$r/opt/offloadcage/node_modules"
mkdir -p "$nm"
(cd "$root" && npm ls --omit=dev --all --parseable 2>/dev/null) | tail -n +2 | while read -r dir; do
  rel="${dir#"$(readlink -f "$root/node_modules")"/}"
  rel="${rel#"$root/node_modules/"}"
  case "$rel" in /*) continue ;; esac
  [ -d "$nm/$rel" ] && continue
  mkdir -p "$nm/$(dirname "$rel")"
  cp -a "$(readlink -f "$root/node_modules")/$rel" "$nm/$rel"
done
[ -d "$nm/zeromq" ] || die "zeromq missing from the dom0 node_modules (is node_modules installed?)"

size_mb=$(( $(du -sm "$r" | cut -f1) * 12 / 10 + 64 ))
mke2fs -q -t ext2 -d "$r" -L dom0-root "$out.tmp/dom0-root.ext2" "${size_mb}M" >&2

# --- dom0 stage 1 initramfs: just enough to mount the root image -------------------------------
i="$work/initrd"
install_busybox "$i"
mkdir -p "$i"/{proc,sys,dev,newroot}
cp "$root/lab/xen/dom0/stage1.sh" "$i/init"; chmod 755 "$i/init"
mods=""
for mod in virtio_pci virtio_blk crc32c_generic ext4; do
  mods="$mods $(grep -E "/$mod\.ko(\.xz)?:" "$m/modules.dep" | sed 's/^\([^:]*\):\(.*\)/\2 \1/')"
done
seen=""
for f in $mods; do
  case " $seen " in *" $f "*) continue ;; esac
  seen="$seen $f"
  mkdir -p "$i/lib/modules/$kver/$(dirname "$f")"
  cp "$m/$f" "$i/lib/modules/$kver/$f"
done
# insmod order: dependencies first (modules.dep lists them after the module, reversed here).
deps_in_order=""
for mod in virtio_pci virtio_blk crc32c_generic ext4; do
  line="$(grep -E "/$mod\.ko(\.xz)?:" "$m/modules.dep")"
  self="${line%%:*}"
  for f in $(echo "${line#*:}" | tr ' ' '\n' | tac) "$self"; do
    case " $deps_in_order " in *" $f "*) ;; *) deps_in_order="$deps_in_order $f" ;; esac
  done
done
echo "$deps_in_order" | tr ' ' '\n' | grep . | sed "s|^|/lib/modules/$kver/|" >"$i/modules.list"
(cd "$i" && find . | cpio -o -H newc --quiet | gzip -6) >"$out.tmp/dom0-initrd.gz"

printf '%s\n' "${versions[@]}" >"$out.tmp/packages.txt"
echo "$kver" >"$out.tmp/kernel-version"
touch "$out.tmp/.complete"
rm -rf "$out"
mv "$out.tmp" "$out"
# Older image sets are superseded by this one.
for old in "$cache"/images-*; do
  [ "$old" = "$out" ] || rm -rf "$old"
done
log "built in $((SECONDS - started)) s: $(du -sh "$out" | cut -f1)"
echo "$out"
