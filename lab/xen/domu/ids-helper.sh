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
# The exit and exec events are filtered in the kernel too (to the IDS names, to the reported PIDs),
# so the helper sleeps while the rest of the guest forks and execs.
set -u
T=/sys/kernel/tracing
# A trace instance of its own: its own buffer, its own filters, nothing shared with other tracers.
I=$T/instances/offloadcage-ids
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

# Another script may be mounting it at the same moment: its mount counts as ours.
[ -d "$T/events" ] || mount -t tracefs nodev "$T" || [ -d "$T/events" ] || { echo "ids-helper: cannot mount tracefs on $T" >&2; exit 1; }

# xenstore-rm is bounded (it always runs a transaction; one call that never returned would leave
# the helper deaf to every later event); every failure is printed.
# Each call's duration (uptime, 10 ms steps) goes into xs_took for the report line: round trips
# through dom0's xenstored are what a starved dom0 would slow.
xs() {
  read -r xs_t0 _ </proc/uptime
  if [ "$1" = rm ]; then timeout "$XS_TIMEOUT_S" "xenstore-$@"; else "xenstore-$@"; fi
  rc=$?
  read -r xs_t1 _ </proc/uptime
  xs_took=$(centis "$xs_t1" "$xs_t0")
  [ $rc -eq 0 ] || echo "ids-helper: xenstore-$* failed (status $rc, ${xs_took}0 ms)" >&2
  return $rc
}
# B - A in hundredths of a second, for two times with two decimals (uptime's format).
centis() {
  b=${1%.*}${1#*.}; a=${2%.*}${2#*.}
  echo $(( ${b#0} - ${a#0} ))
}
XS_TIMEOUT_S=10

reader=""
cleanup() {
  # The instance can be removed only once nothing holds its trace_pipe open.
  [ -z "$reader" ] || { kill "$reader" 2>/dev/null; wait "$reader" 2>/dev/null; }
  exec 3<&-
  echo 0 >"$I/events/$GROUP/$EVENT/enable" 2>/dev/null
  echo 0 >"$I/events/sched/sched_process_exit/enable" 2>/dev/null
  echo 0 >"$I/events/sched/sched_process_exec/enable" 2>/dev/null
  rmdir "$I" 2>/dev/null
  echo "-:$GROUP/$EVENT" >>"$T/kprobe_events" 2>/dev/null
  timeout "$XS_TIMEOUT_S" xenstore-rm "$DIR" 2>/dev/null
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

# A previous run's nodes name processes that may be gone.
timeout "$XS_TIMEOUT_S" xenstore-rm "$DIR" 2>/dev/null
rmdir "$I" 2>/dev/null
echo "-:$GROUP/$EVENT" >>"$T/kprobe_events" 2>/dev/null
echo "p:$GROUP/$EVENT switch_mm_irqs_off pgd=+$off_pgd(%si):x64 pid=+$off_pid(%dx):s32 task=+$off_comm(%dx):string pob=@page_offset_base:x64" >>"$T/kprobe_events" \
  || { echo "ids-helper: the kernel refused the kprobe on switch_mm_irqs_off" >&2; exit 1; }
mkdir "$I" || { echo "ids-helper: cannot create the trace instance $I" >&2; exit 1; }
# Room for a burst (an AIDE pass starting its threads) while the helper forks xenstore clients.
echo 4096 >"$I/buffer_size_kb"
echo 0 >"$I/options/irq-info"
# Event times on the clock of /proc/uptime, so that each report says how late it was handled.
echo boot >"$I/trace_clock" 2>/dev/null || echo "ids-helper: no boot trace clock; event times are the local clock's" >&2
echo "$filter" >"$I/events/$GROUP/$EVENT/filter" || { echo "ids-helper: bad filter: $filter" >&2; exit 1; }
echo "$exit_filter" >"$I/events/sched/sched_process_exit/filter"
# No process reported yet: no exec concerns the helper (an exec into an IDS name is seen at its switch).
echo "old_pid < 0" >"$I/events/sched/sched_process_exec/filter" || { echo "ids-helper: the kernel refused the exec filter" >&2; exit 1; }
echo 1 >"$I/events/$GROUP/$EVENT/enable"
echo 1 >"$I/events/sched/sched_process_exit/enable"
echo 1 >"$I/events/sched/sched_process_exec/enable"
echo "ids-helper: reporting $comms (offsets pgd $off_pgd pid $off_pid comm $off_comm)"

# Once a process is reported its switches say nothing new (an exec is its own event): they leave
# the switch filter, so the helper does not wake for every switch of a busy IDS; and only the
# reported processes' execs pass the exec filter (the others report nothing and withdraw nothing).
set_filter() {
  f="($filter)"
  e=""
  for p in $reported_pids; do f="$f && pid != $p"; e="${e:+$e || }old_pid == $p"; done
  # Reported processes beyond the list's bound: every exec passes ("0" clears a filter).
  [ "$unlisted" -eq 0 ] || e=0
  echo "$f" >"$I/events/$GROUP/$EVENT/filter" || echo "ids-helper: bad filter: $f" >&2
  echo "${e:-old_pid < 0}" >"$I/events/sched/sched_process_exec/filter" || echo "ids-helper: bad exec filter: $e" >&2
}
unlisted=0
reported_pids=""

# Events the buffer dropped (the helper fell behind): an exit or a switch lost is a report wrong.
lost_seen=0
check_lost() {
  lost=0
  while read -r k v; do [ "$k" = overrun: ] && lost=$v; done <"$I/per_cpu/cpu0/stats"
  [ "$lost" = "$lost_seen" ] && return 0
  echo "ids-helper: $lost events lost (the buffer overran)" >&2
  lost_seen=$lost
}

# reported_PID holds the CR3 reported for PID; `eval` because sh has no maps.
withdraw() {
  eval "had=\${reported_$1:-}"
  [ -n "$had" ] || { skipped "$2 of an unreported pid"; return 0; }
  xs rm "$DIR/$1"
  unset "reported_$1" "pgd_$1"
  case " $reported_pids " in
  *" $1 "*)
    left=""
    for p in $reported_pids; do [ "$p" = "$1" ] || left="$left $p"; done
    reported_pids=${left# }
    ;;
  *) unlisted=$((unlisted - 1)) ;;
  esac
  set_filter
  read -r now _ </proc/uptime
  echo "ids-helper: withdrew $1 ($2; event at $ev_at, handled at $now, xenstore ${xs_took}0 ms)"
  check_lost
}

# Each event costs the helper a few forks (xenstore clients), and a child forked into a guest busy
# with CPU-bound tasks waits a whole scheduling period before it first runs: ahead of them, an
# AIDE pass's threads are reported while they still run, and its exits while they still matter.
renice -n -10 -p $$ >/dev/null 2>&1 || echo "ids-helper: cannot raise its priority" >&2
# Shell builtins where they do (no fork): only xenstore and the reader below are programs.
# trace_pipe reaches the shell through dd and a FIFO. Not directly: busybox's read polls before
# each byte, and poll on trace_pipe looks only at the ring buffer, not at the rest of a line
# already taken from it, so each line waited for the next event (exits were read 40 s late),
# and with a timeout its start was lost and its rest read as a line of its own (events read,
# none acted on). dd's read blocks until whole lines are there and hands them on in one write,
# which a pipe's poll sees. Not cat: busybox cat splices, and a splice from trace_pipe holds the
# pipe's lock while it waits for the next event (the helper hung in pipe_read).
fifo=/tmp/ids-helper.$$
rm -f "$fifo"
mkfifo -m 600 "$fifo" || { echo "ids-helper: cannot make the FIFO $fifo" >&2; exit 1; }
dd if="$I/trace_pipe" of="$fifo" bs=4096 2>/dev/null &
reader=$!
exec 3<"$fifo" || { echo "ids-helper: cannot open $fifo" >&2; exit 1; }
rm -f "$fifo"
# Every event that reports nothing says why, with its line: a helper that reads events and acts
# on none shows which ones and where they stop.
skipped() {
  read -r u _ </proc/uptime
  echo "ids-helper: skipped ($1, handled at $u): $line"
}
# A line every 30 s of uptime, with the events handled: a loop that stops running shows as a gap.
events=0
beat=0
while :; do
  if ! read -r -t 1 line <&3; then
    read -r now _ </proc/uptime
    [ "${now%.*}" -ge "$beat" ] || continue
    read -r cur_filter <"$I/events/$GROUP/$EVENT/filter"
    echo "ids-helper: alive at $now, $events events, switch filter: $cur_filter"
    beat=$(( ${now%.*} + 30 ))
    continue
  fi
  events=$((events + 1))
  # The event's time: the word before the event's name, "SECONDS.MICROS:".
  ev_at=""
  for w in $line; do
    case "$w" in *[0-9].[0-9]*:) ev_at=${w%:}; break ;; esac
  done
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
    case "$pid" in "" | *[!0-9]*) skipped "no pid"; continue ;; esac
    case "$pgd$pob" in *[!0-9a-fx]*) skipped "bad pgd or pob"; continue ;; esac
    # Most switches are to an address space already reported: no fork for those.
    eval "had=\${pgd_$pid:-}"
    [ "$had" = "$pgd" ] && { skipped "already reported"; continue; }
    cr3=$(printf '0x%x' $((pgd - pob)))
    # The process must be an IDS by its own name now: a switch made on another task's behalf (a
    # kernel thread's) passed the name filter once with a CR3 beyond physical memory (seen in QEMU).
    read -r pcomm 2>/dev/null <"/proc/$pid/comm" || { skipped "gone"; continue; }
    case ",$comms," in *",$pcomm,"*) ;; *) echo "ids-helper: ignored a switch of $pid ($pcomm) under an IDS name" >&2; continue ;; esac
    read -r stat 2>/dev/null <"/proc/$pid/stat" || { skipped "gone"; continue; }
    # Field 22 (start time): the fields after the name, which may hold spaces, start at field 3.
    set -- ${stat##*) }
    start=${20:-}
    case "$start" in "" | *[!0-9]*) skipped "no start time"; continue ;; esac
    if xs write "$DIR/$pid" "$cr3 $start"; then
      eval "reported_$pid=$cr3 pgd_$pid=$pgd"
      # A bounded filter: beyond 64 reported processes their switches are filtered here instead.
      case " $reported_pids " in
      *" $pid "*) ;;
      *)
        n=0; for p in $reported_pids; do n=$((n + 1)); done
        if [ $n -lt 64 ]; then reported_pids="${reported_pids:+$reported_pids }$pid"; elif [ -z "$had" ]; then unlisted=$((unlisted + 1)); fi
        set_filter
        ;;
      esac
      read -r now _ </proc/uptime
      echo "ids-helper: reported $pid $cr3 $start (event at $ev_at, handled at $now, xenstore ${xs_took}0 ms)"
      check_lost
    fi
    ;;
  *" sched_process_exit: "*)
    for w in $line; do case "$w" in pid=*) withdraw "${w#pid=}" exit ;; esac; done
    ;;
  *" sched_process_exec: "*)
    # A new program in the same process: its old address space is gone; the next switch reports the new one.
    for w in $line; do case "$w" in old_pid=*) withdraw "${w#old_pid=}" exec ;; esac; done
    ;;
  *) skipped "not an event of ours" ;;
  esac
done
