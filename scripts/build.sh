#!/usr/bin/env bash
# Builds dist/ from the TypeScript sources (`npm run build`), incrementally: a built tree starts
# without waiting for the compiler, and deleting dist/ gives a full build.
# When no source folder, tsconfig.json, this script or the npm install changed since the last
# successful build (dist/.build-ok) and every output is there, the compiler is not even loaded.
# Otherwise `tsc -b` recompiles what changed. It judges by timestamps only; what it cannot see is
# handled here: an output deleted from dist/ or a reinstalled node_modules (its types may differ)
# force a full build, and the outputs of deleted sources are removed (`npm test` runs every test
# file it finds in dist/test).
set -euo pipefail
cd "$(dirname "$0")/.."

# The libbpf CPU program (bpf/cpuTime.bpf.c and its loader bpf/cpuTime.c) into dist/bpf/cpuTime, when
# the toolchain is there (scripts/ensure-host.sh installs it) and a source changed. Without it the
# CPU collector runs bpf/cpuTime.bt under bpftrace instead, so a missing toolchain is not an error.
build_bpf() {
  local out=dist/bpf clang bpftool
  [ -e bpf/cpuTime.bpf.c ] || return 0
  clang=$(command -v clang-14 || command -v clang || true)
  bpftool=$(command -v bpftool || command -v /usr/sbin/bpftool || true)
  if [ -z "$clang" ] || [ -z "$bpftool" ] || [ ! -e /usr/include/bpf/bpf_helpers.h ]; then
    [ -x $out/cpuTime ] || echo "build: dist/bpf/cpuTime not built (needs clang-14, bpftool, libbpf-dev); the CPU collector will use bpftrace" >&2
    return 0
  fi
  if [ -x $out/cpuTime ] && [ -z "$(find bpf/cpuTime.bpf.c bpf/mulDiv.h bpf/cpuState.h bpf/cpuTime.c scripts/build.sh -newer $out/cpuTime -print -quit)" ]; then
    return 0
  fi
  mkdir -p $out
  rm -f $out/cpuTime
  # -g keeps the BTF that CO-RE needs; the arch include dir holds asm/types.h for -target bpf.
  "$clang" -g -O2 -Wall -target bpf -D__TARGET_ARCH_x86 -I"/usr/include/$(gcc -dumpmachine)" \
    -c bpf/cpuTime.bpf.c -o $out/cpuTime.bpf.o
  "$bpftool" gen skeleton $out/cpuTime.bpf.o name cpu_time_bpf >$out/cpuTime.skel.h
  gcc -O2 -Wall -Wextra -I$out bpf/cpuTime.c -lbpf -o $out/cpuTime.new
  mv $out/cpuTime.new $out/cpuTime
}
build_bpf

# The source folders are tsconfig.json's "include": one list, read from there.
read -r -a source_dirs <<<"$(node -e 'process.stdout.write(require("./tsconfig.json").include.join(" "))')"
build_info=dist/.tsbuildinfo
build_ok=dist/.build-ok

if [ -d dist ]; then
  while IFS= read -r output; do
    source=${output#dist/}
    source=${source%.js}.ts
    [ -e "$source" ] || rm -f "$output" "$output.map"
  done < <(find dist -name '*.js')
fi

outputs_missing=false
while IFS= read -r source; do
  [ -e "dist/${source%.ts}.js" ] || { outputs_missing=true; break; }
done < <(find "${source_dirs[@]}" -name '*.ts' ! -name '*.d.ts')

# find also lists a folder whose entries changed, so a deleted or renamed source counts as a change;
# an input find cannot read counts as one too.
if [ -f "$build_ok" ] && ! $outputs_missing; then
  changed=$(find "${source_dirs[@]}" tsconfig.json scripts/build.sh node_modules/.package-lock.json -newer "$build_ok" -print -quit 2>/dev/null) \
    || changed="(an input find could not read)"
  [ -n "$changed" ] || exit 0
fi

force=()
if [ -f "$build_info" ] && { $outputs_missing || [ node_modules/.package-lock.json -nt "$build_info" ]; }; then
  force=(--force)
fi
# The mark takes the build's start time: a source saved while tsc runs is newer, so not skipped.
rm -f "$build_ok"
mkdir -p dist
touch "$build_ok.new"
node_modules/.bin/tsc -b tsconfig.json "${force[@]}"
mv "$build_ok.new" "$build_ok"
