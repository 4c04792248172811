#!/bin/sh
# Xen lab, dom0 stage 1 (the initramfs /init): load the virtio disk and ext4 modules, mount the
# dom0 root image (/dev/vda, read-only) and hand over to its /sbin/lab-init (lab/xen/dom0/init.sh).
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
if ! mount -t ext4 -o ro /dev/vda /newroot; then
  echo "LAB: FAIL stage1 cannot mount /dev/vda"
  poweroff -f
fi
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/lab-init
