#!/bin/sh
# The v2 lab's "VM" (vm-workload.service): one node thread burning a CPU while it holds
# VM_MEM_MIB (default 128) of touched anonymous memory, so the VM's cgroup has CPU and memory.
# It idles until the scenario creates /run/v2-lab/go: under TCG the agent's start-up needs the
# guest's CPUs to itself, while the unit's cgroup must already exist for the agent to find.
while [ ! -e /run/v2-lab/go ]; do sleep 1; done
exec node -e '
const mib = Number(process.env.VM_MEM_MIB ?? 128);
const held = Buffer.alloc(mib * 1024 * 1024, 1);
for (;;) { let x = 0; for (let i = 0; i < 1e7; i++) x += i; if (x < 0) console.log(held.length); }
'
