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
# concurrent builders. docs/v2-lab.md explains the lab.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache/v2-lab"
debs="$cache/debs"
guest="$root/lab/v2/guest"
mkdir -p "$debs"

log() { echo "v2-lab-images: $*" >&2; }
die() { log "$*"; exit 1; }

export PATH="$PATH:/usr/sbin:/sbin"
for tool in apt-get apt-cache dpkg cpio gzip mke2fs depmod ldconfig ldd sha256sum flock; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run scripts/ensure-test-tools.sh as root)"
done
for tool in node npm bpftrace aide; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found on the host (run scripts/ensure-test-tools.sh as root)"
done
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
[ -f "$npm_dir/package.json" ] || die "cannot find npm's own folder (from $(command -v npm))"

exec 9>"$cache/.lock"
flock 9

# --- Debian packages -------------------------------------------------------------------------
if ! apt-cache policy systemd 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  apt-get update -qq >/dev/null || die "apt-get update failed (network?)"
fi
kernel_pkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[ -n "$kernel_pkg" ] || die "cannot find the kernel package behind linux-image-amd64 (apt-get update?)"
packages=(systemd systemd-sysv libsystemd-shared libsystemd0 busybox-static "$kernel_pkg")
declare -A candidate=()
while read -r p v; do candidate[$p]="$v"; done < <(apt-cache policy "${packages[@]}" | awk '/^[^ ].*:$/ {sub(":$", ""); p = $0} /Candidate:/ {print p, $2}')
versions=()
for p in "${packages[@]}"; do
  v="${candidate[$p]:-}"
  [ -n "$v" ] && [ "$v" != "(none)" ] || die "package $p has no candidate version (apt-get update?)"
  versions+=("$p=$v")
done
deb_of() { local p="${1%%=*}" v="${1#*=}"; echo "${p}_${v//:/%3a}_amd64.deb"; }

