#!/bin/sh
# Xen lab domU /init: a busy guest. It burns its one vCPU for as long as it lives; its memory is
# whatever the balloon driver (built into the kernel) is told by dom0's `xl mem-set`.
# With `lab=cr3` on its command line (the cr3-trace phase) it stays busy but alternates: a burst
# of counting in this shell, then a short-lived child shell counting, over and over, so the vCPU
# switches between several address spaces (a new one with each child) and never idles.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
case " $(cat /proc/cmdline) " in
*" lab=cr3 "*)
  echo "domU: up, counting and forking"
  n=0
  while :; do
    i=0; while [ $i -lt 300 ]; do i=$((i+1)); done
    sh -c 'i=0; while [ $i -lt 300 ]; do i=$((i+1)); done'
    n=$((n+1))
    [ $((n % 20)) -eq 0 ] && echo "domU: tick $n $(cut -d' ' -f1 /proc/uptime)"
  done
  ;;
esac
echo "domU: up, burning CPU"
while :; do :; done
