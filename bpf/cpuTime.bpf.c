// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * OffloadCage CPU collector, libbpf version of bpf/cpuTime.bt: the same records in the same
 * three window sets, read by bpf/cpuTime.c, and an edge flush (on_edge) that ends each window
 * with every running task's total at the window's end. docs/cpu-collector.md explains the design.
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
#include <bpf/bpf_core_read.h>
#include "mulDiv.h"
#include "cpuState.h"

/*
 * Only the fields used, marked for CO-RE: libbpf relocates their offsets against the running
 * kernel's BTF at load time, so no vmlinux.h is needed and one build runs on any BTF kernel.
 */
/* rq->clock - rq->clock_task is the time the CPU's scheduler charged to no task: steal (and IRQ time when accounted). */
struct rq {
	__u64 clock;
	__u64 clock_task;
} __attribute__((preserve_access_index));

struct cfs_rq {
	struct rq *rq;
} __attribute__((preserve_access_index));

struct sched_entity {
	__u64 exec_start;            /* rq->clock_task at its last update (switch-in or tick) */
	__u64 sum_exec_runtime;
	__u64 prev_sum_exec_runtime; /* its total when it was last picked to run (its switch-in) */
	struct cfs_rq *cfs_rq; /* with CONFIG_FAIR_GROUP_SCHED; its rq is the task's CPU's */
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
	unsigned int policy;
	struct sched_entity se;
	char comm[16];
} __attribute__((preserve_access_index));

/* SCHED_NORMAL, SCHED_BATCH, SCHED_IDLE: the fair class, which keeps prev_sum_exec_runtime. */
static __always_inline int is_fair(const struct task_struct *t)
{
	unsigned int policy = t->policy;

	return policy == 0 || policy == 3 || policy == 5;
}

struct thread_key {
	__u32 pid; /* tgid */
	__u32 tid;
};

/* Set by the loader before load: window length in ns (the window number picks the set). */
const volatile __u64 interval_ns = 100000000;

/*
 * Written by the loader. edge_window: the window on_edge is run for (its end is the edge).
 * edges_on: 1 while the loader runs the edge flush; 0 when it cannot (then the periodic flush
 * runs instead, and no switch writes into a window that has ended).
 */
volatile __u64 edge_window;
volatile __u32 edges_on;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_state);
} cpu_state SEC(".maps");

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

static __always_inline struct cpu_state *this_cpu_state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&cpu_state, &zero);
}

/*
 * A thread that ran earlier in the window already has its entry: storing into it is a lookup
 * and a plain store, where an update takes the bucket lock and swaps in a new element. The
 * set being written is never the one user space reads, and an aligned 8-byte store is atomic.
 */
static __always_inline long store(void *map, const void *key, __u64 value)
{
	__u64 *slot = bpf_map_lookup_elem(map, key);

	if (slot) {
		*slot = value;
		return 0;
	}
	return bpf_map_update_elem(map, key, &value, BPF_ANY);
}

/* Pointers to maps in an array would cost a map lookup; three branches cost nothing. */
static __always_inline long put_in(void *m0, void *m1, void *m2, __u64 set, const void *key, __u64 value)
{
	if (set == 0)
		return store(m0, key, value);
	else if (set == 1)
		return store(m1, key, value);
	else
		return store(m2, key, value);
}

static __always_inline void put(void *m0, void *m1, void *m2, const void *key, __u64 value)
{
	put_in(m0, m1, m2, current_set(), key, value);
}

/*
 * Debug mode only (set by the loader before load; 0 otherwise, and the verifier then drops the
 * code): every run-time record of a thread named debug_comm goes to debug_trace.
 */
const volatile __u32 debug_on = 0;
const volatile char debug_comm[16] = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} debug_trace SEC(".maps");

static __always_inline void trace_record(struct task_struct *t, __u64 set, __u64 run_time, __u32 path, long err)
{
	char comm[16];
	struct record_trace *r;

	if (bpf_probe_read_kernel(comm, sizeof(comm), t->comm) != 0)
		return;
	for (int i = 0; i < 16; i++) {
		if (comm[i] != debug_comm[i])
			return;
		if (comm[i] == 0)
			break;
	}
	r = bpf_ringbuf_reserve(&debug_trace, sizeof(*r), 0);
	if (!r)
		return;
	r->now = bpf_ktime_get_ns();
	r->set = set;
	r->value = run_time;
	r->err = err;
	r->tid = t->pid;
	r->path = path;
	r->cpu = bpf_get_smp_processor_id();
	r->st_tid = 0;
	r->st_in = 0;
	r->st_done = 0;
	{
		struct cpu_state *st = this_cpu_state();

		if (st) {
			r->st_tid = st->tid;
			r->st_in = st->in_ns;
			r->st_done = st->edge_done;
		}
	}
	bpf_ringbuf_submit(r, 0);
}

static __always_inline void record_in(struct task_struct *t, __u64 set, __u64 run_time, __u32 path)
{
	struct thread_key key = { .pid = t->tgid, .tid = t->pid };
	long err;

	/* The idle task is not kept. */
	if (key.tid == 0)
		return;
	err = put_in(&run0, &run1, &run2, set, &key, run_time);
	if (debug_on)
		trace_record(t, set, run_time, path, err);
}

