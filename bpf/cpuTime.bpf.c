// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * OffloadCage CPU collector, libbpf version of bpf/cpuTime.bt: the same records in the same
 * three window sets, read by bpf/cpuTime.c, plus a flush of every CPU at each window's end
 * (on_edge). docs/cpu-collector.md explains the design.
 *
 * Why not bpftrace: its sched_switch probe is a classic tracepoint (the kernel first copies the
 * event's fields, comms included, into a buffer), and it reads curtask with bpf_probe_read.
 * Here sched_switch is a BTF tracepoint: the program gets the kernel's own task pointers and
 * reads the fields it needs with plain loads.
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
	__u64 exec_start;
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

/*
 * The last window the loader has flushed (written by the loader before each edge flush). Until
 * a window is flushed, records made after its end still go to its set: the task the loader's
 * wake-up preempted is then charged to the window that just ended, as the tasks it flushes are.
 */
volatile __u64 flushed_window;

/* A running task's total is brought up to date at every tick: with HZ >= 100 it lags by less. */
#define MAX_STALE_NS 10000000ULL

/* Per CPU: bpf_ktime_get_ns() minus the scheduler's clock, taken at the last switch to a task. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s64);
} clock_offset SEC(".maps");

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

/* The set of the window a record made at `now` belongs to: the last one not flushed yet, at the latest. */
static __always_inline __u64 set_at(__u64 now)
{
	__u64 window = now / interval_ns;

	if (window > 0 && flushed_window + 1 < window)
		window--;
	return window % 3;
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
static __always_inline void put(void *m0, void *m1, void *m2, __u64 set, const void *key, __u64 value)
{
	if (set == 0)
		store(m0, key, value);
	else if (set == 1)
		store(m1, key, value);
	else
		store(m2, key, value);
}

static __always_inline void record_run_time(struct task_struct *t, __u64 set, __u64 run_time)
{
	struct thread_key key = { .pid = t->tgid, .tid = t->pid };

	/* The idle task is not kept. */
	if (key.tid == 0)
		return;
	put(&run0, &run1, &run2, set, &key, run_time);
}

/*
 * The total of the task running on this CPU now. The scheduler adds a running task's time to
 * sum_exec_runtime only at ticks and switches; the part since then is now - se.exec_start on
 * the scheduler's clock, which is bpf_ktime_get_ns() minus this CPU's offset. Past the bound
 * (no offset yet, or a clock step) the total is left as the scheduler has it.
 */
static __always_inline void record_running(__u64 set, __u64 now)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
	__u32 zero = 0;
	__s64 *offset = bpf_map_lookup_elem(&clock_offset, &zero);
	__u64 run_time = t->se.sum_exec_runtime;

	if (offset && *offset != 0) {
		__s64 since = (__s64)(now - *offset - t->se.exec_start);

		if (since > 0 && since < (__s64)MAX_STALE_NS)
			run_time += since;
	}
	record_run_time(t, set, run_time);
}

/*
 * prev is leaving the CPU and schedule() has just charged it (update_curr): its
 * sum_exec_runtime is its exact total: stored as it is, nothing is added here. next's
 * se.exec_start was just set from the scheduler's clock: it gives this CPU's clock offset.
 */
SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, _Bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 now = bpf_ktime_get_ns();

	record_run_time(prev, set_at(now), prev->se.sum_exec_runtime);
	if (next->pid != 0) {
		__u32 zero = 0;
		__s64 *offset = bpf_map_lookup_elem(&clock_offset, &zero);

		if (offset)
			*offset = (__s64)(now - next->se.exec_start);
	}
	return 0;
}

/* A task alone on its CPU is never switched out: record it anyway, between two window edges. */
SEC("perf_event")
int on_flush(void *ctx)
{
	__u64 now = bpf_ktime_get_ns();

	record_running(set_at(now), now);
	return 0;
}

/*
 * The edge flush: the loader runs this on every CPU (BPF_PROG_TEST_RUN on each CPU, an IPI)
 * after setting flushed_window to the window that just ended and before reading its set: the
 * task on each CPU is charged up to now in that window, not one flush period later.
 */
SEC("raw_tp")
int on_edge(void *ctx)
{
	record_running(flushed_window % 3, bpf_ktime_get_ns());
	return 0;
}

/* A new thread's run time starts at 0: the reader then counts its first record in full. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 tid = child->pid;

	put(&fork0, &fork1, &fork2, set_at(bpf_ktime_get_ns()), &tid, 1);
	return 0;
}

/* Lets the reader forget an exited thread's baseline (its last switch-out still follows). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	struct thread_key key = { .pid = p->tgid, .tid = p->pid };

	put(&exit0, &exit1, &exit2, set_at(bpf_ktime_get_ns()), &key, 1);
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
