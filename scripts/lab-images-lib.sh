# Shared by the QEMU-guest labs' image scripts (scripts/xen-lab-images.sh, scripts/v2-lab-images.sh),
# which source it after setting LAB (their name in messages) and `root` (the repository):
# Debian packages by `apt-get download` into a cache (`dpkg -x`, nothing installed), image sets in
# .cache/LAB/images-KEY/ named by a hash of every input, the host's programs with their shared
# libraries, busybox, kernel modules, the project's production node_modules, the stage 1 initramfs
# (lab/common/guest/stage1-lib.sh) and the guest-side driver (lab/common/guest/lab-lib.sh).

log() { echo "$LAB-images: $*" >&2; }
die() { log "$*"; exit 1; }

lab_guest_lib="$root/lab/common/guest"

# Checks the tools the build needs and the host programs it copies, makes the lab's cache
# (sets `cache` and `debs`) and takes its lock (fd 9, held until the script exits): concurrent
# builders share the cache.
lab_images_begin() {
  local tool
  cache="$root/.cache/$LAB"
  debs="$cache/debs"
  mkdir -p "$debs"
  export PATH="$PATH:/usr/sbin:/sbin"
  for tool in apt-get apt-cache dpkg cpio gzip mke2fs depmod ldconfig ldd sha256sum flock; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run scripts/ensure-test-tools.sh as root)"
  done
  for tool in node npm bpftrace aide; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found on the host (run scripts/ensure-test-tools.sh as root)"
  done
  exec 9>"$cache/.lock"
  flock 9
}

# Prints the kernel package behind linux-image-amd64; fetches the package lists first when PROBE
# (a package the lab needs) has no candidate: a fresh machine may never have fetched them.
lab_kernel_package() {
  local probe="$1" kernel_pkg
  if ! apt-cache policy "$probe" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update -qq >/dev/null || die "apt-get update failed (network?)"
  fi
  kernel_pkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
  [ -n "$kernel_pkg" ] || die "cannot find the kernel package behind linux-image-amd64 (apt-get update?)"
  echo "$kernel_pkg"
}

# Sets `versions` to PACKAGE=VERSION for each package, its candidate now.
lab_package_versions() {
  local p v
  declare -A candidate=()
  # One apt-cache call for all (each call reads the whole package cache: about a second).
  while read -r p v; do candidate[$p]="$v"; done < <(apt-cache policy "$@" | awk '/^[^ ].*:$/ {sub(":$", ""); p = $0} /Candidate:/ {print p, $2}')
  versions=()
  for p in "$@"; do
    v="${candidate[$p]:-}"
    [ -n "$v" ] && [ "$v" != "(none)" ] || die "package $p has no candidate version (apt-get update?)"
    versions+=("$p=$v")
  done
}

