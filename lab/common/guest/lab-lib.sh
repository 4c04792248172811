# The QEMU-guest labs' stage 2 driver, shared part (sourced by the Xen lab's dom0 /sbin/lab-init
# and the v2 lab's /usr/lib/v2-lab/lab-run, from /usr/lib/oc-lab/lab-lib.sh): unpack the project
# from /dev/vdb (a tar made by the host harness), run the scenario under a hard timeout, write
# /run/results as a tar onto /dev/vdc and power off. The sourcing script defines lab_poweroff and
# makes /run/results and /run/project.
# "LAB: " lines on the console are the host's progress markers (lab/common/guestBoot.ts).
export HOME=/root

up() { cut -d' ' -f1 /proc/uptime; }

# Writes the results disk and powers off.
finish() {
  echo "LAB: results $(up)"
  tar -cf /dev/vdc -C /run/results . 2>/dev/null || echo "LAB: FAIL cannot write results to /dev/vdc"
  sync
  echo "LAB: poweroff $(up)"
  lab_poweroff
}

# tracefs, debugfs and bpffs, for bpftrace.
lab_mount_tracing() {
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
  mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null
}

# The project and the scenario from /dev/vdb into /run/project; without them there is nothing to run.
lab_unpack_project() {
  if ! tar -xf /dev/vdb -C /run/project; then
    echo "LAB: FAIL cannot read the project from /dev/vdb"
    finish
  fi
}

# Runs SCENARIO_JS (below /run/project) on the spec, killed when the host's lab-timeout passes;
# its log goes to /run/results/scenario.log, its last lines to the console.
lab_run_scenario() {
  timeout_s="$(cat /run/project/lab-timeout 2>/dev/null || echo 120)"
  echo "LAB: scenario-start $(up) timeout ${timeout_s}s"
  timeout -s KILL "$timeout_s" node "/run/project/$1" \
    /run/project/lab-scenario.json /run/results >/run/results/scenario.log 2>&1
  echo "LAB: scenario-exit rc=$? $(up)"
}

# The scenario log's last lines on the console: what the host's test prints when a run fails.
lab_show_log() {
  tail -n 40 /run/results/scenario.log | sed 's/^/LAB: log /'
}
