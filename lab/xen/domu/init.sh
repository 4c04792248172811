#!/bin/sh
# Xen lab domU /init: a busy guest. It burns its one vCPU for as long as it lives; its memory is
# whatever the balloon driver (built into the kernel) is told by dom0's `xl mem-set`.
# With `lab=cr3` on its command line (the cr3-trace phase) it stays busy but alternates: a burst
# of counting in this shell, then a short-lived child shell counting, over and over, so the vCPU
# switches between several address spaces (a new one with each child) and never idles.
# With `lab=cr3ids` (the cr3-ids phase) it is an IDS-VM: `ids-loop` (the IDS process, a CPU loop)
# runs beside the cr3 phase's counting and forking, the IDS helper reports ids-loop's CR3 in
# xenstore (`oc_offsets=PGD,PID,COMM` from dom0), and every second the console gets ids-loop's own
# run time from /proc/PID/schedstat, the guest's view that dom0's CR3 figure is checked against.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
count_and_fork() {
  n=0
  while :; do
    i=0; while [ $i -lt 300 ]; do i=$((i+1)); done
    sh -c 'i=0; while [ $i -lt 300 ]; do i=$((i+1)); done'
    n=$((n+1))
    [ $((n % 20)) -eq 0 ] && echo "domU: tick $n $(cut -d' ' -f1 /proc/uptime)"
  done
}
case " $(cat /proc/cmdline) " in
*" lab=cr3 "*)
  echo "domU: up, counting and forking"
  count_and_fork
  ;;
*" lab=cr3ids "*)
  echo "domU: up, IDS-VM"
  mount -t devtmpfs devtmpfs /dev
  offsets=$(sed -n 's/.*oc_offsets=\([0-9,]*\).*/\1/p' /proc/cmdline)
  /bin/ids-helper.sh --comm ids-loop --offsets "$offsets" &
  # The helper's kprobe is in place before the IDS starts: its first switch is reported.
  sleep 2
  /bin/ids-loop &
  ids=$!
  echo "domU: ids-loop pid $ids"
  ( while :; do
      sleep 1
      echo "domU: ids-schedstat $(cut -d' ' -f1 /proc/uptime) $ids $(cut -d' ' -f1 /proc/$ids/schedstat)"
    done ) &
  count_and_fork
  ;;
esac
echo "domU: up, burning CPU"
while :; do :; done
