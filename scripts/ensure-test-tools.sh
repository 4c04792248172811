#!/usr/bin/env bash
# What the tests and the labs need besides the agent's own (scripts/ensure-host.sh, run first):
# `npm test`, `npm run test:xen`, `cage lab cpu|memory`. Packages are installed without starting
# their services (scripts/apt-install.sh); the tests and labs start their own copies (influxd,
# prometheus, nginx) on their own configs and ports, so a system one, running or not, does not
# matter, and no service of the host is stopped, disabled or reconfigured here.
# Idempotent and quiet when everything is already there. Needs root to install.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-host.sh
# shellcheck source=scripts/apt-install.sh
. scripts/apt-install.sh

pkgs=()
# Collector overhead benchmark (bench/collectorOverhead.ts).
command -v perf >/dev/null 2>&1 || pkgs+=(linux-perf)
# History, dashboards and alerts (docs/grafana.md): InfluxDB 1.x, Prometheus and promtool. The
# tests start their own influxd/prometheus on loopback ports with temporary data directories.
command -v influxd >/dev/null 2>&1 || pkgs+=(influxdb)
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || pkgs+=(prometheus)

# Balloon actuator tests (docs/balloon.md): qemu-system-x86_64 runs the small test guest
# (scripts/build-qemu-guest.sh); cpio packs its initramfs. The guest's kernel and busybox are
# downloaded into .cache/ by that script, not installed.
command -v qemu-system-x86_64 >/dev/null 2>&1 || pkgs+=(qemu-system-x86)
command -v cpio >/dev/null 2>&1 || pkgs+=(cpio)

# libvirt tests and labs (scripts/libvirt-lab.sh, docs/libvirt.md): the daemon, its QEMU driver
# and virsh. The lab starts its own virtlogd + libvirtd on a temporary state directory and sockets;
# the package's own services are not started (apt-install.sh) and no system libvirtd is touched.
command -v virsh >/dev/null 2>&1 || pkgs+=(libvirt-clients)
command -v libvirtd >/dev/null 2>&1 || [ -x /usr/sbin/libvirtd ] || pkgs+=(libvirt-daemon libvirt-daemon-driver-qemu)

# Xen lab (scripts/xen-lab.sh, docs/xen-lab.md): QEMU boots Xen under TCG; cpio packs the
# dom0/domU initramfs; mke2fs -d builds the dom0 root image; depmod (kmod) indexes the dom0
# kernel's modules. Xen, the dom0 kernel and busybox are downloaded into .cache/ by
# scripts/xen-lab-images.sh, not installed.
command -v depmod >/dev/null 2>&1 || [ -x /usr/sbin/depmod ] || pkgs+=(kmod)
command -v mke2fs >/dev/null 2>&1 || [ -x /usr/sbin/mke2fs ] || pkgs+=(e2fsprogs)

# v2 lab (scripts/v2-lab.sh, docs/v2-lab.md): the Xen lab's tools above (QEMU, cpio, mke2fs,
# depmod), plus flock to run one guest at a time. The guest's kernel, systemd and busybox are
# downloaded into .cache/v2-lab/ by scripts/v2-lab-images.sh, not installed.
command -v flock >/dev/null 2>&1 || pkgs+=(util-linux)

# cage top: its terminal test (test/cli/topCommand.e2e.test.ts) drives it in a real tmux pane.
command -v tmux >/dev/null 2>&1 || pkgs+=(tmux)

# cage lab memory (lab/memory/): AIDE is the file-integrity IDS of the Figure 5 experiment (and
# the Xen lab's), gcc compiles the Figure 4 malloc/free program (lab/memory/memoryLoad.c).
command -v aide >/dev/null 2>&1 || [ -x /usr/sbin/aide ] || [ -x /usr/bin/aide ] || pkgs+=(aide)
command -v gcc >/dev/null 2>&1 || pkgs+=(gcc libc6-dev)
# Tripwire, the IDS Balloon Performer measured (lab/common/tripwire.ts: the labs' own keys, config
# and database in a temporary directory; bench/tripwireFootprint.ts). Its package asks whether to
# create site and local keys in /etc/tripwire: no, the labs make their own.
[ -x /usr/sbin/tripwire ] || pkgs+=(tripwire)

# cage lab cpu (lab/cpu/): the VM's web server (run on the lab's own generated config, in its
# own network namespace) and its load generator, the packet IDS, Debian's cpulimit for the
# limiter comparison (also the limiter precision benchmark's), and iproute2 for the namespace.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || pkgs+=(nginx)
command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
command -v tshark >/dev/null 2>&1 || pkgs+=(tshark)
command -v cpulimit >/dev/null 2>&1 || pkgs+=(cpulimit)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || pkgs+=(iproute2)

# External actuators (docs/protocol.md): the example third-party actuator in examples/ is Python
# with Debian's ZeroMQ binding; test/cli/externalActuator.e2e.test.ts runs it under `cage run`.
/usr/bin/python3 -c 'import zmq' >/dev/null 2>&1 || pkgs+=(python3-zmq)

if ((${#pkgs[@]})); then
  if [[ " ${pkgs[*]} " == *" tshark "* ]] && [ "$(id -u)" = 0 ]; then
    # tshark's package asks whether non-root users may capture; root runs the lab, so: no.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  fi
  if [[ " ${pkgs[*]} " == *" tripwire "* ]] && [ "$(id -u)" = 0 ]; then
    printf '%s\n' "tripwire tripwire/use-sitekey boolean false" "tripwire tripwire/use-localkey boolean false" | debconf-set-selections
  fi
  apt_install_without_services ensure-test-tools "${pkgs[@]}"
fi
