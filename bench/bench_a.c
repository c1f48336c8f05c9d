// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager-bench section A, 4 KiB fault latency seen from the faulting
 * thread, and D, where a fault's time goes (the kernel's per-thread
 * counters around A's runs): the kernel's first touch, a bare
 * poll/read/COPY loop, upager with 1 and 2 workers, a bare SIGBUS
 * handler, upager in-thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <upager/upager.h>

#include "bench.h"

const struct row_def a_rows[A_N] = {
	[A_KERNEL] = { "kernel", "kernel anon first touch (write)", -1 },
	[A_KERNEL_READ] = { "kernel_read",
			    "kernel anon first touch (read: zero page)",
			    A_KERNEL },
	[A_BARE] = { "bare", "bare loop: poll/read/COPY, ll only", -1 },
	[A_H1] = { "handler_1", "upager handler, mem, 1 worker", A_BARE },
	[A_H2] = { "handler_2", "upager handler, mem, 2 workers", A_BARE },
	[A_H2_ONE] = { "handler_2_one",
		       "upager handler, mem, 2 workers, wake one", A_BARE },
	[A_H2_PIN] = { "handler_2_pin",
		       "upager handler, mem, 2 workers, pinned", A_BARE },
	[A_H1_POLL] = { "handler_1_poll",
			"upager handler, mem, 1 worker, poll 50 µs", A_BARE },
	[A_BARE_SIG] = { "bare_sigbus", "bare SIGBUS handler: COPY, ll only",
			 A_KERNEL },
	[A_INTHREAD] = { "inthread", "upager in-thread (SIGBUS), mem",
			 A_KERNEL },
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of @n sorted values. */
static uint64_t percentile(const uint64_t *sorted, size_t n, double p)
{
	size_t rank = (size_t)(p / 100 * (double)n + 0.999999);

	return sorted[rank ? rank - 1 : 0];
}

/* ---- per-thread counters ------------------------------------------------ */

/* Add thread @tid's counters to @t; false if the kernel lacks one. */
static bool tstat_add(pid_t tid, struct tstat *t)
{
	char path[64], buf[4096];
	unsigned long long run, wait;
	int64_t vol, invol, syscr;

	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", (int)tid);
	if (slurp(path, buf, sizeof(buf)) <= 0 ||
	    sscanf(buf, "%llu %llu", &run, &wait) != 2)
		return false;
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	if (slurp(path, buf, sizeof(buf)) <= 0)
		return false;
	vol = field(buf, "\nvoluntary_ctxt_switches:");
	invol = field(buf, "\nnonvoluntary_ctxt_switches:");
	snprintf(path, sizeof(path), "/proc/self/task/%d/io", (int)tid);
	if (vol < 0 || invol < 0 || slurp(path, buf, sizeof(buf)) <= 0 ||
	    (syscr = field(buf, "syscr:")) < 0)
		return false;
	t->cpu_ns += run;
	t->wait_ns += wait;
	t->csw += (uint64_t)(vol + invol);
	t->syscr += (uint64_t)syscr;
	return true;
}

static void tstat_sub(struct tstat *acc, const struct tstat *end,
		      const struct tstat *start)
{
	acc->cpu_ns += end->cpu_ns - start->cpu_ns;
	acc->wait_ns += end->wait_ns - start->wait_ns;
	acc->csw += end->csw - start->csw;
	acc->syscr += end->syscr - start->syscr;
}

/* The faulting thread and the threads serving it, counted around a run. */
struct probe {
	pid_t servers[MAX_WORKERS];
	int nservers;
	struct tstat f0, s0;
	bool ok;
};

static void probe_snap(struct probe *p, struct tstat *f, struct tstat *s)
{
	memset(f, 0, sizeof(*f));
	memset(s, 0, sizeof(*s));
	p->ok &= tstat_add(gettid(), f);
	for (int i = 0; i < p->nservers; i++)
		p->ok &= tstat_add(p->servers[i], s);
}

static void probe_begin(struct probe *p)
{
	p->ok = true;
	probe_snap(p, &p->f0, &p->s0);
}

static void probe_end(struct probe *p, struct a_result *r)
{
	struct tstat f, s;

	probe_snap(p, &f, &s);
	r->counters_ok = p->ok;
	tstat_sub(&r->faulting, &f, &p->f0);
	tstat_sub(&r->server, &s, &p->s0);
	r->has_server = p->nservers > 0;
}

/* ---- A: fault latency ----------------------------------------------------- */

/* Median cost of the two clock reads around an access, in ns. */
static double timer_overhead(uint64_t *lat, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = clock_ns();

		lat[i] = clock_ns() - t0;
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	return (double)percentile(lat, n, 50);
}

/* One run of mode @m over @n pages; @round < 0: a warm-up, not kept. */
static void a_run(struct bench *b, int m, struct upager_store *s, size_t n,
		  uint64_t *lat, int round)
{
	struct a_result *res = &b->a[m];
	struct upager_stats st = { 0 };
	struct probe pr = { .nservers = 0 };
	size_t len = n * PAGE;
	const char *what = a_rows[m].id;
	struct engine e;
	struct bare bl;
	uint64_t wall, flt;
	char *base = NULL;

	switch (m) {
	case A_KERNEL:
	case A_KERNEL_READ:
		base = anon_map(what, len);
		break;
	case A_BARE:
		bare_up(&bl, upager_store_mem_data(s), NULL, len);
		base = bl.base;
		pr.servers[pr.nservers++] = (pid_t)atomic_load(&bl.tid);
		break;
	case A_H1:
	case A_H2:
	case A_H2_ONE:
	case A_H2_PIN:
	case A_H1_POLL: {
		struct upager_handler_params hp = {
			.size = sizeof(hp),
			.poll_us = m == A_H1_POLL ? A_POLL_US : 0,
			.wake = m == A_H2_ONE ? UPAGER_WAKE_ONE
					      : UPAGER_WAKE_ALL,
			.pin_workers = m == A_H2_PIN
		};

		engine_up(&e, what, s, len, m == A_H1 || m == A_H1_POLL ? 1 : 2,
			  &hp, 0, (size_t)-1, 0, 0, UPAGER_MEM_ANON);
		base = e.addr;
		memcpy(pr.servers, e.workers, sizeof(e.workers));
		pr.nservers = e.nworkers;
		break;
	}
	case A_BARE_SIG:
		base = bare_sig_up(upager_store_mem_data(s), NULL, len);
		break;
	case A_INTHREAD:
		engine_up(&e, what, s, len, 0, NULL, 0, 0, 0, UPAGER_MAP_IN_THREAD,
			  UPAGER_MEM_ANON);
		base = e.addr;
		break;
	}
	probe_begin(&pr);
	flt = minflt_self();
	wall = sweep(what, base, NULL, n,
		     m == A_KERNEL_READ ? TOUCH_READ : TOUCH_WRITE,
		     m == A_KERNEL || m == A_KERNEL_READ, lat);
	flt = minflt_self() - flt;
	if (round >= 0)
		probe_end(&pr, res);
	switch (m) {
	case A_KERNEL:
	case A_KERNEL_READ:
		munmap(base, len);
		st.faults = flt;
		break;
	case A_BARE_SIG:
		bare_sig_down();
		st.faults = n;
		break;
	case A_BARE:
		bare_down(&bl);
		st.faults = bl.copies;
		if (round >= 0) {
			res->polls += bl.polls;
			res->copies += bl.copies;
		}
		break;
	default:
		engine_down(&e, &st);
		break;
	}
	if (round < 0)
		return;
	qsort(lat, n, sizeof(*lat), cmp_u64);
	res->p50[round] = (double)percentile(lat, n, 50);
	res->p99[round] = (double)percentile(lat, n, 99);
	res->rate[round] = (double)n * 1e9 / (double)wall;
	res->accesses += n;
	res->faults += st.faults;
}

void section_a(struct bench *b)
{
	size_t n = b->o.a_pages;
	struct upager_store *s = pattern_store(n * PAGE);
	uint64_t *lat = xmalloc(n * sizeof(*lat));

	progress("[A] 4 KiB fault latency: %d modes x %u round(s) x %zu pages",
		 A_N, b->o.rounds, n);
	b->timer_ns = timer_overhead(lat, n);
	/* Untimed: code paths, the SIGBUS handler, staging buffers. */
	for (int m = 0; m < A_N; m++)
		a_run(b, m, s, n < 256 ? n : 256, lat, -1);
	/* The order rotates each round: no mode always runs first. */
	for (unsigned int r = 0; r < b->o.rounds; r++)
		for (int k = 0; k < A_N; k++)
			a_run(b, (int)(k + r) % A_N, s, n, lat, (int)r);
	free(lat);
	upager_store_close(s);
}
