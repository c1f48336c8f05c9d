// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager_handler_params.poll_us: a worker that polls keeps looking for
 * the next fault instead of sleeping, so faults that come within the
 * window cost it no sleep.  A reader takes one fault every half
 * millisecond; the worker's voluntary context switches (a sleep in
 * epoll_wait() is one; a preemption is not) are counted against a
 * worker that does not poll, in the same run: every page read right
 * either way, and the polling worker (10 ms window) sleeps on fewer than
 * half the faults the other sleeps on.  A value above the limit is
 * refused, and a polling handler stops at once.
 */
#include <dirent.h>
#include <sys/mman.h>

#include "tstore.h"

#define PG 4096
#define NPAGES 256

/* The thread upager_handler_start() added to the process. */
static pid_t start_one_worker(struct upager_handler *h)
{
	pid_t before[64], found = 0;
	int nb = 0;
	struct dirent *e;
	DIR *d = opendir("/proc/self/task");

	CHECK(d, "/proc/self/task");
	while ((e = readdir(d)) && nb < 64)
		if (e->d_name[0] != '.')
			before[nb++] = (pid_t)atoi(e->d_name);
	CHECK_RET(upager_handler_start(h), 0);
	rewinddir(d);
	while ((e = readdir(d))) {
		pid_t t = e->d_name[0] != '.' ? (pid_t)atoi(e->d_name) : 0;
		int i = 0;

		while (t && i < nb && before[i] != t)
			i++;
		if (t && i == nb)
			found = t;
	}
	closedir(d);
	CHECK(found, "no worker thread appeared");
	return found;
}

static long voluntary_switches(pid_t tid)
{
	char path[64], line[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "r");
	CHECK(f, "%s", path);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	fclose(f);
	CHECK(v >= 0, "no voluntary_ctxt_switches in %s", path);
	return v;
}

/* Sleeps per fault of one worker serving NPAGES faults 0.5 ms apart. */
static double sleeps_per_fault(struct upager_store *s, unsigned int poll_us)
{
	struct upager_handler_params hp = { .size = sizeof(hp),
					    .threads = 1,
					    .poll_us = poll_us };
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = (size_t)-1 };
	struct upager_region *r;
	struct upager_handler *h;
	struct upager_stats st;
	long before;
	pid_t tid;
	int err;
	char *p;

	h = upager_handler_new(&hp, &err);
	CHECK(h, "handler (poll_us %u): %s", poll_us, strerror(-err));
	p = upager_map(h, s, NPAGES * PG, &mp, &r, &err);
	CHECK(p, "map: %s", strerror(-err));
	tid = start_one_worker(h);
	t_sleep_ms(20); /* past its start, and any first poll window */
	before = voluntary_switches(tid);
	for (size_t i = 0; i < NPAGES; i++) {
		CHECK(t_verify(p + i * PG, PG, i), "poll_us %u: page %zu",
		      poll_us, i);
		usleep(500);
	}
	before = voluntary_switches(tid) - before;
	upager_region_stats(r, &st);
	CHECK(st.faults >= NPAGES, "poll_us %u: %llu faults for %d pages",
	      poll_us, (unsigned long long)st.faults, NPAGES);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	return (double)before / (double)st.faults;
}

int main(void)
{
	struct upager_handler_params hp = { .size = sizeof(hp),
					    .poll_us = 10001 };
	struct upager_store *s;
	struct upager_handler *h;
	double sleep0, sleep10;
	uint64_t t0;
	int err = 0;

	t_deadline(60, "poll did not finish");
	h = upager_handler_new(&hp, &err);
	CHECK(!h && err == -EINVAL, "poll_us 10001: %s, want EINVAL",
	      h ? "accepted" : strerror(-err));

	/* A polling worker hears the stop while it polls. */
	hp.poll_us = 10000;
	hp.threads = 2;
	h = upager_handler_new(&hp, &err);
	CHECK(h, "handler: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	t0 = t_now_ns();
	upager_handler_free(h);
	printf("a polling handler stopped in %.2f ms\n",
	       (double)(t_now_ns() - t0) / 1e6);

	s = upager_store_mem_new(NPAGES * PG, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	for (size_t i = 0; i < NPAGES; i++)
		t_fill((char *)upager_store_mem_data(s) + i * PG, PG, i);
	sleep0 = sleeps_per_fault(s, 0);
	sleep10 = sleeps_per_fault(s, 10000);
	printf("worker sleeps per fault: %.3f without polling, %.3f polling "
	       "10 ms\n",
	       sleep0, sleep10);
	CHECK(sleep0 > 0.5, "a worker that does not poll slept on %.3f of "
	      "the faults: the measure is broken", sleep0);
	CHECK(sleep10 < sleep0 / 2, "a polling worker slept on %.3f of the "
	      "faults, one that does not on %.3f", sleep10, sleep0);
	upager_store_close(s);
	t_deadline(0, NULL);
	return 0;
}
