#!/bin/sh
# Xen lab, dom0 stage 2 (/sbin/lab-init on the dom0 root image). Sets up dom0 (file systems,
# Xen modules and daemons), then runs the scenario with the labs' shared driver
# (lab/common/guest/lab-lib.sh): project from /dev/vdb, results onto /dev/vdc, power off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
lab_poweroff() { poweroff -f; }
. /usr/lib/oc-lab/lab-lib.sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
for d in /run /tmp /var/lib /var/log /root; do mount -t tmpfs -o mode=0755 tmpfs "$d"; done
chmod 1777 /tmp
mkdir -p /run/results /run/project /run/xen /var/lib/xen /var/lib/xenstored /var/log/xen
lab_mount_tracing
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
# A process killed by a signal it did not handle leaves its registers in dmesg (dom0-dmesg.txt).
echo 1 >/proc/sys/kernel/print-fatal-signals
echo 1 >/proc/sys/debug/exception-trace
echo "LAB: stage2 $(up)"
for m in xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd loop; do
  modprobe "$m" 2>/dev/null || echo "LAB: modprobe $m failed"
done
mount -t xenfs xenfs /proc/xen || { echo "LAB: FAIL cannot mount xenfs"; finish; }
xenstored --pid-file /run/xen/xenstored.pid >/var/log/xen/xenstored.out 2>&1
xen-init-dom0 >/var/log/xen/init-dom0.log 2>&1 || echo "LAB: xen-init-dom0 failed"
# Guest consoles are logged (/var/log/xen/console/guest-NAME.log): the cr3-trace phase keeps its
# PVH domU's boot log, the one witness of how far a guest got.
mkdir -p /var/log/xen/console
xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console >/var/log/xen/xenconsoled.out 2>&1
echo "LAB: xen-ready $(up)"
lab_unpack_project
ln -s /opt/offloadcage/node_modules /run/project/node_modules
lab_run_scenario dist/lab/xen/dom0/scenarioMain.js
lab_show_log
xl list >/run/results/xl-list-end.txt 2>&1
xl dmesg >/run/results/xl-dmesg.txt 2>&1
dmesg >/run/results/dom0-dmesg.txt 2>&1
cp /var/log/xen/* /run/results/ 2>/dev/null
finish
