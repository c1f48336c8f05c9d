// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * An evictor drops a read-only unit with MADV_DONTNEED, which waits for
 * a worker to read its REMOVE: no evictor may be in such a drop once no
 * worker reads.  Parts:
 *   unstarted  the region filled past its budget from the calling thread
 *              (upager_region_prefault()) before any worker ran: the
 *              evictor's drop waited for ever, and upager_handler_free()
 *              with it (evictors now wait for start() or run());
 *   stop       upager_handler_stop() while the evictor's REMOVE waits
 *              unread (every worker held in a fetch, let go once stop()
 *              has begun): stop() lets the evictor finish before the
 *              workers go, and upager_unmap() and upager_handler_free()
 *              return.
 * A hang fails the part after 10 s.  anon.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "tstore.h"

#define PG     4096ul
#define UNIT   (4 * PG)
#define NUNITS 64
#define BUDGET 8

static struct upager_region *ro_region(struct upager_handler *h,
				       struct upager_store **s, char **p)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = UPAGER_MEM_ANON,
					.fill = UNIT,
					.budget = BUDGET * UNIT,
					.high_water = 100,
					.evict = UPAGER_EVICT_FIFO,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	struct upager_region *r;
	int err;

	*s = upager_store_mem_new(NUNITS * UNIT, &err);
	CHECK(*s, "mem store: %s", strerror(-err));
	*p = upager_map(h, *s, NUNITS * UNIT, &mp, &r, &err);
	if (!*p && err == -EOPNOTSUPP)
		SKIP("a budget on anon: %s", strerror(-err));
	CHECK(*p, "map: %s", strerror(-err));
	CHECK(!mprotect(*p, NUNITS * UNIT, PROT_READ), "mprotect");
	return r;
}

static void unstarted(void)
{
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_region *r;
	struct upager_store *s;
	char *p;

	r = ro_region(h, &s, &p);
	/* No worker yet: the units fill in this thread. */
	CHECK_RET(upager_region_prefault(r, 0, NUNITS * UNIT), 0);
	t_sleep_ms(200); /* time for an evictor to start a drop */
	t_deadline(10, "unstarted: upager_handler_free() hung");
	upager_handler_free(h);
	t_deadline(0, NULL);
	upager_store_close(s);
	fprintf(stderr, "unstarted: ok\n");
}

static void *stopper_main(void *arg)
{
	CHECK_RET(upager_handler_stop(arg), 0);
	return NULL;
}

static void stop(void)
{
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_region *r;
	struct upager_store *s;
	struct occupied o;
	pthread_t stopper;
	pid_t evictor;
	char *p;

	r = ro_region(h, &s, &p);
	CHECK(t_threads_named("upager-evict0", &evictor) == 1, "no evictor");
	CHECK_RET(upager_handler_start(h), 0);
	for (size_t u = 0; u < BUDGET; u++)
		(void)*(volatile char *)(p + u * UNIT);
	t_wait_resident(r, BUDGET * UNIT, BUDGET * UNIT, 5000);
	occupy(&o, h, UPAGER_MEM_ANON, 2);
	/* Past the budget: the evictor's REMOVE of unit 0 waits unread. */
	CHECK_RET(upager_region_prefault(r, BUDGET * UNIT, UNIT), 0);
	for (int ms = 0; !t_wchan_is(evictor, "userfaultfd_event_wait_completion");
	     ms++) {
		if (ms == 5000 && t_wchan_is(evictor, "0"))
			SKIP("/proc wchan gives no function names");
		CHECK(ms < 5000, "the evictor never waited for its REMOVE");
		t_sleep_ms(1);
	}
	t_deadline(10, "stop: upager_handler_stop() hung");
	CHECK(!pthread_create(&stopper, NULL, stopper_main, h),
	      "pthread_create");
	t_sleep_ms(50); /* stop() has begun */
	vacate(&o);
	CHECK(!pthread_join(stopper, NULL), "pthread_join");
	t_deadline(10, "stop: upager_unmap() or upager_handler_free() hung");
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	t_deadline(0, NULL);
	upager_store_close(s);
	fprintf(stderr, "stop: ok\n");
}

int main(int argc, char **argv)
{
	static const struct t_plain_part parts[] = {
		{ "unstarted", unstarted },
		{ "stop", stop },
	};

	return t_plain_parts(argc, argv, parts,
			     sizeof(parts) / sizeof(parts[0]));
}