# The cache key of an image set: a hash of FILES (the lab's scripts, this library, the guest-side
# libraries), the package versions, and the host's node, npm, bpftrace, aide and package-lock.json.
lab_cache_key() {
  {
    cat "$@" "${BASH_SOURCE[0]}" "$lab_guest_lib"/*.sh
    printf '%s\n' "${versions[@]}"
    node --version; npm --version
    sha256sum "$(command -v node)" "$(command -v bpftrace)" "$(command -v aide)"
    sha256sum "$root/package-lock.json"
  } | sha256sum | cut -c1-16
}

# With the cache KEY: prints the image set and exits when it is complete already; otherwise sets
# `out`, `started`, `work` and `pkg` (the packages unpacked), fetches the packages and makes the
# build folders, which are removed on every exit.
lab_images_build_or_reuse() {
  out="$cache/images-$1"
  if [ -f "$out/.complete" ]; then
    echo "$out"
    exit 0
  fi
  log "building images in $out"
  started=$SECONDS
  lab_fetch_debs "$debs"
  work="$cache/build-$1.$$"
  rm -rf "$work" "$out.tmp"
  trap 'rm -rf "$work" "$out.tmp"' EXIT
  pkg="$work/pkg"
  mkdir -p "$pkg" "$out.tmp"
}

# Once the kernel and busybox packages are unpacked in `pkg`: sets `kver` and `busybox`, and puts
# the kernel into the image set.
lab_kernel_unpacked() {
  kver="$(ls "$pkg/lib/modules")"
  busybox="$pkg/bin/busybox"
  cp "$pkg/boot/vmlinuz-$kver" "$out.tmp/vmlinuz"
}

# The .deb of PACKAGE=VERSION in DEBS (any architecture), or nothing.
lab_deb_in() {
  local p="${2%%=*}" v="${2#*=}"
  { ls "$1/${p}_${v//:/%3a}_"*.deb 2>/dev/null || true; } | head -n 1
}

# Makes sure DEBS has a .deb of each version in `versions`: one another lab's cache (.cache/*/debs,
# .cache/debs) already holds is copied, the rest downloaded.
lab_fetch_debs() {
  local debs="$1" pv f shared missing=()
  for pv in "${versions[@]}"; do
    [ -n "$(lab_deb_in "$debs" "$pv")" ] && continue
    for shared in "$root/.cache/debs" "$root"/.cache/*/debs; do
      [ "$shared" = "$debs" ] && continue
      f="$(lab_deb_in "$shared" "$pv")"
      if [ -n "$f" ]; then cp "$f" "$debs/$(basename "$f").tmp" && mv "$debs/$(basename "$f").tmp" "$debs/$(basename "$f")"; break; fi
    done
    [ -n "$(lab_deb_in "$debs" "$pv")" ] || missing+=("$pv")
  done
  ((${#missing[@]})) || return 0
  log "downloading ${#missing[@]} Debian packages"
  (cd "$debs" && apt-get download -q "${missing[@]}" >/dev/null 2>&1) || die "apt-get download ${missing[*]} failed (network, or no bookworm sources?)"
  for pv in "${missing[@]}"; do
    [ -n "$(lab_deb_in "$debs" "$pv")" ] || die "apt-get download $pv gave no .deb"
  done
}

# Unpacks PACKAGE=VERSION's .deb from DEBS into DEST.
lab_unpack_deb() {
  local f
  f="$(lab_deb_in "$1" "$2")"
  [ -n "$f" ] || die "no .deb of $2 in $1"
  dpkg -x "$f" "$3"
}

# Copies into the staging root DEST the host's shared libraries that the given executables link.
# `ldd` also looks in lab_ldd_path (libraries the image brings itself), and a library found below
# lab_ldd_own is the image's own, not copied.
lab_ldd_path=""
lab_ldd_own=""
copy_libs_of() {
  local dest="$1"; shift
  local f lib
  for f in "$@"; do
    { LD_LIBRARY_PATH="$lab_ldd_path" ldd "$f" 2>/dev/null || true; } \
      | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | while read -r lib; do
      case "$lib" in "$lab_ldd_own"/*) continue ;; esac
      [ -e "$dest$lib" ] && continue
      mkdir -p "$dest$(dirname "$lib")"
      cp -L "$lib" "$dest$lib"
    done
  done
}

# Copies host executables (same path) and their shared libraries into the staging root DEST.
copy_with_libs() {
  local dest="$1"; shift
  local f
  for f in "$@"; do
    mkdir -p "$dest$(dirname "$f")"
    cp -L "$f" "$dest$f"
  done
  copy_libs_of "$dest" "$@"
}

# busybox (BUSYBOX, from the busybox-static package) into DEST at PATH_IN_ROOT, its applets as
# symlinks to it where DEST has no such program yet (never over a systemd binary: poweroff & co.).
install_busybox() {
  local busybox="$1" dest="$2" at="$3" a
  mkdir -p "$dest/bin" "$dest/sbin" "$dest/usr/bin" "$dest/usr/sbin" "$dest$(dirname "$at")"
  cp "$busybox" "$dest$at"
  for a in $("$busybox" --list-full); do
    [ -e "$dest/$a" ] || [ -L "$dest/$a" ] || ln -s "$at" "$dest/$a"
  done
}

# Merged /usr in the staging root DEST, as on the host, so the libraries copied from it land
# where its loader looks.
lab_merged_usr() {
  mkdir -p "$1/usr/bin" "$1/usr/sbin" "$1/usr/lib" "$1/usr/lib64"
  local d
  for d in bin sbin lib lib64; do ln -s "usr/$d" "$1/$d"; done
}

# The guest-side driver library at /usr/lib/oc-lab/lab-lib.sh in the staging root DEST.
lab_install_guest_lib() {
  mkdir -p "$1/usr/lib/oc-lab"
  install -m 644 "$lab_guest_lib/lab-lib.sh" "$1/usr/lib/oc-lab/lab-lib.sh"
}

# Kernel KVER's modules from the unpacked kernel package PKG, the folders DIRS... of kernel/ with
# depmod run, into the staging root DEST.
lab_kernel_modules() {
  local pkg="$1" dest="$2" kver="$3"; shift 3
  local m="$dest/lib/modules/$kver" d
  mkdir -p "$m/kernel"
  for d in "$@"; do
    mkdir -p "$m/kernel/$(dirname "$d")"
    cp -a "$pkg/lib/modules/$kver/kernel/$d" "$m/kernel/$d"
  done
  cp "$pkg/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$m/"
  depmod -b "$dest" "$kver"
}

# The project's runtime dependencies (not its dev tools): the packages `npm ls --omit=dev` lists,
# copied into NODE_MODULES.
lab_production_node_modules() {
  local nm="$1" real_nm dir rel
  real_nm="$(readlink -f "$root/node_modules")"
  mkdir -p "$nm"
  (cd "$root" && npm ls --omit=dev --all --parseable 2>/dev/null) | tail -n +2 | while read -r dir; do
    rel="${dir#"$real_nm"/}"
    rel="${rel#"$root/node_modules/"}"
    case "$rel" in /*) continue ;; esac
    [ -d "$nm/$rel" ] && continue
    mkdir -p "$nm/$(dirname "$rel")"
    cp -a "$real_nm/$rel" "$nm/$rel"
  done
  [ -d "$nm/zeromq" ] || die "zeromq missing from the image's node_modules (is node_modules installed?)"
}

# An ext2 image OUT labelled LABEL of the tree DIR, a fifth larger than it plus 64 MB (ext2: no
# journal and no metadata checksums, so the ext4 driver mounts it read-only without crc32c).
lab_ext2_of() {
  local dir="$1" label="$2" out="$3" size_mb
  size_mb=$(( $(du -sm "$dir" | cut -f1) * 12 / 10 + 64 ))
  mke2fs -q -t ext2 -d "$dir" -L "$label" "$out" "${size_mb}M" >&2
}

# The stage 1 initramfs OUT: busybox, STAGE1 as /init with the shared stage1-lib.sh beside it, and
# the modules MODS... (with their dependencies, from the staging root ROOT's kernel KVER) listed
# in /modules.list in insmod order.
lab_stage1_initrd() {
  local busybox="$1" root_dir="$2" kver="$3" stage1="$4" out="$5"; shift 5
  local i m mod line self f order=""
  i="$(mktemp -d "$(dirname "$out")/initrd.XXXXXX")"
  m="$root_dir/lib/modules/$kver"
  install_busybox "$busybox" "$i" /bin/busybox
  mkdir -p "$i"/{proc,sys,dev,newroot}
  cp "$stage1" "$i/init"; chmod 755 "$i/init"
  cp "$lab_guest_lib/stage1-lib.sh" "$i/stage1-lib.sh"
  # Dependencies first: modules.dep lists them after the module, reversed here.
  for mod in "$@"; do
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
  (cd "$i" && find . | cpio -o -H newc --quiet | gzip -6) >"$out"
  rm -rf "$i"
}

# Marks the image set being built complete, puts it in place of `out`, removes the image sets it
# supersedes, and prints `out` (the harness reads the last line).
lab_publish() {
  local old
  printf '%s\n' "${versions[@]}" >"$out.tmp/packages.txt"
  echo "$kver" >"$out.tmp/kernel-version"
  touch "$out.tmp/.complete"
  rm -rf "$out"
  mv "$out.tmp" "$out"
  for old in "$(dirname "$out")"/images-*; do
    [ "$old" = "$out" ] || rm -rf "$old"
  done
  log "built in $((SECONDS - started)) s: $(du -sh "$out" | cut -f1)"
  echo "$out"
}
