# shellcheck shell=bash
# Sourced by scripts/ensure-host.sh and scripts/ensure-test-tools.sh: installs Debian packages
# without letting them start (or restart) their own services. Debian's maintainer scripts ask
# /usr/sbin/policy-rc.d before starting a service; exit 101 means "not allowed". An operator's
# own policy-rc.d is left as it is: theirs decides.

# The policy file; a test points it at a scratch path to watch it appear and go.
policy_rc_d=${OFFLOADCAGE_POLICY_RC_D:-/usr/sbin/policy-rc.d}

# apt_install_without_services LABEL PACKAGE...: apt-get install the packages (needs root).
apt_install_without_services() {
  local label=$1
  shift
  if [ "$(id -u)" != 0 ]; then
    echo "$label: missing $*; run as root (or install them) first" >&2
    return 1
  fi
  echo "$label: installing $*" >&2
  # Explicit && chains: the caller's set -e does not reach into a function called after `||`.
  (
    if [ ! -e "$policy_rc_d" ]; then
      # Ours only from here on: the EXIT trap removes it on every way out of this subshell.
      trap 'rm -f "$policy_rc_d"' EXIT
      printf '#!/bin/sh\n# Written by OffloadCage while it installs packages; removed when done.\nexit 101\n' >"$policy_rc_d" \
        && chmod 755 "$policy_rc_d" || exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  )
}
