/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The CPU program's per-CPU state (bpf/cpuTime.bpf.c), shared with its loader (bpf/cpuTime.c),
 * which reads the debug fields in its debug mode.
 */
#ifndef OFFLOADCAGE_CPU_STATE_H
#define OFFLOADCAGE_CPU_STATE_H

#include <linux/types.h>

/* Per CPU: the task switched in last, when, its total then, its rq's clocks then, and the last edge flushed here. */
struct cpu_state {
	__u64 in_ns;     /* bpf_ktime_get_ns() at the switch-in */
	__u64 total_in;  /* its se.sum_exec_runtime then (exact: it is not running yet) */
	__u64 clock_in;  /* rq->clock then (schedule() has just updated it), 0 when unknown */
	__u64 unrun_in;  /* rq->clock - rq->clock_task then */
	__u64 edge_done; /* the last window on_edge ran for on this CPU */
	__u32 tid;
	/*
	 * What the edge records here came from, written and printed only in the loader's debug mode
	 * (OFFLOADCAGE_TEST_EDGE_DEBUG): a window recorded short is then traced to its path.
	 */
	__u32 dbg_edge_outcome; /* enum edge_outcome of the last on_edge run here */
	__u32 dbg_edge_cur;     /* the task on_edge interrupted */
	__u32 dbg_edge_tid;     /* the state's task then */
	__u32 dbg_span_tid;     /* the task of the last spanning switch recorded here */
	__u64 dbg_edge_window, dbg_edge_now, dbg_edge_in, dbg_edge_value;
	__u64 dbg_span_window, dbg_span_now, dbg_span_in, dbg_span_value;
	__u64 dbg_edge_runs, dbg_spans;
	/* Switches whose prev is not the task the state holds: a switch-in the program did not see. */
	__u64 dbg_unseen, dbg_unseen_now, dbg_unseen_in;
	__u32 dbg_unseen_prev, dbg_unseen_state;
};

enum edge_outcome {
	EDGE_RECORDED = 1,  /* the task across the edge, with its total at the edge */
	EDGE_IDLE,          /* the idle task was running */
	EDGE_OTHER,         /* the state's task is not the running one */
	EDGE_AFTER,         /* the running task was switched in after the edge */
	EDGE_EARLY,         /* run before the edge (now < edge) */
	EDGE_REPEAT,        /* already run here for this window */
	EDGE_UNSEEN,        /* recorded, the running task's switch-in unseen (from its own fields) */
};

/* Debug mode: one run-time record of a traced thread (the ring buffer debug_trace). */
struct record_trace {
	__u64 now;   /* bpf_ktime_get_ns() of the record */
	__u64 set;   /* the window set written */
	__u64 value; /* the total recorded */
	__s64 err;   /* the map update's result (0: stored) */
	__u32 tid;
	__u32 path;  /* enum record_path */
	__u32 cpu;
	__u32 st_tid;   /* the CPU's state at the record: its task, */
	__u64 st_in;    /* that task's switch-in, */
	__u64 st_done;  /* the last window flushed there */
};

enum record_path {
	PATH_SWITCH = 1, /* a switch-out, in the window of now */
	PATH_SPAN,       /* a switch-out, its total at the edge it spanned */
	PATH_EDGE,       /* on_edge, the total at the edge of the running task */
	PATH_FLUSH,      /* the periodic flush */
	PATH_IN,         /* a switch-in (no record; its total then) */
};

#endif
