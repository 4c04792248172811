#!/usr/bin/env bash
# Seconds from `npm start` to the first cage series (a cage_… metric with a cage label) on the
# demo's Prometheus endpoint, then a Ctrl-C-like stop: SIGINT to the whole process group, a wait
# for every process of it to exit, and a check that no process, listener or tracking cgroup is left.
# It starts the real agent: run it under the shared lock,
#   flock /tmp/oc-e2e.lock bash scripts/time-to-first-metric.sh
# Usage: time-to-first-metric.sh [--timeout S] [--url URL]   (defaults: 120, the demo's endpoint)
set -euo pipefail
cd "$(dirname "$0")/.."

timeout_s=120
url=http://127.0.0.1:9464/metrics
while (($#)); do
  case "$1" in
    --timeout) timeout_s=${2:?--timeout needs seconds}; shift 2 ;;
    --url) url=${2:?--url needs a URL}; shift 2 ;;
    *) echo "time-to-first-metric: unknown argument '$1' (expected --timeout S or --url URL)" >&2; exit 2 ;;
  esac
done
[[ $timeout_s =~ ^[0-9]+$ ]] && ((timeout_s > 0)) \
  || { echo "time-to-first-metric: --timeout must be a positive integer of seconds, got '$timeout_s'" >&2; exit 2; }

# A listener already on the URL would answer for an agent that is not ours.
if curl -sf -o /dev/null --max-time 1 "$url"; then
  echo "time-to-first-metric: $url already answers; stop whatever serves it first" >&2
  exit 1
fi

tracking_cgroups() { find /sys/fs/cgroup -maxdepth 3 -type d -path '*/offloadcage/*' 2>/dev/null | sort; }
cgroups_before=$(tracking_cgroups)
log=$(mktemp /tmp/time-to-first-metric.XXXXXX.log)
metrics=$(mktemp /tmp/time-to-first-metric.XXXXXX.prom)

# setsid: the agent gets its own session and process group, so one SIGINT to the group is what
# Ctrl-C in a terminal does, and every process it leaves behind can be found by its session id.
start_ns=$(date +%s%N)
setsid npm start >"$log" 2>&1 </dev/null &
sid=$!

session_pids() { ps -eo pid=,sid= | awk -v s="$sid" '$2 == s { print $1 }'; }
stop_agent() {
  kill -INT -- "-$sid" 2>/dev/null || true
  local waited=0
  while [ -n "$(session_pids)" ] && ((waited < 300)); do sleep 0.1; waited=$((waited + 1)); done
  wait "$sid" 2>/dev/null || true
}
cleanup() {
  stop_agent
  local left
  left=$(session_pids)
  if [ -n "$left" ]; then
    echo "time-to-first-metric: left behind 30 s after SIGINT (now killed):" >&2
    # shellcheck disable=SC2086
    ps -o pid=,args= -p $(echo $left | tr ' ' ',') >&2 || true
    kill -KILL -- "-$sid" 2>/dev/null || true
    status=1
  fi
  rm -f "$metrics"
}
status=0
trap cleanup EXIT
trap 'exit 130' INT TERM

found=""
deadline_ns=$((start_ns + timeout_s * 1000000000))
while :; do
  now_ns=$(date +%s%N)
  if curl -sf -o "$metrics" --max-time 1 "$url" && grep -qE '^cage_[a-z0-9_]+\{([^}]*,)?cage="' "$metrics"; then
    found=$now_ns
    break
  fi
  if ! kill -0 "$sid" 2>/dev/null; then
    echo "time-to-first-metric: npm start exited before the first cage series; its output: $log" >&2
    exit 1
  fi
  ((now_ns < deadline_ns)) || { echo "time-to-first-metric: no cage series within ${timeout_s} s; output: $log" >&2; exit 1; }
  sleep 0.1
done

first_series=$(grep -m1 -E '^cage_[a-z0-9_]+\{([^}]*,)?cage="' "$metrics")
seconds=$(awk -v d=$((found - start_ns)) 'BEGIN { printf "%.2f", d / 1e9 }')
load=$(cut -d' ' -f1-3 /proc/loadavg)

trap - EXIT
cleanup
if curl -sf -o /dev/null --max-time 1 "$url"; then
  echo "time-to-first-metric: $url still answers after the agent stopped" >&2
  status=1
fi
cgroups_left=$(comm -13 <(echo "$cgroups_before") <(tracking_cgroups))
if [ -n "$cgroups_left" ]; then
  echo "time-to-first-metric: tracking cgroups left behind: $cgroups_left" >&2
  status=1
fi
echo "first cage series after ${seconds} s (load average ${load}): ${first_series}"
[ "$status" = 0 ] && rm -f "$log" || echo "time-to-first-metric: agent output kept in $log" >&2
exit "$status"