static __always_inline void record_run_time(struct task_struct *t)
{
	record_in(t, current_set(), t->se.sum_exec_runtime, PATH_FLUSH);
}

/* The runqueue t is on (its CPU's), or NULL on a kernel without group scheduling. */
static __always_inline const struct rq *rq_of(struct task_struct *t)
{
	if (!bpf_core_field_exists(t->se.cfs_rq))
		return 0;
	struct cfs_rq *cfs_rq = t->se.cfs_rq;

	return cfs_rq ? cfs_rq->rq : 0;
}

/*
 * The total at edge T of t, on this CPU since st->in_ns < T. Its own total is up to a tick
 * stale, so it is not used: from its switch-in to T it ran the wall time between them, less
 * what the scheduler charged to no task on this CPU meanwhile (steal: zero on bare metal and
 * under TCG). That is known from the rq's clocks up to their last update, at most a tick ago;
 * the part before T is taken in proportion to time.
 */
static __always_inline __u64 total_at_edge(struct task_struct *t, const struct cpu_state *st, __u64 edge)
{
	__u64 before = edge - st->in_ns;
	const struct rq *rq = rq_of(t);

	if (rq && st->clock_in != 0) {
		__u64 clock = rq->clock, unrun = clock - rq->clock_task;
		__u64 elapsed = clock > st->clock_in ? clock - st->clock_in : 0;
		__u64 stolen = unrun > st->unrun_in ? unrun - st->unrun_in : 0;

		if (stolen > elapsed)
			stolen = elapsed;
		/* Its share before T, in proportion to time; none is counted past the rq's last update. */
		if (elapsed > before)
			stolen = mul_div(stolen, before, elapsed);
		return st->total_in + before - stolen;
	}
	return st->total_in + before;
}

/*
 * prev, leaving this CPU at `now` with its exact total, ran across the end E of `window`:
 * records its total at E there. With its switch-in seen (the state holds it), the run since
 * then is split at E in proportion to wall time, so steal since then is shared out evenly.
 * A switch-in the program did not see (seen under load; docs/cpu-collector.md) leaves the
 * state to another task: then its run since its switch-in is
 * total - prev_sum_exec_runtime, and if that exceeds the time since E it ran across E, its
 * total then being its total less the time since E (exact without steal).
 */
static __always_inline void span_record(struct task_struct *prev, struct cpu_state *st, __u64 total, __u64 now, __u64 window)
{
	__u64 edge = (window + 1) * interval_ns, at_edge;

	if (st->tid == prev->pid) {
		__u64 ran = total > st->total_in ? total - st->total_in : 0;

		if (st->in_ns >= edge)
			return;
		at_edge = st->total_in + mul_div(ran, edge - st->in_ns, now - st->in_ns);
	} else {
		__u64 ran = total - prev->se.prev_sum_exec_runtime;

		if (!is_fair(prev) || total < prev->se.prev_sum_exec_runtime || ran <= now - edge)
			return;
		at_edge = total - (now - edge);
	}
	record_in(prev, window % 3, at_edge, PATH_SPAN);
	if (debug_on) {
		st->dbg_span_tid = prev->pid;
		st->dbg_span_window = window;
		st->dbg_span_now = now;
		st->dbg_span_in = st->tid == prev->pid ? st->in_ns : 0;
		st->dbg_span_value = at_edge;
		st->dbg_spans++;
	}
}

/*
 * prev is leaving the CPU and schedule() has just charged it (update_curr): its
 * sum_exec_runtime is its exact total, recorded in the window of now. If it ran across the
 * end T of a window the edge flush has not yet run for on this CPU, it is the task that flush
 * would have found: its total at T goes to that window, so the window ends at T whatever the
 * loader's wake-up latency. The rest of the ended window's records are in place: every probe
 * picks its window by the time of its record.
 */
SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, _Bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 now = bpf_ktime_get_ns(), window = now / interval_ns;
	__u64 total = prev->se.sum_exec_runtime;
	struct cpu_state *st = this_cpu_state();

	record_in(prev, window % 3, total, PATH_SWITCH);
	if (!st)
		return 0;
	if (debug_on && st->in_ns != 0 && st->tid != prev->pid) {
		st->dbg_unseen++;
		st->dbg_unseen_now = now;
		st->dbg_unseen_in = st->in_ns;
		st->dbg_unseen_prev = prev->pid;
		st->dbg_unseen_state = st->tid;
	}
	/*
	 * The ended windows not yet flushed on this CPU (at most the two before this one: older
	 * sets are written again) whose edge prev ran across get its total at that edge.
	 */
	if (edges_on && prev->pid != 0) {
		for (__u64 back = 1; back <= 2; back++) {
			if (window < back || st->edge_done + back >= window)
				break;
			span_record(prev, st, total, now, window - back);
		}
	}
	const struct rq *rq = rq_of(next);

	st->in_ns = now;
	st->total_in = next->se.sum_exec_runtime;
	st->tid = next->pid;
	st->clock_in = 0;
	if (rq) {
		st->clock_in = rq->clock;
		st->unrun_in = st->clock_in - rq->clock_task;
	}
	if (debug_on && next->pid != 0)
		trace_record(next, window % 3, st->total_in, PATH_IN, 0);
	return 0;
}

