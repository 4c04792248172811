#!/bin/sh
# The v2 lab's "VM" (vm-workload.service): one node thread burning a CPU while it holds
# VM_MEM_MIB (default 128) of touched anonymous memory, so the VM's cgroup has CPU and memory.
exec node -e '
const mib = Number(process.env.VM_MEM_MIB ?? 128);
const held = Buffer.alloc(mib * 1024 * 1024, 1);
for (;;) { let x = 0; for (let i = 0; i < 1e7; i++) x += i; if (x < 0) console.log(held.length); }
'
