#!/bin/sh
# The v2 lab's IDS (aide.service): AIDE computing a fresh database of the VM's disk image,
# mounted read-only at /srv/vm-disk, again and again. Each pass's start and end go to the
# journal with the guest's uptime, to tell an IDS pause from a measurement gap. Like the VM it
# waits for /run/v2-lab/go.
while [ ! -e /run/v2-lab/go ]; do sleep 1; done
while :; do
  echo "$(cut -d' ' -f1 /proc/uptime) start"
  aide --config=/etc/v2-lab/aide.conf --init >/dev/null 2>&1
  echo "$(cut -d' ' -f1 /proc/uptime) end exit $?"
done
