# Stage 1 of the QEMU-guest labs (sourced by the initramfs /init of the Xen lab's dom0 and of the
# v2 lab's guest, as /stage1-lib.sh): load the modules listed in /modules.list (dependencies
# first), wait for the root disk /dev/vda, and hand over to the root's init.
# "LAB: " lines on the console are the host's progress markers (lab/common/guestBoot.ts).

# Mounts proc, sys and dev, loads the modules and waits (up to 20 s) for /dev/vda.
stage1_start() {
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev
  echo "LAB: stage1 $(cut -d' ' -f1 /proc/uptime)"
  while read -r m; do
    insmod "$m" 2>/dev/null || echo "LAB: stage1 insmod $m failed"
  done </modules.list
  echo "LAB: stage1-modules $(cut -d' ' -f1 /proc/uptime)"
  n=0
  while [ ! -b /dev/vda ] && [ $n -lt 200 ]; do sleep 0.1; n=$((n + 1)); done
}

# A step stage 1 cannot do without: say so and power off (the host sees QEMU exit).
stage1_fail() {
  echo "LAB: FAIL stage1 $1"
  poweroff -f
}

# Hands the console and /dev over to NEWROOT and execs its INIT as PID 1.
stage1_switch() {
  umount /proc /sys
  mount --move /dev "$1/dev"
  exec switch_root "$1" "$2"
}
