#!/bin/sh
# Xen lab IDS-VM: measures, inside the guest, how long the IDS processes' address spaces are
# loaded, which is what dom0 charges by CR3, beside how long the IDS processes themselves run,
# which is what their schedstat counts. The two differ by lazy TLB: a kernel thread keeps the
# previous task's address space, so it runs under the IDS's CR3 without being the IDS.
#
#   ids-mm-trace.sh --comm NAME[,NAME...] --pgd-offset PGD
#
# NAME: the IDS processes' names; PGD: the byte offset of mm_struct.pgd (lab/xen/dom0/kernelBtf.ts).
# dom0 drives it through this domain's xenstore node data/offloadcage/lab/mm (a watch, no polling):
# `on` starts recording, `off FROM TO` stops and accounts [FROM, TO] of the guest's boot clock (the
# clock of /proc/uptime, which the schedstat samples carry, so both views cover the same span).
# A tracefs instance of its own records a kprobe on switch_mm_irqs_off (the page table it loads),
# sched_process_exec, and the sched_switch events that start or end an IDS process's or the idle
# task's turn (the others change nothing: the page table a kernel thread borrows stays loaded until
# the next switch_mm). Recording and accounting are apart because an awk under TCG could not follow
# the live stream (measured: it fell 6 s behind per second of trace). It then prints
#   domU: ids-mm-span FROM TO OWN_S OTHERS_S IDLE_S EVENTS OVERRUN FIRST LAST
# seconds in [FROM, TO]: an IDS process on the CPU (OWN), another task on the CPU while an IDS page
# table is loaded (OTHERS: lazy-TLB kernel threads, and the instants between a switch and its page
# table load), the idle task with it loaded (IDLE: a halted vCPU, which Xen does not run); EVENTS
# accounted, OVERRUN events the buffer dropped (the figures are then incomplete), FIRST and LAST the
# recording's first and last event (it covers the span when FIRST ≤ FROM and LAST ≥ TO), and
#   domU: ids-mm-others COMM=S ...
# the OTHERS time by the task the IDS's turn ended with. Runs until killed; cleans up on exit.
set -u
T=/sys/kernel/tracing
I=$T/instances/offloadcage-mm
GROUP=offloadcage
EVENT=mm_switch
NODE=data/offloadcage/lab/mm

comms=""
pgd_off=""
while [ $# -gt 0 ]; do
  case "$1" in
  --comm) comms="$2"; shift 2 ;;
  --pgd-offset) pgd_off="$2"; shift 2 ;;
  *) echo "ids-mm-trace: unknown argument \"$1\" (usage: ids-mm-trace.sh --comm NAME[,NAME...] --pgd-offset PGD)" >&2; exit 2 ;;
  esac
done
case "$pgd_off" in *[!0-9]* | "") echo "ids-mm-trace: --pgd-offset must be a decimal byte offset, got \"$pgd_off\"" >&2; exit 2 ;; esac
case "$comms" in *[!A-Za-z0-9_.,-]* | "") echo "ids-mm-trace: --comm must be process names (letters, digits, _ . -), got \"$comms\"" >&2; exit 2 ;; esac

filter="prev_pid == 0 || next_pid == 0"
for c in $(echo "$comms" | tr , ' '); do filter="$filter || prev_comm == \"$c\" || next_comm == \"$c\""; done

# Another script may be mounting it at the same moment: its mount counts as ours.
[ -d "$T/events" ] || mount -t tracefs nodev "$T" || [ -d "$T/events" ] || { echo "ids-mm-trace: cannot mount tracefs on $T" >&2; exit 1; }

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
echo 0 >"$I/tracing_on"
echo boot >"$I/trace_clock" || { echo "ids-mm-trace: the kernel has no boot trace clock" >&2; exit 1; }
echo 0 >"$I/options/irq-info"
# A minute of a busy guest's switches (about 1,300 events a second unfiltered, measured).
echo 16384 >"$I/buffer_size_kb"
echo "$filter" >"$I/events/sched/sched_switch/filter" || { echo "ids-mm-trace: bad filter: $filter" >&2; exit 1; }
echo 1 >"$I/events/sched/sched_switch/enable"
echo 1 >"$I/events/sched/sched_process_exec/enable"
echo 1 >"$I/events/$GROUP/$EVENT/enable"
xenstore-write "$NODE" idle || { echo "ids-mm-trace: cannot write $NODE" >&2; exit 1; }
echo "ids-mm-trace: ready for $comms"

