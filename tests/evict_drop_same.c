// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The program drops a page (MADV_DONTNEED) of a unit an evictor is
 * dropping at the same moment, under REMOVE_ZERO: the page must read
 * zeros afterwards, as the program asked, and the unit's other pages the
 * store's data.  An evictor drops the units of a read-only region with
 * MADV_DONTNEED (no UFFDIO_MOVE out of a read-only mapping) and tells
 * its own REMOVE events from the program's by the range it announced;
 * the program's, inside that range, counted as the evictor's and was
 * forgotten: the page read the store's old data.
 *
 * Both REMOVEs are made to wait unread together: every worker is held
 * in a fetch of a region of its own (occupy()), the unit past the budget
 * is filled by the test's own prefault, and the evictor and the dropper
 * each sit in their madvise() until the workers are let go, the
 * evictor's event first (the program's first would be read by the
 * prefault itself, which meets it pending).  anon only: shmem keeps its
 * data through MADV_DONTNEED.
 */
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tstore.h"

#define PG     4096ul
#define UNIT   (4 * PG)
#define NUNITS 16
#define BUDGET 8
/* Where a thread sits while its non-cooperative event waits unread. */
#define EVENT_WAIT "userfaultfd_event_wait_completion"

/* Wait (5 s at most) until @tid sits in its event's wait. */
static void wait_in_event(pid_t tid, const char *who)
{
	for (int ms = 0; ms < 5000; ms++) {
		if (t_wchan_is(tid, EVENT_WAIT))
			return;
		t_sleep_ms(1);
	}
	if (t_wchan_is(tid, "0"))
		SKIP("/proc wchan gives no function names");
	FAIL("%s never waited for its REMOVE to be read", who);
}

struct dropper {
	char *at;
	_Atomic pid_t tid;
	pthread_t t;
	int ret;
};

static void *dropper_main(void *arg)
{
	struct dropper *d = arg;

	atomic_store(&d->tid, (pid_t)syscall(SYS_gettid));
	d->ret = madvise(d->at, PG, MADV_DONTNEED) ? -errno : 0;
	return NULL;
}

static void drop_start(struct dropper *d, char *at)
{
	d->at = at;
	atomic_store(&d->tid, 0);
	CHECK(!pthread_create(&d->t, NULL, dropper_main, d), "pthread_create");
	while (!atomic_load(&d->tid))
		t_sleep_ms(1);
	wait_in_event(atomic_load(&d->tid), "the program's madvise()");
}

static void drop_end(struct dropper *d)
{
	CHECK(!pthread_join(d->t, NULL), "pthread_join");
	CHECK_RET(d->ret, 0);
}

/* The eviction of unit 0: unit BUDGET filled past the budget. */
static void evict_start(struct upager_region *r)
{
	pid_t tid;

	CHECK(t_threads_named("upager-evict0", &tid) == 1, "no evictor");
	CHECK_RET(upager_region_prefault(r, BUDGET * UNIT, UNIT), 0);
	wait_in_event(tid, "the evictor");
}

int main(void)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = UPAGER_MEM_ANON,
					.fill = UNIT,
					.budget = BUDGET * UNIT,
					.high_water = 100,
					.low_water = 50,
					.evict = UPAGER_EVICT_FIFO,
					.remove = UPAGER_REMOVE_ZERO,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_region *r;
	struct upager_store *s;
	struct occupied o;
	struct dropper d;
	char *p, zero[PG] = { 0 };
	int err;

	s = upager_store_mem_new(NUNITS * UNIT, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	for (size_t i = 0; i < NUNITS * UNIT / PG; i++)
		t_fill((char *)upager_store_mem_data(s) + i * PG, PG, i + 1);
	p = upager_map(h, s, NUNITS * UNIT, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP) {
		fprintf(stderr, "SKIP: no UFFD_FEATURE_MOVE\n");
		exit(77);
	}
	CHECK(p, "map: %s", strerror(-err));
	CHECK(!mprotect(p, NUNITS * UNIT, PROT_READ), "mprotect");
	CHECK_RET(upager_handler_start(h), 0);
	for (size_t u = 0; u < BUDGET; u++)
		(void)*(volatile char *)(p + u * UNIT);
	t_wait_resident(r, BUDGET * UNIT, BUDGET * UNIT, 5000);

	occupy(&o, h, UPAGER_MEM_ANON, 2);
	evict_start(r);
	drop_start(&d, p);
	vacate(&o);
	drop_end(&d);
	/* FIFO from BUDGET + 1 units down to half the budget. */
	t_wait_resident(r, 0, BUDGET / 2 * UNIT, 10000);
	CHECK(!upager_region_present(r, 0), "unit 0 was not evicted");

	CHECK(!memcmp(p, zero, PG),
	      "page 0, dropped by the program, does not read zeros "
	      "(its first word %#llx)",
	      (unsigned long long)*(uint64_t *)p);
	for (size_t i = 1; i < NUNITS * UNIT / PG; i++)
		CHECK(t_verify(p + i * PG, PG, i + 1),
		      "page %zu does not read the store's data", i);

	CHECK_RET(upager_unmap(r), 0);
	upager_store_close(s);
	upager_handler_free(h);
	return t_end();
}
