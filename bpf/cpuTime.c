// SPDX-License-Identifier: MIT
/*
 * Loader of bpf/cpuTime.bpf.c. Prints what `bpftrace -f json bpf/cpuTime.bt` prints, line for
 * line, so collectors/cpu reads either program with the same parser:
 *
 *   cpuTime INTERVAL_MS TICK_MS FLUSH_HZ [MAP_KEYS_MAX]
 *   cpuTime --noop      (benchmark floor: a no-op tp_btf/sched_switch program, nothing printed
 *                        but one "noop_attached" printf line)
 *
 * At each window's end it runs the edge flush (on_edge on every CPU), then prints the window's
 * map set as {"type": "map", ...} lines (empty maps are left out, as bpftrace does), then the
 * printf line "cpu_window SLOT NOW" (woken late, it does so for each ended window whose set is
 * not written again yet, oldest first). FLUSH_HZ is the periodic flush's rate, used only where the
 * kernel cannot run the edge flush (before 5.10). At exit: every set, then
 * "cpu_end NOW". It exits on SIGTERM/SIGINT, on EOF of a stdin pipe, when its parent dies and
 * when stdout is closed; the kernel detaches the programs when the process goes, however it goes.
 * Exit 2 = bad arguments, 1 = could not load or attach.
 *
 * Test only: OFFLOADCAGE_TEST_EDGE_DELAY_MS=N makes it flush and print each window N ms after
 * its end (0 to 10000), as a loader the scheduler wakes late would; the windows must not change.
 * OFFLOADCAGE_TEST_EDGE_DEBUG=COMM prints, after each window, one stderr line per CPU saying
 * what the edge flush and the switches spanning the edge recorded there ("cpuTime debug: ..."),
 * and every run-time record of the threads named COMM ("cpuTime trace: ...").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "cpuTime.skel.h"
#include "cpuState.h"

#define USAGE "usage: cpuTime INTERVAL_MS TICK_MS FLUSH_HZ [MAP_KEYS_MAX] | cpuTime --noop"

struct thread_key {
	__u32 pid;
	__u32 tid;
};

struct map_set {
	const char *name;
	struct bpf_map *map;
	int thread_key; /* key is struct thread_key ("pid,tid"), else a __u32 tid */
};

static volatile sig_atomic_t stop_signal;
static unsigned long map_keys_max = 16384;
static void *batch_keys, *batch_values;
/* Cleared when the kernel refuses batch ops on hash maps (before 5.6): then one key at a time. */
static int batch_ok = 1;
static int edge_debug;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static unsigned long parse_uint(const char *text, const char *name, unsigned long min, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || v < min || v > max) {
		fprintf(stderr, "cpuTime: %s must be an integer from %lu to %lu, got \"%s\"\n%s\n", name, min, max, text, USAGE);
		exit(2);
	}
	return v;
}

static unsigned long long monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* bpf_ktime_get_ns() is CLOCK_MONOTONIC too */
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

static void print_entry(const struct map_set *m, const void *key, __u64 value, int *first)
{
	printf(*first ? "{\"type\": \"map\", \"data\": {\"%s\": {" : ", ", m->name);
	*first = 0;
	if (m->thread_key) {
		const struct thread_key *k = key;
		printf("\"%u,%u\": %llu", k->pid, k->tid, (unsigned long long)value);
	} else {
		printf("\"%u\": %llu", *(const __u32 *)key, (unsigned long long)value);
	}
}

/*
 * Prints one map and empties it. Nothing writes this set while it is read (the probes moved to
 * the next set at least one window ago), so reading and deleting in one pass loses nothing.
 */
static void print_and_clear(const struct map_set *m)
{
	int fd = bpf_map__fd(m->map);
	size_t key_size = bpf_map__key_size(m->map);
	int first = 1;

	if (batch_ok) {
		__u32 in_batch, out_batch;
		void *in = NULL;
		int done = 0;

		while (!done) {
			/* count = the map's capacity: a hash bucket never holds more (no ENOSPC). */
			__u32 count = (__u32)map_keys_max;
			int err = bpf_map_lookup_and_delete_batch(fd, in, &out_batch, batch_keys, batch_values, &count, NULL);

			if (err < 0 && errno != ENOENT) {
				if (in == NULL && (errno == EINVAL || errno == ENOTSUP || errno == EOPNOTSUPP)) {
					batch_ok = 0;
					break;
				}
				fprintf(stderr, "cpuTime: reading %s failed: %s\n", m->name, strerror(errno));
				break;
			}
			for (__u32 i = 0; i < count; i++)
				print_entry(m, (char *)batch_keys + i * key_size, ((__u64 *)batch_values)[i], &first);
			done = err < 0; /* ENOENT: that was the last bucket */
			in_batch = out_batch;
			in = &in_batch;
		}
	}
	if (!batch_ok) {
		struct thread_key key; /* the larger of the two key types */
		__u64 value;

		while (bpf_map_get_next_key(fd, NULL, &key) == 0) {
			if (bpf_map_lookup_elem(fd, &key, &value) == 0)
				print_entry(m, &key, value, &first);
			bpf_map_delete_elem(fd, &key);
		}
	}
	if (!first)
		printf("}}}\n");
}