# --- cache key ---------------------------------------------------------------------------------
key="$( {
  cat "${BASH_SOURCE[0]}" "$guest"/*.sh "$guest"/aide.conf "$guest"/units/*
  printf '%s\n' "${versions[@]}"
  node --version; npm --version
  sha256sum "$(command -v node)" "$(command -v bpftrace)" "$(command -v aide)"
  sha256sum "$root/package-lock.json"
} | sha256sum | cut -c1-16)"
out="$cache/images-$key"
if [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi
log "building images in $out"
started=$SECONDS

for pv in "${versions[@]}"; do
  f="$(deb_of "$pv")"
  [ -f "$debs/$f" ] && continue
  for shared in "$root/.cache/debs" "$root/.cache/xen-lab/debs"; do
    if [ -f "$shared/$f" ]; then cp "$shared/$f" "$debs/$f.tmp" && mv "$debs/$f.tmp" "$debs/$f"; break; fi
  done
  [ -f "$debs/$f" ] && continue
  log "downloading $pv"
  (cd "$debs" && apt-get download -q "$pv" >/dev/null 2>&1) || die "apt-get download $pv failed (network, or no bookworm sources?)"
  [ -f "$debs/$f" ] || die "apt-get download $pv gave no $f"
done

work="$cache/build-$key.$$"
rm -rf "$work" "$out.tmp"
trap 'rm -rf "$work" "$out.tmp"' EXIT
mkdir -p "$work/pkg" "$out.tmp"
pkg="$work/pkg"
r="$work/root"
# Merged /usr, as on the host, so the libraries copied from it land where its loader looks.
mkdir -p "$r/usr/bin" "$r/usr/sbin" "$r/usr/lib" "$r/usr/lib64"
for d in bin sbin lib lib64; do ln -s "usr/$d" "$r/$d"; done
for pv in "${versions[@]}"; do
  case "$pv" in linux-image-*|busybox-static=*) dpkg -x "$debs/$(deb_of "$pv")" "$pkg" ;;
    *) dpkg -x "$debs/$(deb_of "$pv")" "$r" ;;
  esac
done
kver="$(ls "$pkg/lib/modules")"
cp "$pkg/boot/vmlinuz-$kver" "$out.tmp/vmlinuz"

# Copies the host's shared libraries that the given executables link, unless the root has them.
copy_libs_of() {
  local dest="$1"; shift
  local f lib
  for f in "$@"; do
    { LD_LIBRARY_PATH="$dest/usr/lib/x86_64-linux-gnu/systemd:$dest/usr/lib/x86_64-linux-gnu" ldd "$f" 2>/dev/null || true; } \
      | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | while read -r lib; do
      case "$lib" in "$dest"/*) continue ;; esac
      [ -e "$dest$lib" ] && continue
      mkdir -p "$dest$(dirname "$lib")"
      cp -L "$lib" "$dest$lib"
    done
  done
}
copy_with_libs() {
  local dest="$1"; shift
  local f
  for f in "$@"; do
    mkdir -p "$dest$(dirname "$f")"
    cp -L "$f" "$dest$f"
  done
  copy_libs_of "$dest" "$@"
}

# systemd's executables and libraries, then everything they link from the host.
mapfile -t elf < <(find "$r/usr/lib/systemd" "$r/usr/bin" "$r/usr/lib/x86_64-linux-gnu" -type f \( -perm -u+x -o -name '*.so*' \) 2>/dev/null)
copy_libs_of "$r" "${elf[@]}"
copy_with_libs "$r" /lib/x86_64-linux-gnu/libgcc_s.so.1 "$(command -v node)" "$(command -v bpftrace)" "$(command -v aide)"
# npm (its own JavaScript): `cage install` asks it for the production packages.
mkdir -p "$r/usr/lib/node_modules"
cp -a "$npm_dir" "$r/usr/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$r/usr/bin/npm"
# busybox for the shell tools systemd does not bring (never over a systemd binary: poweroff & co.).
cp "$pkg/bin/busybox" "$r/usr/bin/busybox"
for a in $("$pkg/bin/busybox" --list-full); do
  [ -e "$r/$a" ] || [ -L "$r/$a" ] || ln -s /usr/bin/busybox "$r/$a"
done
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
install -m 755 "$guest/vm-workload.sh" "$r/usr/lib/v2-lab/vm-workload"
install -m 755 "$guest/ids-loop.sh" "$r/usr/lib/v2-lab/ids-loop"
cp "$guest/aide.conf" "$r/etc/v2-lab/aide.conf"

# Kernel modules: block, virtio, file systems and their dependencies.
m="$r/lib/modules/$kver"
mkdir -p "$m/kernel"
for d in drivers/block drivers/virtio drivers/char fs lib crypto arch; do
  mkdir -p "$m/kernel/$(dirname "$d")"
  cp -a "$pkg/lib/modules/$kver/kernel/$d" "$m/kernel/$d"
done
cp "$pkg/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$m/"
depmod -b "$r" "$kver"

# The project's runtime dependencies (not its dev tools): what `npm ls --omit=dev` lists.
nm="$r/usr/lib/v2-lab/node_modules"
mkdir -p "$nm"
real_nm="$(readlink -f "$root/node_modules")"
(cd "$root" && npm ls --omit=dev --all --parseable 2>/dev/null) | tail -n +2 | while read -r dir; do
  rel="${dir#"$real_nm"/}"
  rel="${rel#"$root/node_modules/"}"
  case "$rel" in /*) continue ;; esac
  [ -d "$nm/$rel" ] && continue
  mkdir -p "$nm/$(dirname "$rel")"
  cp -a "$real_nm/$rel" "$nm/$rel"
done
[ -d "$nm/zeromq" ] || die "zeromq missing from the guest's node_modules (is node_modules installed?)"

size_mb=$(( $(du -sm "$r" | cut -f1) * 12 / 10 + 64 ))
mke2fs -q -t ext2 -d "$r" -L v2-root "$out.tmp/root.ext2" "${size_mb}M" >&2

# --- the VM's disk, scanned by the IDS: kernel modules as data (a pass lasts minutes under TCG) --
disk="$work/vm-disk"
mkdir -p "$disk/data"
for d in drivers/net drivers/gpu drivers/media fs sound; do
  mkdir -p "$disk/data/$d"
  cp -a "$pkg/lib/modules/$kver/kernel/$d/." "$disk/data/$d/"
done
mke2fs -q -t ext2 -d "$disk" -L vm-disk "$out.tmp/vm-disk.ext2" 320M >&2

# --- stage 1 initramfs ---------------------------------------------------------------------------
i="$work/initrd"
mkdir -p "$i"/{bin,proc,sys,dev}
cp "$pkg/bin/busybox" "$i/bin/busybox"
for a in sh mount umount insmod switch_root poweroff sleep cut mkdir echo cat; do ln -s busybox "$i/bin/$a"; done
cp "$guest/stage1.sh" "$i/init"; chmod 755 "$i/init"
order=""
for mod in virtio_pci virtio_blk crc32c_generic ext4 overlay; do
  line="$(grep -E "/$mod\.ko(\.xz)?:" "$m/modules.dep")" || die "module $mod not in modules.dep"
  self="${line%%:*}"
  for f in $(echo "${line#*:}" | tr ' ' '\n' | tac) "$self"; do
    case " $order " in *" $f "*) ;; *) order="$order $f" ;; esac
  done
done
for f in $order; do
  mkdir -p "$i/lib/modules/$kver/$(dirname "$f")"
  cp "$m/$f" "$i/lib/modules/$kver/$f"
done
echo "$order" | tr ' ' '\n' | grep . | sed "s|^|/lib/modules/$kver/|" >"$i/modules.list"
(cd "$i" && find . | cpio -o -H newc --quiet | gzip -6) >"$out.tmp/initrd.gz"

printf '%s\n' "${versions[@]}" >"$out.tmp/packages.txt"
echo "$kver" >"$out.tmp/kernel-version"
touch "$out.tmp/.complete"
rm -rf "$out"
mv "$out.tmp" "$out"
for old in "$cache"/images-*; do
  [ "$old" = "$out" ] || rm -rf "$old"
done
log "built in $((SECONDS - started)) s: $(du -sh "$out" | cut -f1)"
echo "$out"
