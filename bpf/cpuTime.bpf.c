// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * OffloadCage CPU collector, libbpf version of bpf/cpuTime.bt: the same records in the same
 * three window sets, read by bpf/cpuTime.c. docs/cpu-collector.md explains the design.
 *
 * Why not bpftrace: its sched_switch probe is a classic tracepoint (the kernel first copies the
 * event's fields, comms included, into a buffer), and it reads curtask with bpf_probe_read.
 * Here sched_switch is a BTF tracepoint: the program gets the kernel's own task pointers and
 * reads the three fields it needs with plain loads.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/*
 * Only the fields used, marked for CO-RE: libbpf relocates their offsets against the running
 * kernel's BTF at load time, so no vmlinux.h is needed and one build runs on any BTF kernel.
 */
struct sched_entity {
	__u64 sum_exec_runtime;
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
	struct sched_entity se;
} __attribute__((preserve_access_index));

struct thread_key {
	__u32 pid; /* tgid */
	__u32 tid;
};

/* Set by the loader before load: window length in ns (the window number picks the set). */
const volatile __u64 interval_ns = 100000000;

/* max_entries is overwritten by the loader (its MAP_KEYS_MAX argument). */
#define THREAD_MAP(name, key_type)                                                                 \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_HASH);                                                   \
		__uint(max_entries, 16384);                                                        \
		__type(key, key_type);                                                             \
		__type(value, __u64);                                                              \
	} name SEC(".maps")

THREAD_MAP(run0, struct thread_key);
THREAD_MAP(run1, struct thread_key);
THREAD_MAP(run2, struct thread_key);
THREAD_MAP(fork0, __u32);
THREAD_MAP(fork1, __u32);
THREAD_MAP(fork2, __u32);
THREAD_MAP(exit0, struct thread_key);
THREAD_MAP(exit1, struct thread_key);
THREAD_MAP(exit2, struct thread_key);

static __always_inline __u64 current_set(void)
{
	return (bpf_ktime_get_ns() / interval_ns) % 3;
}

/*
 * A thread that ran earlier in the window already has its entry: storing into it is a lookup
 * and a plain store, where an update takes the bucket lock and swaps in a new element. The
 * set being written is never the one user space reads, and an aligned 8-byte store is atomic.
 */
static __always_inline void store(void *map, const void *key, __u64 value)
{
	__u64 *slot = bpf_map_lookup_elem(map, key);

	if (slot)
		*slot = value;
	else
		bpf_map_update_elem(map, key, &value, BPF_ANY);
}

/* Pointers to maps in an array would cost a map lookup; three branches cost nothing. */
static __always_inline void put(void *m0, void *m1, void *m2, const void *key, __u64 value)
{
	__u64 set = current_set();

	if (set == 0)
		store(m0, key, value);
	else if (set == 1)
		store(m1, key, value);
	else
		store(m2, key, value);
}

static __always_inline void record_run_time(struct task_struct *t)
{
	struct thread_key key = { .pid = t->tgid, .tid = t->pid };

	/* The idle task is not kept. */
	if (key.tid == 0)
		return;
	put(&run0, &run1, &run2, &key, t->se.sum_exec_runtime);
}

/*
 * prev is leaving the CPU and schedule() has just charged it (update_curr): its
 * sum_exec_runtime is its exact total: stored as it is, nothing is added here.
 */
SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, _Bool preempt, struct task_struct *prev)
{
	record_run_time(prev);
	return 0;
}

/* A task alone on its CPU is never switched out: record it anyway (its total is at most a tick old). */
SEC("perf_event")
int on_flush(void *ctx)
{
	record_run_time((struct task_struct *)bpf_get_current_task_btf());
	return 0;
}

/* A new thread's run time starts at 0: the reader then counts its first record in full. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 tid = child->pid;

	put(&fork0, &fork1, &fork2, &tid, 1);
	return 0;
}

/* Lets the reader forget an exited thread's baseline (its last switch-out still follows). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	struct thread_key key = { .pid = p->tgid, .tid = p->pid };

	put(&exit0, &exit1, &exit2, &key, 1);
	return 0;
}

/* The benchmark's floor for this attach type: the same hook, doing nothing. Loaded only by --noop. */
SEC("tp_btf/sched_switch")
int BPF_PROG(noop_switch)
{
	return 0;
}

/* GPL-compatible, as the kernel requires for bpf_get_current_task_btf(). */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
