// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager_handler_params.wake: UPAGER_WAKE_ALL (the default) wakes every
 * idle worker at a fault, UPAGER_WAKE_ONE one of them.  Two workers
 * serve a reader that takes one fault every millisecond, so that both
 * are asleep in epoll_wait() when each fault comes; each worker a fault
 * wakes sleeps again after it, one voluntary context switch.  Counted
 * over the faults: about two per fault when all are woken, about one
 * when one is, in the same run; every page read right either way.  A
 * value past the last policy is refused.
 * upager_handler_params.pin_workers: each worker runs on one CPU, in
 * turn over the CPUs the starting thread may use (all of them, then
 * one); without it, on all of them.  The pinned workers serve faults.
 */
#include <sched.h>

#include "tstore.h"

#define PG 4096
#define NPAGES 200

/*
 * The CPUs each of the @n threads @tid may run on, into @cpus: one
 * CPU's number, or -1 for more than one.
 */
static void worker_cpus(const pid_t *tid, int n, int *cpus)
{
	for (int i = 0; i < n; i++) {
		cpu_set_t set;

		CHECK(sched_getaffinity(tid[i], sizeof(set), &set) == 0,
		      "sched_getaffinity: %s", strerror(errno));
		cpus[i] = -1;
		for (int c = 0; CPU_COUNT(&set) == 1 && c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &set))
				cpus[i] = c;
	}
}

/*
 * Two workers started by a thread that may run on @allowed (@pin or
 * not): each pinned to one CPU of it, in turn; or free.  They serve.
 */
static void pinned(struct upager_store *s, const cpu_set_t *allowed,
		   bool pin)
{
	struct upager_handler_params hp = { .size = sizeof(hp),
					    .threads = 2,
					    .pin_workers = pin };
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = (size_t)-1 };
	int n = CPU_COUNT(allowed), first = -1, second = -1, cpus[2], err;
	struct upager_region *r;
	struct upager_handler *h;
	cpu_set_t old;
	pid_t tid[2];
	char *p;

	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, allowed)) {
			if (first < 0)
				first = c;
			else if (second < 0)
				second = c;
		}
	CHECK(sched_getaffinity(0, sizeof(old), &old) == 0,
	      "sched_getaffinity: %s", strerror(errno));
	CHECK(sched_setaffinity(0, sizeof(*allowed), allowed) == 0,
	      "sched_setaffinity: %s", strerror(errno));
	h = upager_handler_new(&hp, &err);
	CHECK(h, "handler: %s", strerror(-err));
	p = upager_map(h, s, NPAGES * PG, &mp, &r, &err);
	CHECK(p, "map: %s", strerror(-err));
	CHECK(t_start_workers(h, tid, 2) == 2, "not two workers");
	CHECK(sched_setaffinity(0, sizeof(old), &old) == 0,
	      "sched_setaffinity: %s", strerror(errno));
	worker_cpus(tid, 2, cpus);
	printf("%s, %d CPU(s) allowed: the workers on CPU %d and %d "
	       "(-1: more than one)\n", pin ? "pinned" : "not pinned", n,
	       cpus[0], cpus[1]);
	if (!pin && n > 1)
		CHECK(cpus[0] < 0 && cpus[1] < 0, "not pinned, yet a worker "
		      "runs on one CPU (%d, %d)", cpus[0], cpus[1]);
	else if (pin)
		CHECK(cpus[0] == first && cpus[1] == (n > 1 ? second : first),
		      "pinned on %d and %d, want %d and %d", cpus[0], cpus[1],
		      first, n > 1 ? second : first);
	for (size_t i = 0; i < NPAGES; i++)
		CHECK(t_verify(p + i * PG, PG, i), "%s: page %zu",
		      pin ? "pinned" : "not pinned", i);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
}

int main(void)
{
	struct upager_handler_params hp = { .size = sizeof(hp),
					    .wake = UPAGER_WAKE_ONE + 1 };
	struct upager_store *s;
	struct upager_handler *h;
	cpu_set_t allowed;
	double all, one;
	int err = 0;

	t_deadline(60, "wake did not finish");
	h = upager_handler_new(&hp, &err);
	CHECK(!h && err == -EINVAL, "wake %d: %s, want EINVAL",
	      (int)hp.wake, h ? "accepted" : strerror(-err));

	s = upager_store_mem_new(NPAGES * PG, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	for (size_t i = 0; i < NPAGES; i++)
		t_fill((char *)upager_store_mem_data(s) + i * PG, PG, i);
	CHECK(sched_getaffinity(0, sizeof(allowed), &allowed) == 0,
	      "sched_getaffinity: %s", strerror(errno));
	pinned(s, &allowed, true);
	pinned(s, &allowed, false);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &allowed)) {
			CPU_ZERO(&allowed);
			CPU_SET(c, &allowed);
			break;
		}
	pinned(s, &allowed, true);
	/* Two workers, a fault every millisecond. */
	hp = (struct upager_handler_params){ .size = sizeof(hp),
					     .threads = 2 };
	all = t_sleeps_per_fault(s, NPAGES, &hp, 1000, "wake all");
	hp.wake = UPAGER_WAKE_ONE;
	one = t_sleeps_per_fault(s, NPAGES, &hp, 1000, "wake one");
	printf("the workers' sleeps per fault: %.3f waking all, %.3f waking "
	       "one\n", all, one);
	CHECK(one > 0.8, "waking one, the workers slept on %.3f of the "
	      "faults: the measure is broken", one);
	CHECK(one < 1.3, "waking one, the workers slept %.3f times a fault",
	      one);
	CHECK(all > 1.6, "waking all, the workers slept %.3f times a fault "
	      "(waking one: %.3f)", all, one);
	upager_store_close(s);
	t_deadline(0, NULL);
	return 0;
}
