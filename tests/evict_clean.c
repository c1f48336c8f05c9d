// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A fault that must evict before it fills (its region over its whole
 * budget: the evictor threads lag) takes clean units and leaves the
 * dirty ones to the evictors, as the kernel's reclaim leaves a dirty
 * page to the flusher.  Before the fix it took the queue's head, dirty
 * or not, and wrote it back itself: on uniform read-writes over an
 * O_DIRECT file every other miss then waited for a disk write on the
 * fault path (the out-of-core benchmark ran at 0.27x the kernel's rate).
 *
 * One worker, one evictor, a budget of 1024 units over a region of 2048,
 * write tracking, a store that records which thread writes back.  The
 * evictor's first write-back waits until the end, so the evictor is
 * stuck and only the worker evicts.  One thread touches the units in
 * order, writing every 128th (16 dirty units: any 32 units the worker
 * looks at hold clean ones) and reading the others.  No write-back may
 * come from the worker (the thread that tells the first touches,
 * on_touch), memory must stay within the budget and a batch, and every
 * unit must read back right, after the evictor is let go.
 */
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tstore.h"

#define PG 4096
#define UNITS 2048
#define BUDGET_UNITS 1024
#define SLACK_UNITS 16
#define DIRTY_EVERY 128

/* The shared store, and who the worker is. */
struct ecstore {
	struct wbstore w;
	_Atomic pid_t worker;
	atomic_uint by_worker; /* write-backs the worker made */
};

/*
 * The worker's write-backs are counted and never held: only the
 * evictor's first one waits at the gate.
 */
static bool not_the_worker(struct wbstore *w)
{
	struct ecstore *e = (struct ecstore *)w;

	if ((pid_t)syscall(SYS_gettid) != atomic_load(&e->worker))
		return true;
	atomic_fetch_add(&e->by_worker, 1);
	return false;
}

static void on_touch(void *arg, struct upager_region *r, size_t off)
{
	struct ecstore *e = arg;

	(void)r;
	(void)off;
	atomic_store(&e->worker, (pid_t)syscall(SYS_gettid));
}

int main(void)
{
	struct ecstore e = { 0 };
	struct upager_map_params mp = { .size = sizeof(mp),
					.flags = UPAGER_MAP_TRACK_WRITES,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1,
					.budget = BUDGET_UNITS * PG,
					.on_touch = on_touch,
					.touch_arg = &e };
	struct upager_handler *h = t_upager_handler(1, NULL, NULL);
	struct upager_region *r;
	size_t peak = 0;
	char want[PG];
	char *p;
	int err;

	wbstore_init(&e.w, UNITS);
	e.w.s.flags = UPAGER_STORE_CHEAP;
	e.w.may_hold = not_the_worker;
	atomic_store(&e.w.hold, true); /* the evictor's first write-back */
	p = upager_map(h, &e.w.s, UNITS * PG, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP)
		SKIP("write tracking needs write-protect faults");
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	for (size_t u = 0; u < UNITS; u++) {
		size_t res;

		if (u % DIRTY_EVERY == 0)
			p[u * PG] = 1;
		else
			CHECK(t_verify(p + u * PG, PG, u), "unit %zu", u);
		res = upager_region_resident(r);
		if (res > peak)
			peak = res;
	}
	atomic_store(&e.w.release, true);
	printf("%u write-backs, %u of them by the worker; peak %zu KiB of a "
	       "%d KiB budget\n",
	       atomic_load(&e.w.calls), atomic_load(&e.by_worker),
	       peak >> 10, BUDGET_UNITS * PG >> 10);
	CHECK(atomic_load(&e.worker), "no first touch was told");
	CHECK(atomic_load(&e.by_worker) == 0,
	      "the worker wrote %u dirty units back on the fault path while "
	      "clean ones were there to evict",
	      atomic_load(&e.by_worker));
	CHECK(peak <= (BUDGET_UNITS + SLACK_UNITS) * PG,
	      "resident %zu KiB: past the budget (the worker did not evict)",
	      peak >> 10);
	for (size_t u = 0; u < UNITS; u++) {
		t_fill(want, PG, u);
		if (u % DIRTY_EVERY == 0)
			want[0] = 1;
		CHECK(!memcmp(p + u * PG, want, PG), "unit %zu read back", u);
	}
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	wbstore_free(&e.w);
	return 0;
}