account() {
  over=$(sed -n 's/^overrun: //p' "$I/per_cpu/cpu0/stats")
  awk -v comms="$comms" -v from="$1" -v to="$2" -v over="${over:-0}" '
BEGIN {
  n = split(comms, c, ",")
  for (i = 1; i <= n; i++) ids[c[i]] = 1
  state = ""; first = ""; loaded = ""; last = -1; by = ""
  own = 0; others = 0; idle = 0; events = 0
  # Numbers, not strings: -v values compare as text in some awks.
  lo = from + 0; hi = to + 0
}
/^#/ { next }
{
  # "TASK-PID [CPU] TIME: EVENT: FIELDS"; the task name may hold spaces, the rest does not.
  p = index($0, "] ")
  if (p == 0) next
  rest = substr($0, p + 2)
  ts = rest + 0
  q = index(rest, ": ")
  body = substr(rest, q + 2)
  if (first == "") first = ts
  events++
  # The time since the previous event belongs to the state that event left, clipped to the span.
  if (last >= 0) {
    a = (last > lo) ? last : lo
    b = (ts < hi) ? ts : hi
    if (b > a) {
      if (state == "own") own += b - a
      else if (loaded != "" && (loaded in idsPgd)) {
        if (state == "idle") idle += b - a
        else { others += b - a; otherBy[by] += b - a }
      }
    }
  }
  last = ts
  if (substr(body, 1, 14) == "sched_switch: ") {
    s = substr(body, index(body, "==> next_comm=") + 14)
    split(s, f, " ")
    np = substr(f[2], 10) + 0
    if (f[1] in ids) state = "own"
    else if (np == 0) state = "idle"
    else { state = "other"; by = f[1] }
  } else if (substr(body, 1, 20) == "sched_process_exec: ") {
    # The new program runs in the page table loaded at exec; the kernel names it after the file.
    s = substr(body, 30)
    sub(/ .*/, "", s); sub(/.*\//, "", s); s = substr(s, 1, 15)
    if (s in ids) { state = "own"; if (loaded != "") idsPgd[loaded] = 1 }
    else if (state == "own") { state = "other"; by = s }
  } else if (substr(body, 1, 11) == "mm_switch: ") {
    s = substr(body, index(body, "pgd=") + 4)
    sub(/ .*/, "", s)
    loaded = s
    if (state == "own") idsPgd[loaded] = 1
    else {
      # A user task runs now. A page table the IDS had, loaded for another process: freed, reused.
      if (state != "idle") state = "other"
      if (loaded in idsPgd) delete idsPgd[loaded]
    }
  }
}
END {
  printf "domU: ids-mm-span %s %s %.6f %.6f %.6f %d %d %s %s\n", from, to, own, others, idle, events, over, (first == "" ? "none" : sprintf("%.6f", first)), (last < 0 ? "none" : sprintf("%.6f", last))
  s = ""
  for (w in otherBy) if (otherBy[w] >= 0.0005) s = s sprintf(" %s=%.4f", w, otherBy[w])
  print "domU: ids-mm-others" s
}' "$I/trace"
}

xenstore-watch "$NODE" | while read -r _; do
  v=$(xenstore-read "$NODE") || continue
  case "$v" in
  on)
    echo 0 >"$I/tracing_on"
    : >"$I/trace"
    echo 1 >"$I/tracing_on"
    read -r up _ </proc/uptime
    echo "domU: ids-mm on $up"
    ;;
  "off "*)
    echo 0 >"$I/tracing_on"
    set -- $v
    case "$2$3" in *[!0-9.]* | "") echo "ids-mm-trace: bad span \"$v\"" >&2; continue ;; esac
    account "$2" "$3"
    ;;
  esac
done