static void print_set(const struct map_set sets[9], unsigned long long set)
{
	print_and_clear(&sets[set]);     /* fork */
	print_and_clear(&sets[3 + set]); /* run */
	print_and_clear(&sets[6 + set]); /* exit */
}

/*
 * The edge flush of `window`: runs on_edge on every CPU, each in an IPI there, so each CPU's
 * running task is recorded in that window's set with its total at the window's end. Once this
 * returns no probe writes that set (on_edge marks each CPU done). Returns 0 when the kernel
 * cannot run a program on a chosen CPU (before 5.10): the caller then falls back to the
 * periodic flush.
 */
static int flush_edge(struct cpu_time_bpf *skel, unsigned long long window, int cpus)
{
	int fd = bpf_program__fd(skel->progs.on_edge);

	if (cpus <= 0) {
		fprintf(stderr, "cpuTime: cannot count this machine's CPUs (%s): using the periodic flush, windows take a running task's time up to one flush period late\n", strerror(-cpus));
		return 0;
	}
	skel->bss->edge_window = window;
	for (int cpu = 0; cpu < cpus; cpu++) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .flags = BPF_F_TEST_RUN_ON_CPU, .cpu = (__u32)cpu);

		if (bpf_prog_test_run_opts(fd, &opts) == 0) {
			if (opts.retval != (__u32)cpu)
				fprintf(stderr, "cpuTime: the edge flush of window %llu asked for CPU %d ran on CPU %d\n", window, cpu, (int)opts.retval);
			continue;
		}
		if (errno == ENXIO) /* that CPU is offline */
			continue;
		fprintf(stderr, "cpuTime: the edge flush cannot run on CPU %d (%s): using the periodic flush, windows take a running task's time up to one flush period late\n", cpu, strerror(errno));
		return 0;
	}
	return 1;
}

static const char *outcome_name(__u32 outcome)
{
	static const char *const names[] = { "none", "recorded", "idle", "other", "after", "early", "repeat", "unseen" };

	return outcome < sizeof(names) / sizeof(names[0]) ? names[outcome] : "?";
}

static long long since(__u64 t, unsigned long long edge)
{
	return t == 0 ? 0 : (long long)(t - edge);
}

/*
 * Debug mode: per CPU, what window `window`'s edge records came from (times in ns from the
 * edge), and the switch program's recursion misses (a switch it did not see).
 */
static void print_debug(struct cpu_time_bpf *skel, unsigned long long window, unsigned long long interval_ns, unsigned long long woke_ns)
{
	int cpus = libbpf_num_possible_cpus();
	size_t size = (sizeof(struct cpu_state) + 7) / 8 * 8;
	__u32 zero = 0;
	unsigned long long edge = (window + 1) * interval_ns;
	struct bpf_prog_info info;
	__u32 info_len = sizeof(info);
	char *values;

	if (cpus <= 0 || (values = calloc((size_t)cpus, size)) == NULL)
		return;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(bpf_program__fd(skel->progs.on_switch), &info, &info_len) != 0)
		info.recursion_misses = ~0ULL;
	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.cpu_state), &zero, values) == 0) {
		for (int cpu = 0; cpu < cpus; cpu++) {
			const struct cpu_state *s = (const void *)(values + (size_t)cpu * size);

			fprintf(stderr, "cpuTime debug: window %llu woke %lld cpu %d edge %s w%llu cur %u state %u in %lld now %lld value %llu"
				" | span %u w%llu in %lld now %lld value %llu"
				" | runs %llu spans %llu misses %llu | unseen %llu prev %u state %u in %lld now %lld\n",
				window, (long long)(woke_ns - edge), cpu, outcome_name(s->dbg_edge_outcome), (unsigned long long)s->dbg_edge_window,
				s->dbg_edge_cur, s->dbg_edge_tid, since(s->dbg_edge_in, edge), since(s->dbg_edge_now, edge),
				(unsigned long long)s->dbg_edge_value,
				s->dbg_span_tid, (unsigned long long)s->dbg_span_window, since(s->dbg_span_in, edge), since(s->dbg_span_now, edge),
				(unsigned long long)s->dbg_span_value,
				(unsigned long long)s->dbg_edge_runs, (unsigned long long)s->dbg_spans,
				(unsigned long long)info.recursion_misses,
				(unsigned long long)s->dbg_unseen, s->dbg_unseen_prev, s->dbg_unseen_state, since(s->dbg_unseen_in, edge), since(s->dbg_unseen_now, edge));
		}
	}
	free(values);
}

