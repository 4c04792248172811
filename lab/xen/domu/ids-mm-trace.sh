#!/bin/sh
# Xen lab IDS-VM: measures, inside the guest, how long the IDS processes' address spaces are
# loaded, which is what dom0 charges by CR3, beside how long the IDS processes themselves run,
# which is what their schedstat counts. The two differ by lazy TLB: a kernel thread keeps the
# previous task's address space, so it runs under the IDS's CR3 without being the IDS.
#
#   ids-mm-trace.sh --comm NAME[,NAME...] --pgd-offset PGD [--every S]
#
# NAME: the IDS processes' names; PGD: the byte offset of mm_struct.pgd (lab/xen/dom0/kernelBtf.ts).
# A tracefs instance of its own records sched_switch, sched_process_exec and a kprobe on
# switch_mm_irqs_off (the page table it loads), stamped with the boot clock (the clock of
# /proc/uptime, which the guest's schedstat samples carry). An awk reading the instance's pipe
# keeps the loaded page table and the running task, and prints every S seconds of trace time:
#   domU: ids-mm TIME OWN_S OTHERS_S IDLE_S EVENTS OVERRUN
# cumulative seconds: an IDS process on the CPU (OWN), another task on the CPU while an IDS page
# table is loaded (OTHERS: lazy-TLB kernel threads, and the instants between a switch and its
# page table load), the idle task with it loaded (IDLE: a halted vCPU, which Xen does not run);
# OVERRUN: events the ring buffer dropped (the figures are then incomplete). Every 10th line also
#   domU: ids-mm-others TIME COMM=S ...
# who the OTHERS time went to. Runs until killed; the instance and the kprobe are removed on exit.
set -u
T=/sys/kernel/tracing
I=$T/instances/offloadcage-mm
GROUP=offloadcage
EVENT=mm_switch

comms=""
pgd_off=""
every=1
while [ $# -gt 0 ]; do
  case "$1" in
  --comm) comms="$2"; shift 2 ;;
  --pgd-offset) pgd_off="$2"; shift 2 ;;
  --every) every="$2"; shift 2 ;;
  *) echo "ids-mm-trace: unknown argument \"$1\" (usage: ids-mm-trace.sh --comm NAME[,NAME...] --pgd-offset PGD [--every S])" >&2; exit 2 ;;
  esac
done
case "$pgd_off" in *[!0-9]* | "") echo "ids-mm-trace: --pgd-offset must be a decimal byte offset, got \"$pgd_off\"" >&2; exit 2 ;; esac
case "$every" in *[!0-9]* | "" | 0) echo "ids-mm-trace: --every must be whole seconds ≥ 1, got \"$every\"" >&2; exit 2 ;; esac
case "$comms" in *[!A-Za-z0-9_.,-]* | "") echo "ids-mm-trace: --comm must be process names (letters, digits, _ . -), got \"$comms\"" >&2; exit 2 ;; esac

[ -d "$T/events" ] || mount -t tracefs nodev "$T" || { echo "ids-mm-trace: cannot mount tracefs on $T" >&2; exit 1; }

cleanup() {
  echo 0 >"$I/tracing_on" 2>/dev/null
  echo 0 >"$I/events/$GROUP/$EVENT/enable" 2>/dev/null
  rmdir "$I" 2>/dev/null
  echo "-:$GROUP/$EVENT" >>"$T/kprobe_events" 2>/dev/null
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

rmdir "$I" 2>/dev/null
echo "-:$GROUP/$EVENT" >>"$T/kprobe_events" 2>/dev/null
echo "p:$GROUP/$EVENT switch_mm_irqs_off pgd=+$pgd_off(%si):x64" >>"$T/kprobe_events" \
  || { echo "ids-mm-trace: the kernel refused the kprobe on switch_mm_irqs_off" >&2; exit 1; }
mkdir "$I" || { echo "ids-mm-trace: cannot create the trace instance $I" >&2; exit 1; }
echo boot >"$I/trace_clock" || { echo "ids-mm-trace: the kernel has no boot trace clock" >&2; exit 1; }
# A few seconds of a busy guest's switches, so a slow reader loses nothing (OVERRUN says if it did).
echo 8192 >"$I/buffer_size_kb"
echo 1 >"$I/events/sched/sched_switch/enable"
echo 1 >"$I/events/sched/sched_process_exec/enable"
echo 1 >"$I/events/$GROUP/$EVENT/enable"
echo "ids-mm-trace: tracing $comms's address spaces"

cat "$I/trace_pipe" | awk -v comms="$comms" -v every="$every" -v stats="$I/per_cpu/cpu0/stats" '
BEGIN {
  n = split(comms, c, ",")
  for (i = 1; i <= n; i++) ids[c[i]] = 1
  cur = ""; curPid = -1; curIds = 0; loaded = ""; last = -1
  own = 0; others = 0; idle = 0; events = 0; nextPrint = -1; lines = 0
}
{
  ts = -1
  for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+:$/) { ts = substr($i, 1, length($i) - 1) + 0; k = i; break }
  if (ts < 0) next
  events++
  # The interval since the previous event belongs to the state that event left.
  if (last >= 0 && ts > last) {
    dt = ts - last
    if (curIds) own += dt
    else if (loaded != "" && (loaded in idsPgd)) {
      if (curPid == 0) idle += dt
      else { others += dt; otherBy[cur] += dt }
    }
  }
  last = ts
  ev = $(k + 1)
  if (ev == "sched_switch:") {
    for (i = k + 2; i <= NF; i++) {
      if ($i ~ /^next_comm=/) cur = substr($i, 11)
      else if ($i ~ /^next_pid=/) curPid = substr($i, 10) + 0
    }
    curIds = (cur in ids)
  } else if (ev == "sched_process_exec:") {
    # The new program runs in the page table loaded at exec; the kernel names it after the file.
    for (i = k + 2; i <= NF; i++) if ($i ~ /^filename=/) { f = substr($i, 10); sub(/.*\//, "", f); cur = substr(f, 1, 15) }
    curIds = (cur in ids)
    if (curIds && loaded != "") idsPgd[loaded] = 1
  } else if (ev == "mm_switch:") {
    for (i = k + 2; i <= NF; i++) if ($i ~ /^pgd=/) loaded = substr($i, 5)
    if (curIds) idsPgd[loaded] = 1
    # A page table the IDS had, now loaded for another process: freed and reused.
    else if (curPid > 0 && (loaded in idsPgd)) delete idsPgd[loaded]
  }
  if (ts >= nextPrint) {
    if (nextPrint >= 0) {
      over = 0
      while ((getline l < stats) > 0) if (l ~ /^overrun:/) { split(l, o, " "); over = o[2] }
      close(stats)
      printf "domU: ids-mm %.6f %.6f %.6f %.6f %d %d\n", ts, own, others, idle, events, over
      if (++lines % 10 == 0) {
        s = ""
        for (w in otherBy) if (otherBy[w] >= 0.0005) s = s sprintf(" %s=%.4f", w, otherBy[w])
        printf "domU: ids-mm-others %.6f%s\n", ts, s
      }
      fflush()
    }
    nextPrint = int(ts) + every
  }
}'
