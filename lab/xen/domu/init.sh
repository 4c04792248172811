#!/bin/sh
# Xen lab domU /init: a busy guest. It burns its one vCPU for as long as it lives; its memory is
# whatever the balloon driver (built into the kernel) is told by dom0's `xl mem-set`.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "domU: up, burning CPU"
while :; do :; done