/*
 * The total at `edge` of t, running on this CPU since a switch-in the program did not see.
 * Its own fields give its total at its last update (se.exec_start, on the rq's task clock);
 * the edge is put on that clock by the state's last switch, whose time and rq clock were
 * taken together. Returns 0 when it was switched in after the edge (its total then would
 * not exceed its total at its switch-in), or when there is nothing to go by.
 */
static __always_inline int unseen_total_at_edge(struct task_struct *t, const struct cpu_state *st, __u64 edge, __u64 *total)
{
	const struct rq *rq = rq_of(t);
	__s64 edge_task, at;

	if (!rq || st->clock_in == 0 || !is_fair(t))
		return 0;
	edge_task = (__s64)st->clock_in + ((__s64)edge - (__s64)st->in_ns) - (__s64)(rq->clock - rq->clock_task);
	at = (__s64)t->se.sum_exec_runtime + (edge_task - (__s64)t->se.exec_start);
	if (at <= (__s64)t->se.prev_sum_exec_runtime)
		return 0;
	*total = (__u64)at;
	return 1;
}

/*
 * The fallback where the loader cannot run on_edge (before Linux 5.10): a task alone on its
 * CPU is never switched out, so it is recorded here, its total at most a tick old.
 */
SEC("perf_event")
int on_flush(void *ctx)
{
	record_run_time((struct task_struct *)bpf_get_current_task_btf());
	return 0;
}

/*
 * The edge flush. The loader sets edge_window to the window that has just ended, then runs
 * this on every CPU (BPF_PROG_TEST_RUN with BPF_F_TEST_RUN_ON_CPU: an IPI there) before it
 * reads that window's set. The task it interrupts, if it was switched in before the edge, is
 * recorded there with its total at the edge. sum_exec_runtime is only brought up to date at
 * ticks and switches, so that total comes from the switch-in's (or, for a switch-in the
 * program did not see, from the task's last update): it is not the time of the flush but of
 * the edge that bounds the window. An interrupt cannot land on this CPU while
 * on_switch runs (it runs with interrupts off), so once edge_done is set here no switch on
 * this CPU writes into the ended window.
 */
SEC("raw_tp")
int on_edge(void *ctx)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
	struct cpu_state *st = this_cpu_state();
	__u64 now = bpf_ktime_get_ns(), window = edge_window, edge = (window + 1) * interval_ns;

	__u32 outcome = EDGE_REPEAT;

	if (!st)
		return -1;
	if (debug_on)
		st->dbg_edge_runs++;
	if (st->edge_done < window) {
		__u64 value = 0;

		if (t->pid == 0)
			outcome = EDGE_IDLE;
		else if (st->tid != t->pid)
			outcome = EDGE_OTHER;
		else if (st->in_ns >= edge)
			outcome = EDGE_AFTER;
		else if (edge > now)
			outcome = EDGE_EARLY;
		else
			outcome = EDGE_RECORDED;
		if (outcome == EDGE_RECORDED) {
			value = total_at_edge(t, st, edge);
			record_in(t, window % 3, value, PATH_EDGE);
		} else if (outcome == EDGE_OTHER && edge <= now && unseen_total_at_edge(t, st, edge, &value)) {
			record_in(t, window % 3, value, PATH_EDGE);
			outcome = EDGE_UNSEEN;
		}
		st->edge_done = window;
		if (debug_on) {
			st->dbg_edge_value = value;
			st->dbg_edge_window = window;
			st->dbg_edge_now = now;
			st->dbg_edge_in = st->in_ns;
			st->dbg_edge_cur = t->pid;
			st->dbg_edge_tid = st->tid;
		}
	}
	if (debug_on)
		st->dbg_edge_outcome = outcome;
	/*
	 * A task whose switch-in was not seen (or on the CPU since before the switch program
	 * attached) starts now, with its total now: from its own fields as above, else as of its
	 * last tick (a tick short at most, which its next exact record makes up). The rq's clock
	 * now is as old as its last update, so the pair of clocks is carried over from the state's
	 * last switch when there is one.
	 */
	if (t->pid != 0 && st->tid != t->pid) {
		const struct rq *rq = rq_of(t);
		__u64 total_now;

		if (!unseen_total_at_edge(t, st, now, &total_now))
			total_now = t->se.sum_exec_runtime;
		if (rq) {
			__u64 unrun = rq->clock - rq->clock_task;

			st->clock_in = st->clock_in != 0 ? st->clock_in + (now - st->in_ns) : rq->clock;
			st->unrun_in = unrun;
		} else {
			st->clock_in = 0;
		}
		st->in_ns = now;
		st->total_in = total_now;
		st->tid = t->pid;
	}
	/* The CPU it ran on: the loader checks that it is the one it asked for. */
	return (int)bpf_get_smp_processor_id();
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
