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
  centis "$xs_t1" "$xs_t0"
  xs_took=$centis
  [ $rc -eq 0 ] || echo "ids-helper: xenstore-$* failed (status $rc, ${xs_took}0 ms)" >&2
  return $rc
}
# centis = B - A in hundredths of a second, for two times with two decimals (uptime's format); a
# variable, not output: a command substitution is a fork.
centis() {
  cb=${1%.*}${1#*.}; ca=${2%.*}${2#*.}
  # Leading zeros would make the number octal ("08" is an error).
  while [ "${cb#0}" != "$cb" ] && [ "${#cb}" -gt 1 ]; do cb=${cb#0}; done
  while [ "${ca#0}" != "$ca" ] && [ "${#ca}" -gt 1 ]; do ca=${ca#0}; done
  centis=$((cb - ca))
}
XS_TIMEOUT_S=10

readers=""
fifo_raw=/tmp/ids-helper.$$.raw
fifo_ev=/tmp/ids-helper.$$.ev
cleanup() {
  # The instance can be removed only once nothing holds its trace_pipe open.
  for r in $readers; do kill "$r" 2>/dev/null; done
  for r in $readers; do wait "$r" 2>/dev/null; done
  exec 3<&-
  rm -f "$fifo_raw" "$fifo_ev"
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
# The readers below are started after this and inherit it.
renice -n -10 -p $$ >/dev/null 2>&1 || echo "ids-helper: cannot raise its priority" >&2

# trace_pipe reaches the shell through dd, awk and FIFOs. busybox's `read` takes a byte per system
# call with a poll before each, and poll on trace_pipe does not see the rest of a line the kernel
# already handed out (lines waited for the next event); in a busy guest a 200-byte line took over a
# second that way, so any timeout on the read cut lines. dd's read blocks until whole lines are
# there and writes them on at once (not cat: busybox cat splices, and a splice from trace_pipe
# holds the pipe's lock while it waits). awk reads in blocks and hands the shell one short line per
# event it must act on: "switch PID PGD POB AT", "exit PID AT", "exec PID AT" (AT: the event's
# trace time), or "odd LINE". A switch to a page table already passed for that PID is dropped for a
# second of trace time (queued before the kernel's filter left the PID out); after that it passes
# again, so a report whose xenstore call failed is retried. The shell's read has no timeout: a
# ticker writes "tick" every 30 s into the same FIFO (each writer writes whole lines, shorter than
# PIPE_BUF, so lines never interleave).
rm -f "$fifo_raw" "$fifo_ev"
mkfifo -m 600 "$fifo_raw" "$fifo_ev" || { echo "ids-helper: cannot make the FIFOs $fifo_raw, $fifo_ev" >&2; exit 1; }
dd if="$I/trace_pipe" of="$fifo_raw" bs=4096 2>/dev/null &
readers=$!
awk -v ev="$EVENT" '
{
  at = ""; kind = ""; pid = ""; old = ""; pgd = ""; pob = ""
  for (i = 1; i <= NF; i++) {
    w = $i
    if (at == "") { if (w ~ /^[0-9]+\.[0-9]+:$/) at = substr(w, 1, length(w) - 1); continue }
    if (kind == "") { kind = substr(w, 1, length(w) - 1); continue }
    if (w ~ /^pid=/) pid = substr(w, 5)
    else if (w ~ /^old_pid=/) old = substr(w, 9)
    else if (w ~ /^pgd=/) pgd = substr(w, 5)
    else if (w ~ /^pob=/) pob = substr(w, 5)
  }
  if (kind == ev && pid ~ /^[0-9]+$/ && pgd ~ /^0x[0-9a-f]+$/ && pob ~ /^0x[0-9a-f]+$/) {
    if (last[pid] == pgd && at - lastat[pid] < 1) next
    last[pid] = pgd; lastat[pid] = at
    print "switch " pid " " pgd " " pob " " at
  } else if (kind == "sched_process_exit" && pid ~ /^[0-9]+$/) {
    delete last[pid]
    print "exit " pid " " at
  } else if (kind == "sched_process_exec" && old ~ /^[0-9]+$/) {
    delete last[old]
    print "exec " old " " at
  } else print "odd " $0
  fflush()
}' <"$fifo_raw" >"$fifo_ev" &
readers="$readers $!"
while sleep 30; do echo tick; done >"$fifo_ev" &
readers="$readers $!"
exec 3<"$fifo_ev" || { echo "ids-helper: cannot open $fifo_ev" >&2; exit 1; }
rm -f "$fifo_raw" "$fifo_ev"

# Every event that reports nothing says why, with its line: a helper that reads events and acts
# on none shows which ones and where they stop.
skipped() {
  read -r u _ </proc/uptime
  echo "ids-helper: skipped ($1, handled at $u): $kind $a $b $c $d"
}
# hex = 0x and $1 in hex digits, by shell arithmetic (printf in $(...) would fork).
hex() {
  v=$1; hex=""
  while [ "$v" -ne 0 ]; do
    case $((v & 15)) in
    10) x=a ;; 11) x=b ;; 12) x=c ;; 13) x=d ;; 14) x=e ;; 15) x=f ;; *) x=$((v & 15)) ;;
    esac
    hex=$x$hex
    v=$(( (v >> 4) & 0x0fffffffffffffff ))
  done
  hex=0x${hex:-0}
}
# A line every 30 s (the ticker's), with the events handled: a loop that stops running shows as a gap.
events=0
while read -r kind a b c d <&3; do
  case "$kind" in
  tick)
    read -r now _ </proc/uptime
    read -r cur_filter <"$I/events/$GROUP/$EVENT/filter"
    echo "ids-helper: alive at $now, $events events, switch filter: $cur_filter"
    check_lost
    continue
    ;;
  esac
  events=$((events + 1))
  case "$kind" in
  switch)
    pid=$a; pgd=$b; pob=$c; ev_at=$d
    # A switch to an address space already reported: its report stands.
    eval "had=\${pgd_$pid:-}"
    [ "$had" = "$pgd" ] && continue
    hex $((pgd - pob))
    cr3=$hex
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
  exit) ev_at=$b; withdraw "$a" exit ;;
  # A new program in the same process: its old address space is gone; the next switch reports the new one.
  exec) ev_at=$b; withdraw "$a" exec ;;
  *) skipped "not an event of ours" ;;
  esac
done
echo "ids-helper: its event stream ended" >&2
exit 1
