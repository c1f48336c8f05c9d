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
#include "tstore.h"

#define PG 4096
#define NPAGES 256

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
	/* One worker, a fault every 0.5 ms. */
	hp = (struct upager_handler_params){ .size = sizeof(hp),
					     .threads = 1 };
	sleep0 = t_sleeps_per_fault(s, NPAGES, &hp, 500, "poll_us 0");
	hp.poll_us = 10000;
	sleep10 = t_sleeps_per_fault(s, NPAGES, &hp, 500, "poll_us 10000");
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
