#!/bin/sh
# v2 lab stage 1 (the initramfs /init): load the virtio disk, ext4 and overlay modules, mount the
# root image (/dev/vda) read-only under a tmpfs overlay (systemd and `cage install` write to /etc,
# /opt, /var; the disk itself stays read-only), and hand over to systemd as PID 1.
. /stage1-lib.sh
stage1_start
mkdir -p /lower /rw /newroot
mount -t ext4 -o ro /dev/vda /lower || stage1_fail "cannot mount /dev/vda"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || stage1_fail "cannot mount the overlay root"
echo "LAB: stage1-root $(cut -d' ' -f1 /proc/uptime)"
stage1_switch /newroot /lib/systemd/systemd
