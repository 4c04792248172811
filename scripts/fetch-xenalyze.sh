#!/usr/bin/env bash
# Print the path of Debian's xenalyze (Xen 4.17), fetching it into .cache/ first if it is missing.
# xenalyze ships in xen-utils-common (xen-utils-4.17 only has xentrace). The package is downloaded
# with `apt-get download` and unpacked with `dpkg -x`; nothing is installed on the host.
# Override with XENALYZE=/path/to/xenalyze.
set -euo pipefail

if [[ -n "${XENALYZE:-}" ]]; then
  echo "$XENALYZE"
  exit 0
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache"
dest="$cache/xen-utils"
bin="$dest/usr/bin/xenalyze"

fetch() {
  if [[ -x "$bin" ]]; then return 0; fi
  local debs="$cache/debs"
  mkdir -p "$debs" "$dest"
  # apt-get download writes into the current directory.
  (cd "$debs" && rm -f xen-utils-common_*.deb && apt-get download -q xen-utils-common >&2) || {
    echo "fetch-xenalyze: apt-get download xen-utils-common failed (no network or no Debian bookworm sources?)" >&2
    exit 1
  }
  dpkg -x "$debs"/xen-utils-common_*.deb "$dest"
  if [[ ! -x "$bin" ]]; then
    echo "fetch-xenalyze: $bin not found in the package" >&2
    exit 1
  fi
  # It needs only libc; fail loudly if that ever changes.
  if ldd "$bin" 2>/dev/null | grep -q "not found"; then
    echo "fetch-xenalyze: $bin has missing shared libraries:" >&2
    ldd "$bin" >&2
    exit 1
  fi
}

mkdir -p "$cache"
# Tests may call this concurrently: serialise the download.
exec 9>"$cache/fetch-xenalyze.lock"
if command -v flock >/dev/null; then flock 9; fi
fetch
echo "$bin"
