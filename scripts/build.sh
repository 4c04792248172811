#!/usr/bin/env bash
# Builds dist/ from the TypeScript sources (`npm run build`). `tsc -b` recompiles only when a
# source or tsconfig.json is newer than dist/.tsbuildinfo, so a built tree starts without waiting
# for the compiler; deleting dist/ gives a full build.
# tsc -b judges by timestamps only. What it cannot see is handled here: an output deleted from
# dist/ or a reinstalled node_modules (its types may differ) force a full build, and the outputs of
# deleted sources are removed (`npm test` runs every test file it finds in dist/test).
set -euo pipefail
cd "$(dirname "$0")/.."

# The source folders are tsconfig.json's "include": one list, read from there.
read -r -a source_dirs <<<"$(node -e 'process.stdout.write(require("./tsconfig.json").include.join(" "))')"
build_info=dist/.tsbuildinfo

force=()
if [ -f "$build_info" ]; then
  if [ node_modules/.package-lock.json -nt "$build_info" ]; then
    force=(--force)
  else
    while IFS= read -r source; do
      [ -e "dist/${source%.ts}.js" ] || { force=(--force); break; }
    done < <(find "${source_dirs[@]}" -name '*.ts' ! -name '*.d.ts')
  fi
fi

if [ -d dist ]; then
  while IFS= read -r output; do
    source=${output#dist/}
    source=${source%.js}.ts
    [ -e "$source" ] || rm -f "$output" "$output.map"
  done < <(find dist -name '*.js')
fi

exec node_modules/.bin/tsc -b tsconfig.json "${force[@]}"
