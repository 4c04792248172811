#!/bin/sh
# Xen lab, dom0 stage 1 (the initramfs /init): load the virtio disk and ext4 modules, mount the
# dom0 root image (/dev/vda, read-only) and hand over to its /sbin/lab-init (lab/xen/dom0/init.sh).
. /stage1-lib.sh
stage1_start
mount -t ext4 -o ro /dev/vda /newroot || stage1_fail "cannot mount /dev/vda"
stage1_switch /newroot /sbin/lab-init
