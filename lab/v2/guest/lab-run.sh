#!/bin/sh
# v2 lab driver (v2-lab.service, /usr/lib/v2-lab/lab-run). systemd is PID 1 by now: mount the VM's
# disk image read-only, then run the scenario with the labs' shared driver
# (lab/common/guest/lab-lib.sh): project from /dev/vdb, results onto /dev/vdc, power off at once.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# systemd powers the machine off; this script (a unit's process) just ends.
lab_poweroff() {
  systemctl poweroff --force --force
  exit 0
}
. /usr/lib/oc-lab/lab-lib.sh
echo "LAB: systemd-up $(up)"
mkdir -p /run/results /run/project /run/v2-lab /srv/vm-disk
lab_mount_tracing
mount -t ext4 -o ro /dev/vdd /srv/vm-disk || echo "LAB: FAIL cannot mount the VM disk /dev/vdd"
lab_unpack_project
# A bind mount, not a symlink: `cage install` asks npm for the packages' paths below the project.
mkdir -p /run/project/node_modules
mount --bind /usr/lib/v2-lab/node_modules /run/project/node_modules
# What the guest is busy with, every 30 s, on the console: under TCG on a shared host every step
# is slow, and this tells a slow step from a stuck one.
(while sleep 30; do
  echo "LAB: watch $(up) $(cut -d' ' -f1-3 /proc/loadavg) $(top -b -n 1 | sed -n '5,9p' | awk '{printf "%s %s %s %s; ", $1, $7, $8, $9}')"
done) &
watch_pid=$!
lab_run_scenario dist/lab/v2/guest/scenarioMain.js
kill "$watch_pid" 2>/dev/null
lab_show_log
journalctl -b --no-pager >/run/results/journal.txt 2>&1
systemctl list-units --all --no-pager >/run/results/units-end.txt 2>&1
dmesg >/run/results/dmesg.txt 2>&1
finish