/* A ring buffer callback: ctx is the window length in ns. */
static int print_trace(void *ctx, void *data, size_t size)
{
	const struct record_trace *r = data;
	static const char *const paths[] = { "?", "switch", "span", "edge", "flush", "in" };
	const unsigned long long interval_ns = *(const unsigned long long *)ctx;

	if (size < sizeof(*r))
		return 0;
	fprintf(stderr, "cpuTime trace: window %llu +%llu cpu %u tid %u %s set %llu value %llu err %lld | state %u in %lld done %llu\n",
		(unsigned long long)(r->now / interval_ns), (unsigned long long)(r->now % interval_ns), r->cpu, r->tid,
		r->path < sizeof(paths) / sizeof(paths[0]) ? paths[r->path] : "?", (unsigned long long)r->set,
		(unsigned long long)r->value, (long long)r->err, r->st_tid, (long long)(r->st_in - r->now), (unsigned long long)r->st_done);
	return 0;
}

/* One cpu-clock perf event per CPU, as bpftrace's profile:hz: the flush program runs on each. */
static int attach_flush(struct bpf_program *prog, unsigned long hz, struct bpf_link ***links, int *n_links)
{
	int cpus = libbpf_num_possible_cpus();

	if (cpus <= 0) {
		fprintf(stderr, "cpuTime: cannot count the CPUs: %s\n", strerror(-cpus));
		return -1;
	}
	*links = calloc((size_t)cpus, sizeof(**links));
	if (*links == NULL)
		return -1;
	for (int cpu = 0; cpu < cpus; cpu++) {
		struct perf_event_attr attr = {
			.type = PERF_TYPE_SOFTWARE,
			.config = PERF_COUNT_SW_CPU_CLOCK,
			.size = sizeof(attr),
			.freq = 1,
			.sample_freq = hz,
		};
		int pfd = (int)syscall(SYS_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
		struct bpf_link *link;

		if (pfd < 0) {
			if (errno == ENODEV) /* a possible CPU that is offline */
				continue;
			fprintf(stderr, "cpuTime: perf_event_open on CPU %d failed: %s\n", cpu, strerror(errno));
			return -1;
		}
		link = bpf_program__attach_perf_event(prog, pfd);
		if (link == NULL) {
			fprintf(stderr, "cpuTime: attaching the flush program on CPU %d failed: %s\n", cpu, strerror(errno));
			close(pfd);
			return -1;
		}
		(*links)[(*n_links)++] = link; /* destroying the link closes pfd */
	}
	return 0;
}

/* True while the parent is there and stdin (if it is a pipe) is open. */
static int wait_until(unsigned long long deadline_ns, int watch_stdin, const sigset_t *unblocked)
{
	unsigned long long now = monotonic_ns();
	unsigned long long left = deadline_ns > now ? deadline_ns - now : 0;
	struct timespec timeout = { .tv_sec = (time_t)(left / 1000000000ULL), .tv_nsec = (long)(left % 1000000000ULL) };
	struct pollfd fds[1] = { { .fd = 0, .events = POLLIN } };

	/* ppoll with the stop signals unblocked only inside it: a signal is never missed between checks. */
	if (ppoll(fds, watch_stdin ? 1 : 0, &timeout, unblocked) > 0) {
		char buf[256];

		if (fds[0].revents & (POLLHUP | POLLERR | POLLNVAL))
			return 0;
		if (read(0, buf, sizeof(buf)) <= 0)
			return 0;
	}
	return stop_signal == 0;
}

int main(int argc, char **argv)
{
	int noop = argc == 2 && strcmp(argv[1], "--noop") == 0;
	unsigned long interval_ms = 0, flush_hz = 0, edge_delay_ms = 0;
	const char *edge_delay = getenv("OFFLOADCAGE_TEST_EDGE_DELAY_MS");
	const char *debug = getenv("OFFLOADCAGE_TEST_EDGE_DEBUG");
	struct cpu_time_bpf *skel;
	struct bpf_link **flush_links = NULL;
	int n_flush_links = 0, watch_stdin, err;
	struct stat st;
	sigset_t stop_set, unblocked;
	struct sigaction sa = { .sa_handler = on_signal };

	if (!noop) {
		if (argc < 4 || argc > 5) {
			fprintf(stderr, "cpuTime: expected 3 or 4 arguments, got %d\n%s\n", argc - 1, USAGE);
			return 2;
		}
		interval_ms = parse_uint(argv[1], "INTERVAL_MS", 1, 3600000);
		parse_uint(argv[2], "TICK_MS", 1, 3600000); /* bpftrace's tick; windows here wake at their end */
		flush_hz = parse_uint(argv[3], "FLUSH_HZ", 1, 10000);
		if (argc == 5)
			map_keys_max = parse_uint(argv[4], "MAP_KEYS_MAX", 16, 4194304);
		if (edge_delay != NULL)
			edge_delay_ms = parse_uint(edge_delay, "OFFLOADCAGE_TEST_EDGE_DELAY_MS", 0, 10000);
		if (debug != NULL && debug[0] != '\0') {
			if (strlen(debug) > 15) {
				fprintf(stderr, "cpuTime: OFFLOADCAGE_TEST_EDGE_DEBUG must be a thread name of 1 to 15 characters, got \"%s\"\n", debug);
				return 2;
			}
			edge_debug = 1;
		}
	}
	const unsigned long long interval_ns = (unsigned long long)interval_ms * 1000000ULL;

	/* A dying parent (even SIGKILLed) sends us SIGTERM; one that died before this line is caught by the check. */
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGTERM);
	sigaddset(&stop_set, SIGINT);
	sigprocmask(SIG_BLOCK, &stop_set, &unblocked);
	sigdelset(&unblocked, SIGTERM);
	sigdelset(&unblocked, SIGINT);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN); /* a closed stdout shows up as a write error instead */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() == 1) {
		fprintf(stderr, "cpuTime: its parent is already gone (or PR_SET_PDEATHSIG failed): not starting\n");
		return 1;
	}
	/* /dev/null or a terminal as stdin is not a stop request; a pipe's EOF is. */
	watch_stdin = fstat(0, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);

	skel = cpu_time_bpf__open();
	if (skel == NULL) {
		fprintf(stderr, "cpuTime: cannot open the BPF object: %s\n", strerror(errno));
		return 1;
	}
	struct map_set sets[9] = {
		{ "@fork0", skel->maps.fork0, 0 }, { "@fork1", skel->maps.fork1, 0 }, { "@fork2", skel->maps.fork2, 0 },
		{ "@run0", skel->maps.run0, 1 },   { "@run1", skel->maps.run1, 1 },   { "@run2", skel->maps.run2, 1 },
		{ "@exit0", skel->maps.exit0, 1 }, { "@exit1", skel->maps.exit1, 1 }, { "@exit2", skel->maps.exit2, 1 },
	};
	for (int i = 0; i < 9; i++)
		bpf_map__set_max_entries(sets[i].map, noop ? 1 : (__u32)map_keys_max);
	skel->rodata->interval_ns = interval_ns;
	if (edge_debug) {
		skel->rodata->debug_on = 1;
		memcpy((char *)skel->rodata->debug_comm, debug, strlen(debug));
	} else {
		bpf_map__set_max_entries(skel->maps.debug_trace, 4096); /* the smallest ring: unused */
	}
	bpf_program__set_autoload(skel->progs.noop_switch, noop);
	bpf_program__set_autoload(skel->progs.on_switch, !noop);
	bpf_program__set_autoload(skel->progs.on_flush, !noop);
	bpf_program__set_autoload(skel->progs.on_fork, !noop);
	bpf_program__set_autoload(skel->progs.on_exit, !noop);
	bpf_program__set_autoload(skel->progs.on_edge, !noop);
	bpf_program__set_autoattach(skel->progs.on_edge, 0); /* run by flush_edge, never attached */
	err = cpu_time_bpf__load(skel);
	if (err) {
		fprintf(stderr, "cpuTime: cannot load the BPF programs: %s\n", strerror(-err));
		cpu_time_bpf__destroy(skel);
		return 1;
	}
	if (noop) {
		skel->links.noop_switch = bpf_program__attach(skel->progs.noop_switch);
		err = skel->links.noop_switch == NULL ? -errno : 0;
	} else {
		/* Before the switch program runs: a switch then records the edges it spans. */
		skel->bss->edges_on = 1;
		/* perf_event programs are not attached by the skeleton: they need one perf event per CPU. */
		err = cpu_time_bpf__attach(skel);
		/* The first edge flush runs at once (the window that was under way at the start): it tells whether it can. */
		if (err == 0 && !flush_edge(skel, monotonic_ns() / interval_ns - 1, libbpf_num_possible_cpus())) {
			skel->bss->edges_on = 0;
			if (attach_flush(skel->progs.on_flush, flush_hz, &flush_links, &n_flush_links) != 0)
				err = -1;
		}
	}
	if (err) {
		if (err != -1)
			fprintf(stderr, "cpuTime: cannot attach the BPF programs: %s\n", strerror(-err));
		for (int i = 0; i < n_flush_links; i++)
			bpf_link__destroy(flush_links[i]);
		cpu_time_bpf__destroy(skel);
		return 1;
	}

	if (noop) {
		printf("{\"type\": \"printf\", \"data\": \"noop_attached\\n\"}\n");
		fflush(stdout);
		while (wait_until(ULLONG_MAX, watch_stdin, &unblocked))
			;
		cpu_time_bpf__destroy(skel);
		return 0;
	}

	batch_keys = calloc(map_keys_max, sizeof(struct thread_key));
	batch_values = calloc(map_keys_max, sizeof(__u64));
	if (batch_keys == NULL || batch_values == NULL) {
		fprintf(stderr, "cpuTime: out of memory for %lu map entries\n", map_keys_max);
		return 1;
	}
	printf("{\"type\": \"attached_probes\", \"data\": {\"probes\": %d}}\n", 3 + n_flush_links);
	fflush(stdout);

	unsigned long long delay_ns = (unsigned long long)edge_delay_ms * 1000000ULL;
	unsigned long long printed = 0;
	int running = 1, cpus = libbpf_num_possible_cpus();
	struct ring_buffer *traces = edge_debug ? ring_buffer__new(bpf_map__fd(skel->maps.debug_trace), print_trace, (void *)&interval_ns, NULL) : NULL;

	/* The window under way at the start was flushed above; its set is the first one printed. */
	printed = monotonic_ns() / interval_ns - 2;
	while (running) {
		unsigned long long now = monotonic_ns();
		unsigned long long done = (now - delay_ns) / interval_ns - 1;
		/*
		 * Woken more than a window late, every ended window whose set is not written again
		 * yet (the two before the current one) is flushed and printed in turn; an older one
		 * shares its set with the current window and is left to it (the reader sees the gap).
		 */
		unsigned long long first = now / interval_ns - 2;
		int out = 0;

		if (first <= printed)
			first = printed + 1;
		for (unsigned long long w = first; w <= done && !out; w++) {
			printed = w;
			/*
			 * Its set is written again from window w + 3 on: a window that close to it (a
			 * loader stalled since its wake-up) is left to it as an older one is.
			 */
			if (monotonic_ns() + interval_ns / 2 > (w + 3) * interval_ns)
				continue;
			if (skel->bss->edges_on && !flush_edge(skel, w, cpus)) {
				/* Stop the switches' edge records first: no set already read is written again. */
				skel->bss->edges_on = 0;
				if (attach_flush(skel->progs.on_flush, flush_hz, &flush_links, &n_flush_links) != 0) {
					out = 1;
					break;
				}
			}
			print_set(sets, w % 3);
			/* NOW is when the set was read, as bpftrace's is when it printed it. */
			printf("{\"type\": \"printf\", \"data\": \"cpu_window %llu %llu\\n\"}\n", w, monotonic_ns());
			if (edge_debug) {
				if (traces)
					ring_buffer__consume(traces);
				fprintf(stderr, "cpuTime trace: window %llu +%llu loader read set %llu of window %llu\n", monotonic_ns() / interval_ns, monotonic_ns() % interval_ns, w % 3, w);
				print_debug(skel, w, interval_ns, now);
			}
			if (fflush(stdout) != 0)
				out = 1; /* nobody reads us any more */
		}
		if (out)
			break;
		/* Wake when the current window ends: it is then printed at once. */
		running = wait_until(((now - delay_ns) / interval_ns + 1) * interval_ns + delay_ns, watch_stdin, &unblocked);
	}

	/* As bpftrace's END: detach first, so every set is final, then print them all. */
	cpu_time_bpf__detach(skel);
	ring_buffer__free(traces);
	for (int i = 0; i < n_flush_links; i++)
		bpf_link__destroy(flush_links[i]);
	for (int i = 0; i < 9; i++)
		print_and_clear(&sets[i]);
	printf("{\"type\": \"printf\", \"data\": \"cpu_end %llu\\n\"}\n", monotonic_ns());
	fflush(stdout);
	cpu_time_bpf__destroy(skel);
	free(flush_links);
	free(batch_keys);
	free(batch_values);
	return 0;
}
