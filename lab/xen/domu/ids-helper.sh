#!/bin/sh
# OffloadCage IDS-VM helper: runs inside a Xen IDS-VM and tells dom0 which address spaces (CR3
# values) belong to the IDS processes, so the agent charges only their time to the cage
# (`ids: [{ vm: { kind: xen, domain }, cr3From: helper }]`, docs/xentrace.md).
#
#   ids-helper.sh --comm NAME[,NAME...] --offsets PGD,PID,COMM
#
# NAME: the IDS processes' names (/proc/PID/comm, at most 15 bytes). PGD, PID, COMM: byte offsets of
# mm_struct.pgd, task_struct.pid and task_struct.comm in this kernel (from its BTF; the lab computes
# them in dom0, lab/xen/dom0/kernelBtf.ts). Needs busybox (or coreutils), tracefs, the xenbus device
# and Xen's xenstore-write/xenstore-rm. Runs until killed; its nodes are removed on the way out.
#
# A process cannot read its own CR3, so the kernel tells us: a kprobe on switch_mm_irqs_off(prev,
# next, tsk) reads next->pgd (the top-level page table, a direct-map address; CR3 = its physical
# address = pgd - page_offset_base) and tsk's pid and name, filtered to the IDS names in the kernel.
# Each (PID, CR3) is written once to xenstore (relative paths are below this domain's own
# /local/domain/DOMID/), rewritten when the CR3 changes (exec), and removed when the process exits
# or execs, so a page table freed and reused by another process is never reported as the IDS's.
set -u
T=/sys/kernel/tracing
DIR=data/offloadcage/ids
GROUP=offloadcage
EVENT=ids_switch_mm

comms=""
offsets=""
while [ $# -gt 0 ]; do
  case "$1" in
  --comm) comms="$2"; shift 2 ;;
  --offsets) offsets="$2"; shift 2 ;;
  *) echo "ids-helper: unknown argument \"$1\" (usage: ids-helper.sh --comm NAME[,NAME...] --offsets PGD,PID,COMM)" >&2; exit 2 ;;
  esac
done
case "$offsets" in
*[!0-9,]* | "" ) echo "ids-helper: --offsets must be PGD,PID,COMM (decimal bytes), got \"$offsets\"" >&2; exit 2 ;;
esac
case "$comms" in
*[!A-Za-z0-9_.,-]* | "") echo "ids-helper: --comm must be process names (letters, digits, _ . -), got \"$comms\"" >&2; exit 2 ;;
esac
IFS=, read -r off_pgd off_pid off_comm <<EOF
$offsets
EOF
[ -n "$off_comm" ] || { echo "ids-helper: --offsets needs three numbers, got \"$offsets\"" >&2; exit 2; }

filter=""
for c in $(echo "$comms" | tr , ' '); do
  filter="${filter:+$filter || }task == \"$c\""
done
exit_filter=$(echo "$filter" | sed 's/task ==/comm ==/g')

[ -d "$T/events" ] || mount -t tracefs nodev "$T" || { echo "ids-helper: cannot mount tracefs on $T" >&2; exit 1; }

cleanup() {
  echo 0 >"$T/events/$GROUP/$EVENT/enable" 2>/dev/null
  echo 0 >"$T/events/sched/sched_process_exit/enable" 2>/dev/null
  echo 0 >"$T/events/sched/sched_process_exec/enable" 2>/dev/null
  echo "-:$GROUP/$EVENT" >>"$T/kprobe_events" 2>/dev/null
  xenstore-rm "$DIR" 2>/dev/null
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

# A previous run's nodes name processes that may be gone.
xenstore-rm "$DIR" 2>/dev/null
echo "-:$GROUP/$EVENT" >>"$T/kprobe_events" 2>/dev/null
echo "p:$GROUP/$EVENT switch_mm_irqs_off pgd=+$off_pgd(%si):x64 pid=+$off_pid(%dx):s32 task=+$off_comm(%dx):string pob=@page_offset_base:x64" >>"$T/kprobe_events" \
  || { echo "ids-helper: the kernel refused the kprobe on switch_mm_irqs_off" >&2; exit 1; }
echo "$filter" >"$T/events/$GROUP/$EVENT/filter" || { echo "ids-helper: bad filter: $filter" >&2; exit 1; }
echo "$exit_filter" >"$T/events/sched/sched_process_exit/filter"
echo 1 >"$T/events/$GROUP/$EVENT/enable"
echo 1 >"$T/events/sched/sched_process_exit/enable"
echo 1 >"$T/events/sched/sched_process_exec/enable"
echo "ids-helper: reporting $comms (offsets pgd $off_pgd pid $off_pid comm $off_comm)"

# Once a process is reported its switches say nothing new (an exec is its own event): they leave
# the kernel's filter, so the helper does not wake for every switch of a busy IDS.
set_filter() {
  f="($filter)"
  for p in $reported_pids; do f="$f && pid != $p"; done
  echo "$f" >"$T/events/$GROUP/$EVENT/filter"
}
reported_pids=""

# reported_PID holds the CR3 reported for PID; `eval` because sh has no maps.
withdraw() {
  eval "had=\${reported_$1:-}"
  [ -n "$had" ] || return 0
  xenstore-rm "$DIR/$1" 2>/dev/null
  unset "reported_$1" "pgd_$1"
  reported_pids=$(echo " $reported_pids " | sed "s/ $1 / /; s/^ *//; s/ *$//")
  set_filter
  echo "ids-helper: withdrew $1 ($2)"
}

cat "$T/trace_pipe" | while read -r line; do
  case "$line" in
  *" $EVENT: "*)
    pgd=""; pid=""; pob=""
    for w in $line; do
      case "$w" in
      pgd=*) pgd=${w#pgd=} ;;
      pid=*) pid=${w#pid=} ;;
      pob=*) pob=${w#pob=} ;;
      esac
    done
    case "$pid" in "" | *[!0-9]*) continue ;; esac
    case "$pgd$pob" in *[!0-9a-fx]*) continue ;; esac
    # Most switches are to an address space already reported: no fork for those.
    eval "had=\${pgd_$pid:-}"
    [ "$had" = "$pgd" ] && continue
    cr3=$(printf '0x%x' $((pgd - pob)))
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    # Field 22 (start time): the fields after the name, which may hold spaces, start at field 3.
    set -- ${stat##*) }
    start=${20:-}
    case "$start" in "" | *[!0-9]*) continue ;; esac
    if xenstore-write "$DIR/$pid" "$cr3 $start"; then
      eval "reported_$pid=$cr3 pgd_$pid=$pgd"
      # A bounded filter: beyond 64 reported processes their switches are filtered here instead.
      case " $reported_pids " in *" $pid "*) ;; *) [ $(echo $reported_pids | wc -w) -lt 64 ] && reported_pids="$reported_pids $pid" && set_filter ;; esac
      echo "ids-helper: reported $pid $cr3 $start"
    fi
    ;;
  *" sched_process_exit: "*)
    for w in $line; do case "$w" in pid=*) withdraw "${w#pid=}" exit ;; esac; done
    ;;
  *" sched_process_exec: "*)
    # A new program in the same process: its old address space is gone; the next switch reports the new one.
    for w in $line; do case "$w" in old_pid=*) withdraw "${w#old_pid=}" exec ;; esac; done
    ;;
  esac
done
