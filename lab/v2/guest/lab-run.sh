#!/bin/sh
# v2 lab driver (v2-lab.service, /usr/lib/v2-lab/lab-run). systemd is PID 1 by now: unpack the
# project from /dev/vdb (a tar made by the host harness, lab/v2/v2Lab.ts), mount the VM's disk
# image read-only, run the scenario under a hard timeout, write /run/results as a tar onto
# /dev/vdc and power off at once. "LAB: " lines on the console are the host's progress markers.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
up() { cut -d' ' -f1 /proc/uptime; }
finish() {
  echo "LAB: results $(up)"
  tar -cf /dev/vdc -C /run/results . 2>/dev/null || echo "LAB: FAIL cannot write results to /dev/vdc"
  sync
  echo "LAB: poweroff $(up)"
  systemctl poweroff --force --force
  exit 0
}
echo "LAB: systemd-up $(up)"
mkdir -p /run/results /run/project /run/v2-lab /srv/vm-disk
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount -t ext4 -o ro /dev/vdd /srv/vm-disk || echo "LAB: FAIL cannot mount the VM disk /dev/vdd"
if ! tar -xf /dev/vdb -C /run/project; then
  echo "LAB: FAIL cannot read the project from /dev/vdb"
  finish
fi
# A bind mount, not a symlink: `cage install` asks npm for the packages' paths below the project.
mkdir -p /run/project/node_modules
mount --bind /usr/lib/v2-lab/node_modules /run/project/node_modules
# What the guest is busy with, every 30 s, on the console: under TCG on a shared host every step
# is slow, and this tells a slow step from a stuck one.
(while sleep 30; do
  echo "LAB: watch $(up) $(cut -d' ' -f1-3 /proc/loadavg) $(top -b -n 1 | sed -n '5,9p' | awk '{printf "%s %s %s %s; ", $1, $7, $8, $9}')"
done) &
watch_pid=$!
timeout_s="$(cat /run/project/lab-timeout 2>/dev/null || echo 120)"
echo "LAB: scenario-start $(up) timeout ${timeout_s}s"
timeout -s KILL "$timeout_s" node /run/project/dist/lab/v2/guest/scenarioMain.js \
  /run/project/lab-scenario.json /run/results >/run/results/scenario.log 2>&1
echo "LAB: scenario-exit rc=$? $(up)"
kill "$watch_pid" 2>/dev/null
tail -n 40 /run/results/scenario.log | sed 's/^/LAB: log /'
journalctl -b --no-pager >/run/results/journal.txt 2>&1
systemctl list-units --all --no-pager >/run/results/units-end.txt 2>&1
dmesg >/run/results/dmesg.txt 2>&1
finish
