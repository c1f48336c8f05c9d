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

struct wstore {
	struct upager_store s;
	char *data;
	_Atomic pid_t worker;
	atomic_uint writebacks, by_worker;
	atomic_bool stuck, let_go;
};

static int w_fetch(struct upager_store *s, uint64_t pgoff, void *dst,
		   size_t npages)
{
	struct wstore *w = (struct wstore *)s;

	memcpy(dst, w->data + pgoff * PG, npages * PG);
	return 0;
}

static int w_writeback(struct upager_store *s, uint64_t pgoff,
		       const void *src, size_t npages)
{
	struct wstore *w = (struct wstore *)s;

	atomic_fetch_add(&w->writebacks, 1);
	if ((pid_t)syscall(SYS_gettid) == atomic_load(&w->worker))
		atomic_fetch_add(&w->by_worker, 1);
	else if (!atomic_exchange(&w->stuck, true))
		while (!atomic_load(&w->let_go))
			t_sleep_ms(1);
	memcpy(w->data + pgoff * PG, src, npages * PG);
	return 0;
}

static void w_close(struct upager_store *s)
{
	(void)s;
}

static const struct upager_store_ops w_ops = {
	.size = sizeof(struct upager_store_ops),
	.name = "evict-clean-test",
	.fetch = w_fetch,
	.writeback = w_writeback,
	.close = w_close,
};

static void on_touch(void *arg, struct upager_region *r, size_t off)
{
	struct wstore *w = arg;

	(void)r;
	(void)off;
	atomic_store(&w->worker, (pid_t)syscall(SYS_gettid));
}

int main(void)
{
	struct wstore w = { .s = { .ops = &w_ops,
				   .npages = UNITS,
				   .flags = UPAGER_STORE_CHEAP } };
	struct upager_map_params mp = { .size = sizeof(mp),
					.flags = UPAGER_MAP_TRACK_WRITES,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1,
					.budget = BUDGET_UNITS * PG,
					.on_touch = on_touch,
					.touch_arg = &w };
	struct upager_handler *h = t_upager_handler(1, NULL, NULL);
	struct upager_region *r;
	size_t peak = 0;
	char want[PG];
	char *p;
	int err;

	w.data = malloc(UNITS * PG);
	CHECK(w.data, "memory");
	for (size_t u = 0; u < UNITS; u++)
		t_fill(w.data + u * PG, PG, u);
	p = upager_map(h, &w.s, UNITS * PG, &mp, &r, &err);
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
	atomic_store(&w.let_go, true);
	printf("%u write-backs, %u of them by the worker; peak %zu KiB of a "
	       "%d KiB budget\n",
	       atomic_load(&w.writebacks), atomic_load(&w.by_worker),
	       peak >> 10, BUDGET_UNITS * PG >> 10);
	CHECK(atomic_load(&w.worker), "no first touch was told");
	CHECK(atomic_load(&w.by_worker) == 0,
	      "the worker wrote %u dirty units back on the fault path while "
	      "clean ones were there to evict",
	      atomic_load(&w.by_worker));
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
	free(w.data);
	return 0;
}
