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
 */
#include "tstore.h"

#define PG 4096
#define NPAGES 200

/* The two workers' sleeps per fault, serving NPAGES faults 1 ms apart. */
static double sleeps_per_fault(struct upager_store *s, enum upager_wake wake)
{
	struct upager_handler_params hp = { .size = sizeof(hp),
					    .threads = 2,
					    .wake = wake };

	return t_sleeps_per_fault(s, NPAGES, &hp, 1000,
				  wake == UPAGER_WAKE_ALL ? "wake all"
							  : "wake one");
}

int main(void)
{
	struct upager_handler_params hp = { .size = sizeof(hp),
					    .wake = UPAGER_WAKE_ONE + 1 };
	struct upager_store *s;
	struct upager_handler *h;
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
	all = sleeps_per_fault(s, UPAGER_WAKE_ALL);
	one = sleeps_per_fault(s, UPAGER_WAKE_ONE);
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
