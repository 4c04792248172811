#!/bin/sh
# Xen lab domU /init: a busy guest. It burns its one vCPU for as long as it lives; its memory is
# whatever the balloon driver (built into the kernel) is told by dom0's `xl mem-set`.
# With `lab=cr3` on its command line (the cr3-trace phase) it stays busy but alternates: a burst
# of counting in this shell, then a short-lived child shell counting, over and over, so the vCPU
# switches between several address spaces (a new one with each child) and never idles.
# With `lab=cr3ids` (the cr3-ids phase) it is an IDS-VM: `ids-loop` (the IDS process, a CPU loop)
# runs beside this shell's counting (forking at most once every 10 s), the IDS helper reports
# ids-loop's CR3 in xenstore (`oc_offsets=PGD,PID,COMM` from dom0), and every second the console
# gets ids-loop's own run time from /proc/PID/schedstat, the guest's view that dom0's CR3 figure is
# checked against (with the guest's steal time and, every 5 s, its kernel threads' run time), and
# the IDS's address-space tracer prints how long ids-loop's address space was loaded
# (ids-mm-trace.sh).
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
# The IDS-VM's own time beside its IDS: this shell counting without a fork, and a short-lived
# child shell at most once every 10 s of uptime (a builtin read, no fork), so that new address
# spaces still come and go but the guest's switches and execs are mostly the IDS's and this shell's.
# The clock is read every 32nd burst only: each open and close of a file, and each exit, queues
# RCU work, and while some is pending the grace-period kthread wakes again and again beside the IDS.
count_and_fork_slowly() {
  n=0; last=""; b=0
  while :; do
    i=0; while [ $i -lt 300 ]; do i=$((i+1)); done
    b=$((b + 1))
    [ $((b % 32)) -eq 0 ] || continue
    read -r up _ </proc/uptime
    up10=${up%%.*}; up10=$((up10 / 10))
    [ "$up10" = "$last" ] && continue
    last=$up10
    sh -c 'i=0; while [ $i -lt 300 ]; do i=$((i+1)); done'
    n=$((n+1))
    [ $((n % 20)) -eq 0 ] && echo "domU: tick $n $up"
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
  # No proactive compaction: kcompactd woke on its own and ran under the IDS's address space (lazy TLB).
  echo 0 >/proc/sys/vm/compaction_proactiveness
  # vmstat's per-CPU counters folded every 60 s, not every second: its kworker woke beside the IDS.
  echo 60 >/proc/sys/vm/stat_interval
  # Longer CFS slices between the IDS and this shell's counting (both CPU-bound; by default they
  # alternate every 3 ms): each switch away from the IDS leaves its page table loaded a moment into
  # the next task's turn, which dom0 charges to the IDS and its schedstat does not count.
  mount -t debugfs nodev /sys/kernel/debug 2>/dev/null
  echo 100000000 >/sys/kernel/debug/sched/latency_ns
  echo 50000000 >/sys/kernel/debug/sched/min_granularity_ns
  mount -t tracefs nodev /sys/kernel/tracing
  offsets=$(sed -n 's/.*oc_offsets=\([0-9,]*\).*/\1/p' /proc/cmdline)
  /bin/ids-helper.sh --comm ids-loop,aide --offsets "$offsets" &
  # How long the IDS's address spaces are loaded, beside how long the IDS runs (lazy TLB).
  /bin/ids-mm-trace.sh --comm ids-loop,aide --pgd-offset "${offsets%%,*}" &
  # The cr3-paper phase's AIDE: a database of 48 MiB in the guest's own memory (no disk here).
  mkdir -p /data /var/lib/aide /tmp
  dd if=/dev/zero of=/data/blob bs=1M count=48 2>/dev/null
  printf 'database_out=file:/tmp/aide.db\ngzip_dbout=no\nLabRule = p+i+n+u+g+s+m+c+sha256+sha512\n/data LabRule\n' >/etc/aide-lab.conf
  # Which IDS runs (`loop` or `aide`) is dom0's to say, in this domain's xenstore; a watch, so that
  # nothing polls xenstore (the xenbus kernel threads would run under the IDS's address space).
  xenstore-write data/offloadcage/lab/step loop
  echo loop >/tmp/step
  # At nice -10, as the sampler and the helper: at 0 each child it forks (xenstore-read, mv) waits
  # behind the CPU-bound tasks' long slices, and beside a busy domU a step came a minute late.
  sh -c 'renice -n -10 -p $$ >/dev/null; xenstore-watch data/offloadcage/lab/step | while read -r _; do
      v=$(xenstore-read data/offloadcage/lab/step) && echo "$v" >/tmp/step.new && mv /tmp/step.new /tmp/step
    done' &
  # The helper's kprobe is in place before the IDS starts: its first switch is reported.
  sleep 2
  /bin/ids-loop &
  ids=$!
  step=loop
  echo "domU: ids-loop pid $ids"
  # Shell builtins only (no fork per sample, not even `sleep`: its exit queues RCU work, and the
  # child ran beside the IDS): uptime, the IDS's run time, and the vCPU's steal
  # (/proc/stat, USER_HZ ticks), which this kernel's schedstat would count as the current task's.
  # The IDS's run time: ids-loop's schedstat, or AIDE's: its loop's reaped passes (cutime +
  # cstime, ticks) and the running pass's threads' schedstat; what a stopped IDS ran stays in done.
  # Every 5th sample, the kernel threads' run time: the bound on time a kernel thread ran in a
  # borrowed (lazy TLB) address space, which dom0 sees as that address space's.
  ( n=0; done=0
    # The second between samples: a read that times out on a FIFO nobody writes (held open both
    # ways, so neither the open nor the read sees an end of file).
    mkfifo /tmp/sampler-tick
    exec 4<>/tmp/sampler-tick
    ids_run() {
      run=0
      if [ "$step" = loop ]; then
        read -r run _ 2>/dev/null <"/proc/$ids/schedstat"
      else
        read -r st 2>/dev/null <"/proc/$ids/stat"
        set -- ${st##*) }
        run=$(( (${14:-0} + ${15:-0}) * 10000000 ))
        # AIDE hashes in worker threads: the running pass's time is all its threads' schedstat.
        pass=""; pass_run=0
        if read -r pass 2>/dev/null </tmp/aide.pid; then
          for t in /proc/"$pass"/task/*; do read -r r _ 2>/dev/null <"$t/schedstat" && pass_run=$((pass_run + r)); done
        fi
        run=$((run + pass_run))
      fi
    }
    while :; do
      read -r -t 1 _ <&4
      read -r want </tmp/step
      if [ "$want" != "$step" ] && { [ "$want" = loop ] || [ "$want" = aide ]; }; then
        ids_run; done=$((done + run))
        kill "$ids"
        if [ "$want" = aide ]; then /bin/ids-aide & else /bin/ids-loop & fi
        ids=$!; step=$want
        echo "domU: ids-step $step pid $ids"
      fi
      read -r up _ </proc/uptime
      ids_run
      read -r _ _ _ _ _ _ _ _ steal _ </proc/stat
      echo "domU: ids-schedstat $up $ids $((done + run)) $steal $step"
      # AIDE's running pass two ways: its threads' schedstat (ids_run's; a thread that exited is in
      # none) and its whole thread group's utime + stime from stat (ticks), to tell them apart.
      if [ "$step" = aide ] && [ -n "$pass" ] && read -r pst 2>/dev/null <"/proc/$pass/stat"; then
        set -- ${pst##*) }
        echo "domU: ids-aide-pass $up $pass $pass_run $(( (${12:-0} + ${13:-0}) * 10000000 ))"
      fi
      n=$((n + 1))
      [ $((n % 5)) -eq 0 ] || continue
      # The kernel threads are kthreadd (PID 2) and its children, listed on one line: busybox's
      # read takes a system call per byte, and reading every process's stat line to find them
      # took 7-60 s per scan under TCG, with the sampler at nice -10 holding the vCPU meanwhile.
      kt=0; kids=""
      read -r kids 2>/dev/null </proc/2/task/2/children
      for p in 2 $kids; do
        read -r r _ 2>/dev/null <"/proc/$p/schedstat" && kt=$((kt + r))
      done
      echo "domU: ids-kthreads $up $kt"
    done ) &
  # The sampler ahead of the CPU-bound tasks: woken by its one-second read timeout, it would
  # otherwise wait a whole scheduling period (the long slices above), and the samples come late.
  renice -n -10 -p $! >/dev/null
  count_and_fork_slowly
  ;;
esac
echo "domU: up, burning CPU"
while :; do :; done
