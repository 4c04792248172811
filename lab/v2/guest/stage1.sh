#!/bin/sh
# v2 lab stage 1 (the initramfs /init): load the virtio disk, ext4 and overlay modules, mount the
# root image (/dev/vda) read-only under a tmpfs overlay (systemd and `cage install` write to /etc,
# /opt, /var; the disk itself stays read-only), and hand over to systemd as PID 1.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "LAB: stage1 $(cut -d' ' -f1 /proc/uptime)"
while read -r m; do
  insmod "$m" 2>/dev/null || echo "LAB: stage1 insmod $m failed"
done </modules.list
n=0
while [ ! -b /dev/vda ] && [ $n -lt 200 ]; do sleep 0.1; n=$((n + 1)); done
mkdir -p /lower /rw /newroot
if ! mount -t ext4 -o ro /dev/vda /lower; then
  echo "LAB: FAIL stage1 cannot mount /dev/vda"
  poweroff -f
fi
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
if ! mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot; then
  echo "LAB: FAIL stage1 cannot mount the overlay root"
  poweroff -f
fi
echo "LAB: stage1-root $(cut -d' ' -f1 /proc/uptime)"
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /lib/systemd/systemd
